// Package good reads contract headers and sets others: nothing to flag.
package good

import (
	"net/http"

	"github.com/nats-io/nats.go"

	"github.com/realmstream/realmstream/libs/wire"
)

func use(m *nats.Msg, r *http.Request) string {
	wire.CommandHeaders{MsgID: "s:1", Zone: "z"}.Zone = "y"
	new(wire.CommandHeaderBuf).Fill(m.Header, wire.CommandHeaders{MsgID: "s:1"})
	r.Header.Set("Content-Type", "application/json")
	m.Header.Set(wire.HeaderTraceParent, "00-...") // W3C trace context, not the contract's
	secrets := map[string]string{"nats-auth": "x", "Realm-Zone": "not a header map"}
	_ = secrets
	_, ok := m.Header[wire.HeaderZone]
	if ok {
		return m.Header.Get(wire.HeaderMsgID)
	}
	return m.Header.Get("Realm-Fence")
}

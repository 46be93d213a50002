// Package bad sets contract headers by hand in every form the check knows.
package bad

import (
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	w "github.com/realmstream/realmstream/libs/wire"
)

func build(m *natsgo.Msg, zone string) {
	m.Header.Set(w.HeaderZone, zone)          // want
	m.Header.Add(w.HeaderFence, "3")          // want
	m.Header.Set("Realm-Session", "s")        // want
	m.Header.Set("nats-expected-stream", "x") // want
	m.Header[w.HeaderPlayer] = []string{"p"}  // want
	m.Header[natsgo.MsgIdHdr] = []string{"i"} // want
	m.Header.Set(jetstream.MsgIDHeader, "i")  // want
	h := natsgo.Header{
		"Realm-Schema": {"1"}, // want
	}
	h2 := natsgo.Header{w.HeaderMsgID: {"x"}} // want
	_, _ = h, h2
}

package e2e

import (
	"github.com/realmstream/realmstream/e2e/audit"
	"github.com/realmstream/realmstream/e2e/harness"
	"github.com/realmstream/realmstream/libs/bots"
)

func gateways(st *harness.Stack) []bots.Gateway {
	var out []bots.Gateway
	for _, a := range st.GatewayAddrs() {
		out = append(out, bots.Gateway{TCP: a[0], WS: a[1]})
	}
	return out
}

func toAudit(acked []bots.AckRecord) []audit.AckedCommand {
	out := make([]audit.AckedCommand, len(acked))
	for i, a := range acked {
		out[i] = audit.AckedCommand{ID: a.ID, StreamSeq: a.StreamSeq, Duplicate: a.Duplicate}
	}
	return out
}

package e2e

import (
	"github.com/realmstream/realmstream/e2e/audit"
	"github.com/realmstream/realmstream/e2e/harness"
	"github.com/realmstream/realmstream/e2e/swarm"
)

func gateways(st *harness.Stack) []swarm.Gateway {
	var out []swarm.Gateway
	for _, a := range st.GatewayAddrs() {
		out = append(out, swarm.Gateway{TCP: a[0], WS: a[1]})
	}
	return out
}

func toAudit(acked []swarm.AckRecord) []audit.AckedCommand {
	out := make([]audit.AckedCommand, len(acked))
	for i, a := range acked {
		out[i] = audit.AckedCommand{ID: a.ID, StreamSeq: a.StreamSeq, Duplicate: a.Duplicate}
	}
	return out
}

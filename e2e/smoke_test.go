package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/realmstream/realmstream/e2e/audit"
	"github.com/realmstream/realmstream/e2e/harness"
	"github.com/realmstream/realmstream/libs/bots"
)

// TestGatewaysSwarmAudit runs two gateway processes on embedded NATS, drives
// them with a small swarm over TCP and WebSocket (with resumes), kills one
// gateway mid-run, and checks that every acknowledged command is in CMD at
// the sequence its Ack named.
func TestGatewaysSwarmAudit(t *testing.T) {
	st := harness.StartStack(t, harness.StackConfig{Gateways: 2, NoWorld: true, NoPersist: true, Monitor: true})
	sw, err := bots.New(bots.Config{
		Gateways: gateways(st), Bots: 40, WSFraction: 0.5, ResumeEvery: 3 * time.Second, KeepAcked: true,
		Progress: func(p bots.Progress) { fmt.Fprintln(os.Stderr, p) }, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	done := make(chan *bots.Report)
	go func() { done <- sw.Run(ctx) }()
	time.Sleep(3 * time.Second)
	if err := st.Proc("gateway-1").Kill(); err != nil {
		t.Fatal(err)
	}
	if err := st.Restart(context.Background(), "gateway-1", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	rep := <-done
	rep.Print(os.Stderr)
	if rep.Acked == 0 {
		t.Fatal("no command acknowledged")
	}
	actx, acancel := context.WithTimeout(context.Background(), time.Minute)
	defer acancel()
	cl, vs, err := audit.ReadCommands(actx, st.JS())
	if err != nil {
		t.Fatal(err)
	}
	f, vs2 := audit.CheckAcked(toAudit(sw.Acked()), cl)
	for _, v := range append(vs, vs2...) {
		t.Error(v)
	}
	t.Logf("commands: %+v", f)
	st.CheckNoCrashes(t)
}

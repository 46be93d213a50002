package world

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/redistest"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
)

// TestNATSRestart restarts the NATS server (same store, same port) during
// play: the instances reconnect, zones recover (appends in flight are
// resolved or the zone steps down and is claimed again), commands sent after
// the restart are applied and the logs stay linear.
func TestNATSRestart(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.StartDir(t, dir, -1)
	port := srv.Addr().(*net.TCPAddr).Port
	_, js := natstest.Connect(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	redistest.Shared(t)
	base := testConfig(t, srv.URL, redistest.Addr(), "")
	mk := func(id string) Config { c := base; c.InstanceID = id; return c }
	zones := base.Map.Zones()
	a, b := startInst(t, mk("a")), startInst(t, mk("b"))
	waitBalanced(t, 15*time.Second, a, b)
	ids := joinEach(t, js, zones)

	srv.Shutdown()
	srv.WaitForShutdown()
	srv2 := natstest.StartDir(t, dir, port)
	_, js2 := natstest.Connect(t, srv2.URL)
	ids = ids[:0]
	for i, z := range zones {
		s := fmt.Sprintf("s%d", i)
		send(t, js2, z, s, 2, "p"+s, chat("after the restart"))
		ids = append(ids, s+":2")
	}
	waitApplied(t, js2, zones, ids, 20*time.Second)
	waitBalanced(t, 15*time.Second, a, b)
	// Both still see each other (their membership watches survived or were renewed).
	waitfor.True(t, 10*time.Second, func() error {
		for _, in := range []*inst{a, b} {
			if m := in.svc.ctrl.LiveMembers(); len(m) != 2 {
				return fmt.Errorf("%s sees members %v", in.svc.cfg.InstanceID, m)
			}
		}
		return nil
	})
	checkLogs(t, js2, zones)
	a.stop() // before srv2's cleanup shuts the server down
	b.stop()
}

package world

import (
	"fmt"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/redistest"
	"github.com/realmstream/realmstream/libs/waitfor"
)

// TestRedisRestart kills the lock server during play (its keys and fence
// counters are gone when it comes back): owners stop when their leases run
// out, ownership recovers after the restart, fences in the logs keep growing
// (the world's fence is max(lease fence, last fence + 1)) and no log forks.
func TestRedisRestart(t *testing.T) {
	srv, _, js := natstest.StartWithStreams(t)
	rs := redistest.Start(t)
	base := testConfig(t, srv.URL, rs.Addr, "")
	mk := func(id string) Config { c := base; c.InstanceID = id; return c }
	zones := base.Map.Zones()
	a, b := startInst(t, mk("a")), startInst(t, mk("b"))
	waitBalanced(t, 15*time.Second, a, b)
	ids := joinEach(t, js, zones)

	rs.Kill()
	// Without Redis no lease can be renewed: every zone stops within the TTL.
	waitfor.True(t, 3*base.LeaseTTL, func() error {
		if o := owners(a, b); len(o) != 0 {
			return fmt.Errorf("still owned: %v", o)
		}
		return nil
	})
	// Commands sent meanwhile wait in the stream.
	ids = ids[:0]
	for i, z := range zones {
		s := fmt.Sprintf("s%d", i)
		send(t, js, z, s, 2, "p"+s, chat("while redis was down"))
		ids = append(ids, s+":2")
	}
	rs.Restart()
	waitBalanced(t, 15*time.Second, a, b)
	waitApplied(t, js, zones, ids, 10*time.Second)
	logs, r := checkLogs(t, js, zones)
	for _, z := range zones {
		claims := 0
		for _, e := range logs[z] {
			if e.Event.GetOwnershipClaimed() != nil {
				claims++
			}
		}
		if claims < 2 {
			t.Errorf("zone %s: %d claims, want a new claim after the restart", z, claims)
		}
	}
	t.Logf("%d events, %d claims, no violations", r.Events, r.Claims)
}

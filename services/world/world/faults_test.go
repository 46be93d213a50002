package world

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/lock/locktest"
	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/redistest"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/zonelog"
)

// TestCrashTakeover crashes an owner (no release, leases left in Redis):
// every zone it owned is claimed by another instance within TTL + one renew
// interval, and each new claim continues from the exact end of the log.
func TestCrashTakeover(t *testing.T) {
	srv, _, js := natstest.StartWithStreams(t)
	redistest.Shared(t)
	base := testConfig(t, srv.URL, redistest.Addr(), "")
	mk := func(id string) Config { c := base; c.InstanceID = id; return c }
	a, b, c := startInst(t, mk("a")), startInst(t, mk("b")), startInst(t, mk("c"))
	zones := base.Map.Zones()
	own := waitBalanced(t, 15*time.Second, a, b, c)
	var ids []string
	for i, z := range zones {
		s := fmt.Sprintf("s%d", i)
		send(t, js, z, s, 1, "p"+s, join(z))
		send(t, js, z, s, 2, "p"+s, chat("before"))
		ids = append(ids, s+":1", s+":2")
	}
	waitApplied(t, js, zones, ids, 10*time.Second)

	victim := a
	var victimZones []string
	for z, o := range own {
		if o == "a" {
			victimZones = append(victimZones, z)
		}
	}
	if len(victimZones) == 0 {
		victim = b
		for z, o := range own {
			if o == "b" {
				victimZones = append(victimZones, z)
			}
		}
	}
	ends := map[string]uint64{}
	for _, z := range victimZones {
		ends[z] = victim.svc.Owned()[z].LastSeq
	}
	crashed := time.Now()
	victim.crash()
	ttl := base.LeaseTTL
	bound := ttl + ttl/3 // TTL + one renew interval
	rest := []*inst{a, b, c}
	took := waitAllOwned(t, 3*bound, rest...)
	elapsed := time.Since(crashed)
	t.Logf("zones %v of %s taken over after %v (bound TTL + renew interval = %v)", victimZones, victim.svc.cfg.InstanceID, elapsed, bound)
	// 250ms of slack for scheduling on a loaded 2-core machine (and -race).
	if elapsed > bound+250*time.Millisecond {
		t.Errorf("takeover took %v, more than TTL + one renew interval (%v) + 250ms slack", elapsed, bound)
	}
	logs, _ := checkLogs(t, js, zones)
	for _, z := range victimZones {
		if took[z] == victim.svc.cfg.InstanceID {
			t.Fatalf("zone %s still owned by the crashed instance", z)
		}
		// The new claim's expected sequence is the crashed owner's last event.
		var claim *zonelog.Entry
		for i := range logs[z] {
			if e := logs[z][i]; e.Event.GetOwnershipClaimed() != nil && e.Event.GetOwnershipClaimed().InstanceId == took[z] {
				claim = &logs[z][i]
			}
		}
		if claim == nil || claim.ExpectedSeq != ends[z] {
			t.Fatalf("zone %s: new claim %+v does not continue from the old end %d", z, claim, ends[z])
		}
	}
	// Play continues where it stopped.
	ids = ids[:0]
	for i, z := range zones {
		s := fmt.Sprintf("s%d", i)
		send(t, js, z, s, 3, "p"+s, chat("after"))
		ids = append(ids, s+":3")
	}
	waitApplied(t, js, zones, ids, 10*time.Second)
	logs, _ = checkLogs(t, js, zones)
	states := fold(logs)
	for i, z := range zones {
		p := states[z].Players[fmt.Sprintf("ps%d", i)]
		if p == nil || p.LastInputSeq != 3 {
			t.Errorf("zone %s: player state %v", z, p)
		}
	}
}

// TestSplitBrain freezes an owner in the middle of an append past its lease
// (renewals and membership stop, the process stays alive), lets another
// instance take over and append, then wakes the old owner: its append is
// refused by JetStream, it steps down, and the log has no fork.
func TestSplitBrain(t *testing.T) {
	srv, _, js := natstest.StartWithStreams(t)
	redistest.Shared(t)
	base := testConfig(t, srv.URL, redistest.Addr(), "")
	mk := func(id string) Config { c := base; c.InstanceID = id; return c }
	zones := base.Map.Zones()

	var frozen lock.Store
	var mu sync.Mutex
	var freezeZone string
	wake := make(chan struct{})
	entered := make(chan string, 1)
	a := startInst(t, mk("a"), func(s *Service, in *inst) {
		s.hooks.wrapStore = func(st lock.Store) lock.Store { f := &locktest.Frozen{Store: st}; frozen = f; return f }
		s.hooks.beforeAppend = func(z, id string) error {
			mu.Lock()
			hit := z == freezeZone
			mu.Unlock()
			if hit {
				select {
				case entered <- id:
				default:
				}
				<-wake
			}
			return nil
		}
	})
	b := startInst(t, mk("b"))
	own := waitBalanced(t, 15*time.Second, a, b)
	target := ""
	for _, z := range zones {
		if own[z] == "a" {
			target = z
			break
		}
	}
	if target == "" {
		t.Fatalf("a owns no zone: %v", own)
	}
	send(t, js, target, "s1", 1, "p1", join(target))
	waitApplied(t, js, zones, []string{"s1:1"}, 10*time.Second)
	fencedBefore := counter(t, a.svc.zm.Fenced)

	// Freeze a: renewals fail, membership stops, and the zone pauses inside
	// its next append (after its lease check), like a long GC pause.
	mu.Lock()
	freezeZone = target
	mu.Unlock()
	frozen.(*locktest.Frozen).Freeze()
	a.paused.Store(true)
	send(t, js, target, "s1", 2, "p1", chat("during the pause"))
	select {
	case <-entered:
	case <-time.After(20 * time.Second): // the next tick; generous for a loaded CI machine
		t.Fatal("owner never reached its append")
	}
	// b takes the zone over and appends (claim + the redelivered command after AckWait).
	waitfor.True(t, 10*time.Second, func() error {
		if st, ok := b.svc.Owned()[target]; !ok || st.Fence == 0 {
			return errString("b has not claimed " + target)
		}
		return nil
	})
	send(t, js, target, "s1", 3, "p1", chat("new owner"))
	waitApplied(t, js, zones, []string{"s1:3"}, 10*time.Second)

	// Wake a: its pending append must be refused; it steps down.
	mu.Lock()
	freezeZone = ""
	mu.Unlock()
	close(wake)
	waitfor.True(t, 10*time.Second, func() error {
		if counter(t, a.svc.zm.Fenced) <= fencedBefore {
			return errString("old owner's append not refused yet")
		}
		return nil
	})
	frozen.(*locktest.Frozen).Thaw()
	a.paused.Store(false)
	waitApplied(t, js, zones, []string{"s1:2"}, 10*time.Second) // applied once, by b, after redelivery
	waitAllOwned(t, 15*time.Second, a, b)
	logs, _ := checkLogs(t, js, zones)
	claims := 0
	for _, e := range logs[target] {
		if e.Event.GetOwnershipClaimed() != nil {
			claims++
		}
		if e.Event.GetCommandId() == "s1:2" && e.Event.Fence == logs[target][0].Event.Fence {
			t.Fatalf("the frozen owner's event was stored: %+v", e)
		}
	}
	if claims < 2 {
		t.Fatalf("zone %s: %d claims, want a takeover", target, claims)
	}
	_ = context.Background
}

// TestGracefulHandover: a stopping instance hands its zones over at once
// (release event, final snapshot, lease released): the other instance
// claims them long before the lease TTL, without counting a takeover.
func TestGracefulHandover(t *testing.T) {
	srv, _, js := natstest.StartWithStreams(t)
	redistest.Shared(t)
	base := testConfig(t, srv.URL, redistest.Addr(), "")
	base.LeaseTTL = 6 * time.Second // a handover must not wait for expiry
	mk := func(id string) Config { c := base; c.InstanceID = id; return c }
	zones := base.Map.Zones()
	a := startInst(t, mk("a"))
	waitAllOwned(t, 10*time.Second, a)
	b := startInst(t, mk("b"))
	own := waitBalanced(t, 10*time.Second, a, b) // zones moved a -> b by handover
	start := time.Now()
	a.stop()
	waitAllOwned(t, 3*time.Second, b)
	if d := time.Since(start); d > base.LeaseTTL/2 {
		t.Fatalf("handover took %v (lease TTL %v)", d, base.LeaseTTL)
	}
	if n := counter(t, b.svc.zm.Takeovers); n != 0 {
		t.Fatalf("%v takeovers counted for graceful handovers", n)
	}
	logs, _ := checkLogs(t, js, zones)
	for _, z := range zones {
		l := logs[z]
		for i, e := range l {
			if c := e.Event.GetOwnershipClaimed(); c != nil && c.InstanceId == "b" && i > 0 {
				if l[i-1].Event.GetOwnershipReleased() == nil {
					t.Errorf("zone %s (first owner %s): b claimed after %T, not after a release", z, own[z], l[i-1].Event.Body)
				}
			}
		}
	}
}

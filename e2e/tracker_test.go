package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/e2e/audit"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
)

// tracker watches evt.> on core NATS while the run goes on: when each zone
// appended (arrival times) and every ownership claim, so that recovery times
// can be read off afterwards.
type tracker struct {
	mu       sync.Mutex
	arrivals map[string][]time.Time
	claims   []claim
	sub      *nats.Subscription
}

type claim struct {
	zone     string
	instance string
	fence    uint64
	at       time.Time
}

func newTracker(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (*tracker, error) {
	t := &tracker{arrivals: map[string][]time.Time{}}
	sub, err := nc.Subscribe(wire.EventSubjects, t.onEvent)
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	t.sub = sub
	// The claims made before the subscription (at start) come from the log.
	_, err = audit.ReadStream(ctx, js, wire.StreamEvents, func(m audit.StreamMsg) error {
		if oc := claimIn(m.Seq, m.Header, m.Data); oc != nil {
			t.mu.Lock()
			t.claims = append(t.claims, claim{zone: strings.TrimPrefix(m.Subject, wire.EventPrefix), instance: oc.InstanceId, fence: oc.Fence, at: m.Time})
			t.mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	sort.SliceStable(t.claims, func(i, j int) bool { return t.claims[i].at.Before(t.claims[j].at) })
	t.mu.Unlock()
	return t, nil
}

func (t *tracker) stop() { _ = t.sub.Unsubscribe() }

func (t *tracker) onEvent(m *nats.Msg) {
	now := time.Now()
	zone := strings.TrimPrefix(m.Subject, wire.EventPrefix)
	var c *claim
	if typ := m.Header.Get(wire.HeaderEventType); typ == "" || strings.Contains(strings.ToLower(typ), "claim") || m.Header.Get(wire.HeaderSchema) == wire.SchemaTickRecord {
		if oc := claimIn(0, m.Header, m.Data); oc != nil {
			c = &claim{zone: zone, instance: oc.InstanceId, fence: oc.Fence, at: now}
		}
	}
	t.mu.Lock()
	t.arrivals[zone] = append(t.arrivals[zone], now)
	if c != nil {
		t.claims = append(t.claims, *c)
	}
	t.mu.Unlock()
}

// ownersAt returns zone -> instance of the latest claim before at.
func (t *tracker) ownersAt(at time.Time) map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]string{}
	for _, c := range t.claims {
		if c.at.Before(at) {
			out[c.zone] = c.instance
		}
	}
	return out
}

// reclaimedIn returns, for the zones instance owned at `at`, the longest
// time until another instance claimed them, and the zones not reclaimed yet.
func (t *tracker) reclaimedIn(instance string, at time.Time) (time.Duration, []string) {
	owned := t.ownersAt(at)
	t.mu.Lock()
	defer t.mu.Unlock()
	var worst time.Duration
	var missing []string
	for zone, inst := range owned {
		if inst != instance {
			continue
		}
		found := false
		for _, c := range t.claims {
			if c.zone == zone && c.at.After(at) && c.instance != instance {
				worst = max(worst, c.at.Sub(at))
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, zone)
		}
	}
	sort.Strings(missing)
	return worst, missing
}

// zonesOf lists the zones instance owned at `at`.
func (t *tracker) zonesOf(instance string, at time.Time) []string {
	var zs []string
	for z, i := range t.ownersAt(at) {
		if i == instance {
			zs = append(zs, z)
		}
	}
	sort.Strings(zs)
	return zs
}

// stall returns the longest time, over all zones, without an append in
// [from, to] (counting from `from` to the first append after it): how long
// the slowest zone took to append again after a fault at `from`.
func (t *tracker) stall(from, to time.Time) (time.Duration, string) {
	return t.stallOf(nil, from, to)
}

// stallOf is stall over the given zones only (nil = all).
func (t *tracker) stallOf(zones []string, from, to time.Time) (time.Duration, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var worst time.Duration
	var worstZone string
	only := map[string]bool{}
	for _, z := range zones {
		only[z] = true
	}
	for zone, as := range t.arrivals {
		if len(only) > 0 && !only[zone] {
			continue
		}
		prev := from
		for _, a := range as {
			if a.Before(from) {
				continue
			}
			if a.After(to) {
				break
			}
			if g := a.Sub(prev); g > worst {
				worst, worstZone = g, zone
			}
			prev = a
		}
		if g := to.Sub(prev); g > worst {
			worst, worstZone = g, zone+" (no append until the end of the window)"
		}
	}
	return worst, worstZone
}

func (t *tracker) summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, as := range t.arrivals {
		n += len(as)
	}
	return fmt.Sprintf("%d events seen live in %d zones, %d ownership claims", n, len(t.arrivals), len(t.claims))
}

// claimIn returns the ownership claim carried by a stored message (a tick
// record's events or a legacy single event), if any.
func claimIn(seq uint64, h nats.Header, data []byte) *schema.OwnershipClaimed {
	entries, err := zonelog.Decode(seq, h, data)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if oc := e.Event.GetOwnershipClaimed(); oc != nil {
			return oc
		}
	}
	return nil
}

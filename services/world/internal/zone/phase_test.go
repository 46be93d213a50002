package zone

import (
	"slices"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/worldmap"
)

// TestTickPhasesSpread: the zones of the default grid tick at distinct
// phases spread over the period (no two within 1 ms at 50 ms, none of the
// period's halves empty), and nextTick lands on the phase.
func TestTickPhasesSpread(t *testing.T) {
	const tick = 50 * time.Millisecond
	var ph []time.Duration
	for _, z := range worldmap.Default().Zones() {
		p := tickPhase(z, tick)
		if p < 0 || p >= tick {
			t.Fatalf("zone %s: phase %v outside [0, %v)", z, p, tick)
		}
		ph = append(ph, p)
	}
	slices.Sort(ph)
	if len(ph) < 4 {
		t.Fatalf("default grid has %d zones", len(ph))
	}
	first, second := 0, 0
	for i, p := range ph {
		if i > 0 && p-ph[i-1] < time.Millisecond {
			t.Errorf("phases %v and %v less than 1 ms apart: %v", ph[i-1], p, ph)
		}
		if p < tick/2 {
			first++
		} else {
			second++
		}
	}
	if first == 0 || second == 0 {
		t.Errorf("phases all in one half of the period: %v", ph)
	}
	now := time.Date(2026, 12, 2, 5, 0, 0, 73_000_000, time.UTC)
	for _, p := range []time.Duration{0, 10 * time.Millisecond, 23 * time.Millisecond, 49 * time.Millisecond} {
		n := nextTick(now, tick, p)
		if n.Before(now) || n.Sub(now) >= tick || n.Sub(n.Truncate(tick)) != p {
			t.Errorf("nextTick(%v, phase %v) = %v", now, p, n)
		}
	}
}

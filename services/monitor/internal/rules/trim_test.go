package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/services/monitor/internal/state"
)

// TestBoundedLogAlerts: the default rules fire on a world whose trimming is
// blocked, whose EVT stream nears its guard, or whose account storage fills,
// and stay quiet on a healthy one.
func TestBoundedLogAlerts(t *testing.T) {
	set, err := LoadFile("")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		figs map[string]float64
		want string // "" = no alert
	}{
		{map[string]float64{"uptime_s": 900, "trim_blocked_seconds": 10, "evt_stream_limit_ratio": 0.2, "jetstream_storage_ratio": 0.1}, ""},
		{map[string]float64{"uptime_s": 900}, ""}, // a world that reports none of it (older version)
		{map[string]float64{"uptime_s": 900, "trim_blocked_seconds": 300}, "zone_log_trim_blocked"},
		{map[string]float64{"uptime_s": 900, "evt_stream_limit_ratio": 0.9}, "evt_stream_near_limit"},
		{map[string]float64{"uptime_s": 900, "jetstream_storage_ratio": 0.95}, "jetstream_storage_high"},
	} {
		s := state.New(state.Options{})
		e := NewEngine(set)
		t0 := time.Unix(1_800_000_000, 0)
		var fired []string
		for i := 0; i <= 5; i++ {
			now := t0.Add(time.Duration(i) * time.Minute)
			s.Heartbeat(&schema.Heartbeat{Service: "world", InstanceId: "w1", Ready: true, Figures: c.figs}, now)
			tr, errs := e.Eval(now, Context{Snap: s.Snapshot(now), HeartbeatTimeout: 10 * time.Second, AbsenceAfter: time.Hour}.Targets())
			for _, er := range errs {
				t.Fatalf("rule error: %+v", er)
			}
			for _, x := range tr {
				if x.State == StateFiring {
					fired = append(fired, x.Rule.Name+": "+x.Message)
				}
			}
		}
		got := strings.Join(fired, "\n")
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("figures %v: fired %q, want %q", c.figs, got, c.want)
		}
	}
}

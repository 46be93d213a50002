package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/schema"

	"github.com/realmstream/realmstream/services/monitor/internal/state"
)

// TestDefaultRulesCatchEveryOutage replays, through the store and the
// embedded default rules, the heartbeat traces the drill's faults leave,
// each one shorter than the heartbeat timeout (so instance_lost, the only
// rule the drill had, never held at an evaluation):
//   - kill -9 of persist healed by the restart policy in 2s: uptime_s resets;
//   - a Redis restart: world's leases_lost_total grows;
//   - a 3s NATS outage: the monitor's connection drops and every instance's
//     heartbeats stop for 3s.
//
// Each fires exactly its alert at the next evaluation, and resolves 5 minutes
// later with a text that describes the recovery, not the outage.
func TestDefaultRulesCatchEveryOutage(t *testing.T) {
	set, err := LoadFile("")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0)
	const timeout = 10 * time.Second
	// Two instances beat every 2s; a fault changes what they send from 38s.
	type trace struct {
		persistUp func(at time.Duration) float64 // uptime_s of persist
		lost      float64                        // world's leases_lost_total after the fault
		silent    bool                           // no heartbeat arrives from 37s to 40s
		outage    bool                           // the monitor's own NATS connection drops 37s-40s
	}
	normalUp := func(at time.Duration) float64 { return 100 + at.Seconds() }
	cases := []struct {
		name, rule, target, resolved string
		tr                           trace
	}{
		{"kill -9 of persist", "instance_restarted", "instance=persist/persist-0", "persist instance persist-0: no unclean restart for 5m",
			trace{persistUp: func(at time.Duration) float64 { return at.Seconds() - 38 }}},
		{"Redis restart", "zone_leases_lost", "instance=world/world-0", "world instance world-0: no zone lease lost for 5m",
			trace{persistUp: normalUp, lost: 3}},
		{"3s NATS outage", "nats_interrupted", "global", "NATS: no interruption for 5m",
			trace{persistUp: normalUp, silent: true, outage: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := state.New(state.Options{})
			e := NewEngine(set)
			beat := func(at time.Duration, svc, id string, figs map[string]float64) {
				t.Helper()
				s.Heartbeat(&schema.Heartbeat{Service: svc, InstanceId: id, Ready: true, Figures: figs}, t0.Add(at))
			}
			eval := func(at time.Duration) []Transition {
				now := t0.Add(at)
				tr, errs := e.Eval(now, Context{Snap: s.Snapshot(now), HeartbeatTimeout: timeout, AbsenceAfter: time.Hour}.Targets())
				if len(errs) > 0 {
					t.Fatalf("eval errors: %v", errs)
				}
				return tr
			}
			// Healthy for 37s: heartbeats every 2s, no alert.
			for at := time.Duration(0); at <= 36*time.Second; at += 2 * time.Second {
				beat(at, "persist", "persist-0", map[string]float64{"uptime_s": 100 + at.Seconds()})
				beat(at, "world", "world-0", map[string]float64{"uptime_s": at.Seconds()})
				if tr := eval(at); len(tr) > 0 {
					t.Fatalf("healthy at %v: %+v", at, tr)
				}
			}
			if c.tr.outage {
				s.NATSOutage(t0.Add(37*time.Second), t0.Add(40*time.Second))
			}
			up := normalUp
			for at := 38 * time.Second; at <= 42*time.Second; at += 2 * time.Second {
				if at >= 40*time.Second {
					up = c.tr.persistUp // the restarted process reports from 40s
				}
				if c.tr.silent && at <= 40*time.Second {
					continue
				}
				beat(at, "persist", "persist-0", map[string]float64{"uptime_s": up(at)})
				beat(at, "world", "world-0", map[string]float64{"uptime_s": at.Seconds(), "leases_lost_total": c.tr.lost})
			}
			tr := eval(42 * time.Second)
			var fired []string
			for _, x := range tr {
				fired = append(fired, x.Rule.Name+" "+x.Target+" "+x.State)
			}
			if len(tr) != 1 || tr[0].Rule.Name != c.rule || tr[0].Target != c.target || tr[0].State != StateFiring {
				t.Fatalf("after the fault: %v, want exactly %s on %s firing", fired, c.rule, c.target)
			}
			t.Logf("fired: %s: %s", c.rule, tr[0].Message)
			// Healthy again: heartbeats resume, the alert holds for the window, then resolves.
			var resolved *Transition
			for at := 44 * time.Second; at <= 42*time.Second+IncidentWindow+4*time.Second; at += 2 * time.Second {
				beat(at, "persist", "persist-0", map[string]float64{"uptime_s": up(at)})
				beat(at, "world", "world-0", map[string]float64{"uptime_s": at.Seconds(), "leases_lost_total": c.tr.lost})
				for _, x := range eval(at) {
					if x.State == StateResolved && resolved == nil {
						x := x
						resolved = &x
					} else {
						t.Fatalf("at %v: unexpected %s %s %s", at, x.Rule.Name, x.Target, x.State)
					}
				}
			}
			if resolved == nil || resolved.Rule.Name != c.rule {
				t.Fatalf("%s did not resolve after the incident window", c.rule)
			}
			if resolved.Message != c.resolved || strings.Contains(resolved.Message, "stopped") {
				t.Errorf("resolved text %q, want %q", resolved.Message, c.resolved)
			}
		})
	}
}

// TestInstanceLostResolvedText: the resolution of instance_lost says the
// instance is back, not that it "stopped sending heartbeats 0s ago".
func TestInstanceLostResolvedText(t *testing.T) {
	set, err := LoadFile("")
	if err != nil {
		t.Fatal(err)
	}
	s := state.New(state.Options{})
	e := NewEngine(set)
	t0 := time.Unix(1_800_000_000, 0)
	hb := &schema.Heartbeat{Service: "gateway", InstanceId: "g1", Ready: true, Figures: map[string]float64{"uptime_s": 5}}
	s.Heartbeat(hb, t0)
	eval := func(now time.Time) []Transition {
		tr, _ := e.Eval(now, Context{Snap: s.Snapshot(now), HeartbeatTimeout: 10 * time.Second, AbsenceAfter: time.Hour}.Targets())
		return tr
	}
	eval(t0)
	if tr := eval(t0.Add(11 * time.Second)); len(tr) != 1 || tr[0].Rule.Name != "instance_lost" {
		t.Fatalf("%+v", tr)
	}
	s.Heartbeat(&schema.Heartbeat{Service: "gateway", InstanceId: "g1", Ready: true, Figures: map[string]float64{"uptime_s": 17}}, t0.Add(12*time.Second))
	for _, x := range eval(t0.Add(12 * time.Second)) {
		if x.Rule.Name == "instance_lost" {
			if x.State != StateResolved || x.Message != "gateway instance g1 sends heartbeats again" {
				t.Fatalf("%s %q", x.State, x.Message)
			}
			return
		}
	}
	t.Fatal("instance_lost did not resolve")
}

package rules

import (
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/schema"

	"github.com/realmstream/realmstream/services/monitor/internal/figures"
	"github.com/realmstream/realmstream/services/monitor/internal/state"
)

const engineRules = `rules:
  - name: cache_low
    expr: cache_hit_ratio < 0.9
    for: 30s
    severity: warning
    message: "{{.shard}} at {{pct .cache_hit_ratio}}"
    value: cache_hit_ratio
    labels: {team: dba}
  - name: absent
    expr: "!reporting"
    severity: critical
    message: "{{.shard}} silent for {{dur .age_seconds}}"
`

func mustEngine(t *testing.T, doc string) *Engine {
	t.Helper()
	set, err := Parse("test", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return NewEngine(set)
}

// shardTargets builds the shard scope for one shard whose newest sample (at
// sampledAt) has the given cache hit ratio.
func shardTargets(now, sampledAt time.Time, ratio float64) map[Scope][]Target {
	st := state.New(state.Options{Window: time.Hour})
	st.AddSample(state.Point{At: sampledAt, StreamSeq: uint64(sampledAt.UnixNano()),
		Sample: figures.FromStats(&schema.DBStats{Shard: "pg0", Up: true, CacheHitRatio: ratio})})
	return Context{Snap: st.Snapshot(now), AbsenceAfter: 45 * time.Second}.Targets()
}

// TestForDuration: the alert is pending until the expression held for the
// whole for: duration, fires exactly once, and resolves on recovery; a dip
// shorter than for: never fires.
func TestForDuration(t *testing.T) {
	e := mustEngine(t, engineRules)
	t0 := time.Unix(1_700_000_000, 0)
	type step struct {
		at    time.Duration
		ratio float64
		want  string // transition expected at this step ("" none)
		state string // state of cache_low after the step ("" none)
	}
	steps := []step{
		{0, 0.99, "", ""},
		{10 * time.Second, 0.5, "", StatePending},         // starts holding
		{20 * time.Second, 0.95, "", ""},                  // dip shorter than 30s: reset
		{25 * time.Second, 0.5, "", StatePending},         // holds again from 25s
		{54 * time.Second, 0.5, "", StatePending},         // 29s: not yet
		{55 * time.Second, 0.4, StateFiring, StateFiring}, // 30s: fires
		{60 * time.Second, 0.4, "", StateFiring},          // no repeat
		{90 * time.Second, 0.99, StateResolved, ""},
		{95 * time.Second, 0.99, "", ""},
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		tr, errs := e.Eval(now, shardTargets(now, now, s.ratio))
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		got := ""
		for _, x := range tr {
			if x.Rule.Name == "cache_low" {
				got = x.State
				if x.State == StateFiring {
					if x.Since != t0.Add(25*time.Second) || x.Value != 0.4 || x.Message != "pg0 at 40.0%" ||
						x.Labels["team"] != "dba" || x.Labels["shard"] != "pg0" || x.Target != "shard=pg0" {
						t.Errorf("firing transition = %+v", x)
					}
				}
			}
		}
		if got != s.want {
			t.Errorf("at %v: transition %q, want %q", s.at, got, s.want)
		}
		st := ""
		for _, a := range e.Active() {
			if a.Rule == "cache_low" {
				st = a.State
			}
		}
		if st != s.state {
			t.Errorf("at %v: state %q, want %q", s.at, st, s.state)
		}
	}
}

// TestAbsence: a shard whose newest sample is older than AbsenceAfter fires
// at once (for: 0) and resolves when a sample arrives.
func TestAbsence(t *testing.T) {
	e := mustEngine(t, engineRules)
	t0 := time.Unix(1_700_000_000, 0)
	tr, _ := e.Eval(t0.Add(40*time.Second), shardTargets(t0.Add(40*time.Second), t0, 0.99))
	if len(tr) != 0 {
		t.Fatalf("40s silent: %v", tr)
	}
	now := t0.Add(46 * time.Second)
	tr, _ = e.Eval(now, shardTargets(now, t0, 0.99))
	if len(tr) != 1 || tr[0].Rule.Name != "absent" || tr[0].State != StateFiring || tr[0].Message != "pg0 silent for 46s" {
		t.Fatalf("46s silent: %+v", tr)
	}
	now = t0.Add(50 * time.Second)
	tr, _ = e.Eval(now, shardTargets(now, now, 0.99))
	if len(tr) != 1 || tr[0].State != StateResolved {
		t.Fatalf("sample back: %+v", tr)
	}
}

// TestTargetGoneResolves: a firing alert whose target disappears resolves.
func TestTargetGoneResolves(t *testing.T) {
	e := mustEngine(t, engineRules)
	t0 := time.Unix(1_700_000_000, 0)
	e.Eval(t0, shardTargets(t0, t0, 0.5))
	tr, _ := e.Eval(t0.Add(31*time.Second), shardTargets(t0.Add(31*time.Second), t0.Add(31*time.Second), 0.5))
	if len(tr) != 1 || tr[0].State != StateFiring {
		t.Fatalf("%+v", tr)
	}
	tr, _ = e.Eval(t0.Add(32*time.Second), map[Scope][]Target{})
	if len(tr) != 1 || tr[0].State != StateResolved || tr[0].Message != "resolved: pg0 at 50.0% (target gone)" {
		t.Fatalf("%+v", tr)
	}
	if len(e.Active()) != 0 {
		t.Fatal(e.Active())
	}
}

// TestRestoreAndFreeze: a restored firing alert is not announced again while
// it holds, and resolves once when it stops; frozen scopes keep their state.
func TestRestoreAndFreeze(t *testing.T) {
	e := mustEngine(t, engineRules)
	t0 := time.Unix(1_700_000_000, 0)
	e.Restore([]Active{{Rule: "cache_low", Severity: "warning", State: StateFiring, Target: "shard=pg0", Since: t0},
		{Rule: "deleted_rule", State: StateFiring, Target: "shard=pg0"}})
	if tr, _ := e.Eval(t0.Add(time.Minute), shardTargets(t0.Add(time.Minute), t0.Add(time.Minute), 0.5)); len(tr) != 0 {
		t.Fatalf("restored alert announced again: %+v", tr)
	}
	if tr, _ := e.Eval(t0.Add(2*time.Minute), map[Scope][]Target{}, ScopeShard); len(tr) != 0 {
		t.Fatalf("frozen scope changed: %+v", tr)
	}
	tr, _ := e.Eval(t0.Add(3*time.Minute), shardTargets(t0.Add(3*time.Minute), t0.Add(3*time.Minute), 0.99))
	if len(tr) != 1 || tr[0].State != StateResolved || tr[0].Since != t0 {
		t.Fatalf("%+v", tr)
	}
}

// TestRuntimeErrorCountsAsFalse: an expression that fails at run time (an
// index out of range) is reported and does not fire.
func TestRuntimeErrorCountsAsFalse(t *testing.T) {
	e := mustEngine(t, `rules:
  - name: first_table
    expr: len(tables) > 0 && tables[1].dead_tuples > 5
    severity: info
    message: x
`)
	now := time.Unix(1_700_000_000, 0)
	targets := shardTargets(now, now, 0.9)
	targets[ScopeShard][0].Env["tables"] = []map[string]any{{"dead_tuples": 9.0}}
	tr, errs := e.Eval(now, targets)
	if len(tr) != 0 || len(errs) != 1 || errs[0].Rule != "first_table" {
		t.Fatalf("tr=%v errs=%v", tr, errs)
	}
}

// TestZoneAndGlobalScopes evaluates heartbeat-derived targets.
func TestZoneAndGlobalScopes(t *testing.T) {
	e := mustEngine(t, `rules:
  - name: unowned
    scope: zone
    expr: owners == 0
    severity: critical
    message: "zone {{.zone}} has no owner"
  - name: no_world
    scope: global
    expr: alive("world") == 0
    severity: critical
    message: "no world instance ({{num .players_online}} players)"
`)
	now := time.Unix(1_700_000_000, 0)
	st := state.New(state.Options{})
	st.Heartbeat(&schema.Heartbeat{Service: "world", InstanceId: "w1", Players: 3,
		Zones: []*schema.ZoneOwnership{{Zone: "z0_0", Fence: 4, Players: 3}}}, now)
	ctx := Context{Snap: st.Snapshot(now), HeartbeatTimeout: 10 * time.Second, ExpectedZones: []string{"z0_0", "z1_0"}}
	tr, errs := e.Eval(now, ctx.Targets())
	if len(errs) > 0 || len(tr) != 1 || tr[0].Target != "zone=z1_0" || tr[0].Message != "zone z1_0 has no owner" {
		t.Fatalf("tr=%+v errs=%v", tr, errs)
	}
	later := now.Add(11 * time.Second) // w1's heartbeat is stale
	ctx = Context{Snap: st.Snapshot(later), HeartbeatTimeout: 10 * time.Second, ExpectedZones: []string{"z0_0", "z1_0"}}
	tr, _ = e.Eval(later, ctx.Targets())
	got := map[string]bool{}
	for _, x := range tr {
		got[x.Rule.Name+" "+x.Target] = true
	}
	if !got["unowned zone=z0_0"] || !got["no_world global"] || len(tr) != 2 {
		t.Fatalf("%+v", tr)
	}
}

// TestAbsenceFollowsInterval: a shard that samples every 60s is late after
// 3 intervals, not after the 45s default.
func TestAbsenceFollowsInterval(t *testing.T) {
	slow := figures.FromStats(&schema.DBStats{Shard: "pg0", IntervalMs: 60_000})
	fast := figures.FromStats(&schema.DBStats{Shard: "pg0", IntervalMs: 5_000})
	for _, c := range []struct {
		s    figures.Sample
		age  time.Duration
		want bool
	}{
		{slow, 100 * time.Second, true}, {slow, 181 * time.Second, false},
		{fast, 44 * time.Second, true}, {fast, 46 * time.Second, false},
	} {
		if got := Reporting(c.s, c.age, 45*time.Second); got != c.want {
			t.Errorf("interval %v age %v: reporting %v, want %v", c.s.Numbers["interval_ms"], c.age, got, c.want)
		}
	}
}

// TestDefaultRulesOnSamples runs a few default rules on realistic samples.
func TestDefaultRulesOnSamples(t *testing.T) {
	set, err := LoadFile("")
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(set)
	now := time.Unix(1_700_000_000, 0)
	st := state.New(state.Options{Window: time.Hour})
	st.AddSample(state.Point{At: now, StreamSeq: 1, Sample: figures.FromStats(&schema.DBStats{
		Shard: "pg0", Backend: "postgres", Up: true, SampledAtNs: now.UnixNano(), DaysAhead: 3,
		DefaultPartitionRows: 4, XidAge: 1.6e9, LongestIdleInTransactionSeconds: 120,
		Connections: 90, MaxConnections: 100, SuperuserReservedConnections: 3,
		Tables: []*schema.TableStat{{Name: "events", LiveTuples: 50000, DeadTuples: 20000, LastAutovacuumNs: now.Add(-11 * 24 * time.Hour).UnixNano()}},
	})})
	ctx := Context{Snap: st.Snapshot(now), AbsenceAfter: 45 * time.Second, HeartbeatTimeout: 10 * time.Second}
	e.Eval(now, ctx.Targets())
	tr, errs := e.Eval(now.Add(11*time.Minute), Context{Snap: st.Snapshot(now.Add(time.Second)), AbsenceAfter: time.Hour}.Targets())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := map[string]bool{}
	for _, x := range tr {
		got[x.Rule.Name] = true
	}
	for _, want := range []string{"default_partition_rows", "xid_wraparound_critical", "idle_in_transaction",
		"connections_near_max", "dead_tuples_high", "table_not_autovacuumed"} {
		if !got[want] {
			t.Errorf("%s did not fire; fired: %v", want, got)
		}
	}
	for _, not := range []string{"xid_wraparound_warning", "partitions_ahead_low", "shard_not_reporting", "cache_hit_ratio_low"} {
		if got[not] {
			t.Errorf("%s fired", not)
		}
	}
}

package rules

import (
	"fmt"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/schema"

	"github.com/realmstream/realmstream/services/monitor/internal/figures"
	"github.com/realmstream/realmstream/services/monitor/internal/state"
)

// benchContext is n shards with a 60-sample window each (15 min at 15 s).
func benchContext(n int) (Context, time.Time) {
	t0 := time.Unix(1_700_000_000, 0)
	st := state.New(state.Options{Window: time.Hour})
	for s := 0; s < n; s++ {
		for i := 0; i < 60; i++ {
			at := t0.Add(time.Duration(i) * 15 * time.Second)
			d := &schema.DBStats{Shard: fmt.Sprintf("pg%d", s), Backend: "postgres", Up: true, CacheHitRatio: 0.99,
				BlksHit: 1e6, BlksRead: 1e3, Connections: 20, MaxConnections: 100, DaysAhead: 3, ConsumerLag: int64(i % 7),
				Deadlocks: 1, CommitsPerSec: 100, RollbacksPerSec: 1, Pool: &schema.PoolStat{AcquiredConns: 2, MaxConns: 8},
				Tables: []*schema.TableStat{{Name: "events", LiveTuples: 1e6, DeadTuples: 1e3}, {Name: "players", LiveTuples: 1e3}}}
			st.AddSample(state.Point{At: at, StreamSeq: uint64(s*1000 + i + 1), Sample: figures.FromStats(d)})
		}
	}
	now := t0.Add(60 * 15 * time.Second)
	return Context{Snap: st.Snapshot(now), AbsenceAfter: 45 * time.Second, HeartbeatTimeout: 10 * time.Second}, now
}

// native is the default shard rules written in Go: the baseline that shows
// what the expression language costs.
func native(targets map[Scope][]Target) int {
	holds := 0
	for _, t := range targets[ScopeShard] {
		e := t.Env
		f := func(k string) float64 { return e[k].(float64) }
		up, rep := e["up"].(bool), e["reporting"].(bool)
		pg := e["backend"].(string) == "postgres"
		dead := false
		for _, tb := range e["tables"].([]map[string]any) {
			if tb["dead_tuples"].(float64) > 10000 && tb["dead_ratio"].(float64) >= 0.1 {
				dead = true
			}
		}
		conds := []bool{
			!rep, rep && !up,
			up && pg && f("blks_hit")+f("blks_read") > 10000 && f("cache_hit_ratio") < 0.9,
			up && f("max_connections") > 0 && f("connection_ratio") > 0.8,
			up && f("longest_idle_in_transaction_seconds") > 60,
			up && f("blocked_backends") > 0,
			up && f("xid_age") > 1e9 && f("xid_age") <= 1.5e9,
			up && f("xid_age") > 1.5e9,
			up && f("default_partition_rows") > 0,
			up && pg && f("days_ahead") < 2,
			f("consumer_lag") > 1000 && e["growing"].(func(string, string) bool)("consumer_lag", "2m"),
			up && dead,
			up && f("longest_transaction_seconds") > 300,
			up && f("commits_per_sec")+f("rollbacks_per_sec") > 1 && f("rollback_ratio") > 0.02,
			e["delta"].(func(string, string) float64)("deadlocks", "1m") > 5,
			f("pool_max_conns") > 0 && f("pool_acquired_conns") >= f("pool_max_conns") && e["rate"].(func(string, string) float64)("pool_empty_acquire_count", "1m") > 0,
		}
		for _, c := range conds {
			if c {
				holds++
			}
		}
	}
	return holds
}

// BenchmarkTick is one evaluation tick of the default rules (build the
// targets, evaluate every rule on every target) for n shards, against the
// same rules hand-written in Go. x_native = ns per tick / ns of the Go
// baseline tick (measured in the same run).
func BenchmarkTick(b *testing.B) {
	set, err := LoadFile("")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 16, 128} {
		ctx, now := benchContext(n)
		var baseNs float64 // the native sub-benchmark runs first, in the same process
		b.Run(fmt.Sprintf("shards=%d/native", n), func(b *testing.B) {
			for b.Loop() {
				native(ctx.Targets())
			}
			baseNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(baseNs/float64(n), "ns/shard")
		})
		b.Run(fmt.Sprintf("shards=%d/rules", n), func(b *testing.B) {
			e := NewEngine(set)
			for b.Loop() {
				if _, errs := e.Eval(now, ctx.Targets()); len(errs) > 0 {
					b.Fatal(errs)
				}
			}
			per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(per/float64(n), "ns/shard")
			if baseNs > 0 {
				b.ReportMetric(per/baseNs, "x_native")
			}
		})
	}
}

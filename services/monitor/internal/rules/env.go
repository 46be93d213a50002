package rules

import (
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/realmstream/realmstream/libs/schema"

	"github.com/realmstream/realmstream/services/monitor/internal/figures"
	"github.com/realmstream/realmstream/services/monitor/internal/state"
)

// Target is one thing a rule is evaluated on, with the variables its
// expression and message see.
type Target struct {
	Key    string            // "shard=pg0", "zone=z1_1", "instance=world/w1", "global"
	Labels map[string]string // e.g. {"shard": "pg0"}
	Env    map[string]any
}

// windowFuncs are the functions of the shard scope that look back over the window.
var windowFuncs = map[string]bool{"delta": true, "rate": true, "growing": true, "min_over": true, "max_over": true, "avg_over": true}

var figureNames = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range figures.Names() {
		m[n] = true
	}
	return m
}()

func knownFigure(name string) bool { return figureNames[name] || strings.HasPrefix(name, "pebble_") }

var tmplFuncs = template.FuncMap{
	// pct formats a ratio as a percentage: 0.873 -> "87.3%".
	"pct": func(v float64) string { return fmt.Sprintf("%.1f%%", v*100) },
	// num formats a number compactly: 12345678 -> "1.235e+07", 3 -> "3".
	"num": func(v float64) string { return fmt.Sprintf("%.4g", v) },
	// dur formats seconds as a duration: 93 -> "1m33s".
	"dur": func(v float64) string { return (time.Duration(v * float64(time.Second))).Round(time.Second).String() },
}

// IncidentWindow is the look-back of the incident variables (*_5m): an
// outage shorter than any timeout or evaluation interval still holds the
// rule for this long after it was seen, so it fires, and resolves after.
const IncidentWindow = 5 * time.Minute

// Context is what the environments are built from.
type Context struct {
	Snap             state.Snapshot
	AbsenceAfter     time.Duration // a shard with no sample for this long is not reporting
	HeartbeatTimeout time.Duration // an instance with no heartbeat for this long is not alive
	ExpectedZones    []string
}

// Targets builds every target of every scope.
func (c Context) Targets() map[Scope][]Target {
	out := map[Scope][]Target{}
	now := c.Snap.At
	reporting := 0
	down := 0
	for i := range c.Snap.Shards {
		sh := &c.Snap.Shards[i]
		env := shardEnv(sh, now, c.AbsenceAfter)
		if env["reporting"].(bool) {
			reporting++
		}
		if !env["up"].(bool) {
			down++
		}
		out[ScopeShard] = append(out[ScopeShard], Target{Key: "shard=" + sh.Name, Labels: map[string]string{"shard": sh.Name}, Env: env})
	}
	zones := c.Snap.Zones(c.ExpectedZones, c.HeartbeatTimeout)
	owned := 0
	for _, z := range zones {
		if len(z.Owners) > 0 {
			owned++
		}
		out[ScopeZone] = append(out[ScopeZone], Target{Key: "zone=" + z.Zone, Labels: map[string]string{"zone": z.Zone}, Env: zoneEnv(z)})
	}
	alive := map[string]float64{}
	var players, conns, aliveN float64
	for _, in := range c.Snap.Instances {
		env := instanceEnv(in, now, c.HeartbeatTimeout)
		if env["alive"].(bool) {
			alive[in.Service]++
			aliveN++
			players += float64(in.HB.GetPlayers())
			conns += float64(in.HB.GetConnections())
		}
		out[ScopeInstance] = append(out[ScopeInstance], Target{Key: "instance=" + in.Service + "/" + in.InstanceID,
			Labels: map[string]string{"service": in.Service, "instance": in.InstanceID}, Env: env})
	}
	g := globalEnv()
	g["shards"] = float64(len(c.Snap.Shards))
	g["shards_reporting"] = float64(reporting)
	g["shards_down"] = float64(down)
	g["instances_alive"] = aliveN
	g["players_online"] = players
	g["connections"] = conns
	g["zones"] = float64(len(zones))
	g["zones_owned"] = float64(owned)
	g["zones_unowned"] = float64(len(zones) - owned)
	g["alive"] = func(service string) float64 { return alive[service] }
	since := now.Add(-IncidentWindow)
	n, longest := state.Within(c.Snap.Outages, since)
	g["nats_outages_5m"] = float64(n)
	g["nats_outage_seconds_5m"] = longest
	gapped, maxGap := 0.0, 0.0
	for _, in := range c.Snap.Instances {
		if k, m := state.Within(in.Gaps, since); k > 0 {
			gapped++
			maxGap = max(maxGap, m)
		}
	}
	g["instances_with_gap_5m"] = gapped
	g["max_heartbeat_gap_5m"] = maxGap
	out[ScopeGlobal] = []Target{{Key: "global", Labels: map[string]string{}, Env: g}}
	return out
}

func shardEnv(sh *state.Shard, now time.Time, absenceAfter time.Duration) map[string]any {
	last := sh.Last()
	s := last.Sample
	env := make(map[string]any, len(s.Numbers)+24)
	for k, v := range s.Numbers {
		if s.Bools[k] {
			env[k] = v != 0
		} else {
			env[k] = v
		}
	}
	age := now.Sub(last.At)
	for k, v := range s.Strings {
		env[k] = v
	}
	env["shard"] = sh.Name
	env["backend"] = s.Backend
	env["instance_id"] = s.InstanceID
	env["error"] = s.Error
	env["age_seconds"] = age.Seconds()
	env["reporting"] = Reporting(s, age, absenceAfter)
	env["samples"] = float64(len(sh.Points))
	tables := make([]map[string]any, 0, len(s.Tables))
	for _, t := range s.Tables {
		// Seconds from the table's last autovacuum to the sample; a table never
		// autovacuumed counts from the epoch (as postgres_exporter's COALESCE does).
		vacAge := float64(s.SampledNS-t.LastAutovac) / 1e9
		tables = append(tables, map[string]any{"name": t.Name, "live_tuples": t.LiveTuples, "dead_tuples": t.DeadTuples,
			"dead_ratio": t.DeadRatio, "size_bytes": t.SizeBytes, "autovacuum_age_seconds": vacAge})
	}
	env["tables"] = tables
	parts := make([]map[string]any, 0, len(s.Partitions))
	for _, p := range s.Partitions {
		parts = append(parts, map[string]any{"name": p.Name, "from": p.From, "to": p.To, "rows": p.Rows,
			"size_bytes": p.SizeBytes, "is_default": p.IsDefault})
	}
	env["partitions"] = parts
	pebble := map[string]float64{}
	for k, v := range s.Numbers {
		if rest, ok := strings.CutPrefix(k, "pebble_"); ok {
			pebble[rest] = v
		}
	}
	env["pebble"] = pebble
	dur := func(d string) time.Duration {
		v, _ := time.ParseDuration(d) // literal, checked at load time
		return v
	}
	env["delta"] = func(name, d string) float64 { return sh.Delta(name, dur(d)) }
	env["rate"] = func(name, d string) float64 { return sh.Rate(name, dur(d)) }
	env["growing"] = func(name, d string) bool { return sh.Growing(name, dur(d)) }
	env["min_over"] = func(name, d string) float64 { lo, _, _ := sh.Aggregate(name, dur(d)); return lo }
	env["max_over"] = func(name, d string) float64 { _, hi, _ := sh.Aggregate(name, dur(d)); return hi }
	env["avg_over"] = func(name, d string) float64 { _, _, m := sh.Aggregate(name, dur(d)); return m }
	return env
}

// Reporting reports whether a shard whose newest sample is age old still
// counts as reporting: within absenceAfter, or within three of the shard's own
// sampling intervals when that is longer (the absent() pattern: a DB monitor
// sampling every minute is not late after 45 s).
func Reporting(s figures.Sample, age, absenceAfter time.Duration) bool {
	if absenceAfter <= 0 {
		return true
	}
	limit := absenceAfter
	if iv := time.Duration(s.Numbers["interval_ms"]) * time.Millisecond; 3*iv > limit {
		limit = 3 * iv
	}
	return age <= limit
}

func zoneEnv(z state.Zone) map[string]any {
	return map[string]any{
		"zone": z.Zone, "owner": z.Owner, "owners": float64(len(z.Owners)), "owner_ids": strings.Join(z.Owners, ","),
		"fence": float64(z.Fence), "last_seq": float64(z.LastSeq), "players": float64(z.Players), "expected": z.Expected,
	}
}

func instanceEnv(in state.Instance, now time.Time, timeout time.Duration) map[string]any {
	hb := in.HB
	figs := map[string]float64{}
	for k, v := range hb.GetFigures() {
		figs[k] = v
	}
	since := now.Add(-IncidentWindow)
	_, maxGap := state.Within(in.Gaps, since)
	lost := 0.0
	for _, e := range in.LeasesLost {
		if !e.At.Before(since) {
			lost += e.Value
		}
	}
	return map[string]any{
		"unclean_restarts_5m": float64(state.CountSince(in.Restarts, since)),
		"heartbeat_gap_5m":    maxGap,
		"leases_lost_5m":      lost,
		"service":             in.Service, "instance_id": in.InstanceID, "ready": hb.GetReady(), "alive": in.Alive(now, timeout),
		"stopping": hb.GetStopping(), "age_seconds": now.Sub(in.Seen).Seconds(), "http_addr": hb.GetHttpAddr(),
		"version": hb.GetVersion(), "connections": float64(hb.GetConnections()), "players": float64(hb.GetPlayers()),
		"zones": float64(len(hb.GetZones())), "figures": figs,
	}
}

func globalEnv() map[string]any {
	return map[string]any{
		"shards": 0.0, "shards_reporting": 0.0, "shards_down": 0.0, "instances_alive": 0.0, "players_online": 0.0,
		"connections": 0.0, "zones": 0.0, "zones_owned": 0.0, "zones_unowned": 0.0,
		"nats_outages_5m": 0.0, "nats_outage_seconds_5m": 0.0, "instances_with_gap_5m": 0.0, "max_heartbeat_gap_5m": 0.0,
		"alive": func(string) float64 { return 0 },
	}
}

// sampleEnv is a zero-valued environment of a scope, used to type-check rules.
func sampleEnv(scope Scope) (map[string]any, bool) {
	now := time.Unix(0, 0)
	switch scope {
	case ScopeShard:
		sh := &state.Shard{Name: "shard", Points: []state.Point{{At: now, Sample: figures.FromStats(&schema.DBStats{Shard: "shard"})}}}
		return shardEnv(sh, now, time.Minute), true
	case ScopeZone:
		return zoneEnv(state.Zone{Zone: "z0_0"}), true
	case ScopeInstance:
		return instanceEnv(state.Instance{Service: "svc", InstanceID: "i", Seen: now, HB: &schema.Heartbeat{}}, now, time.Minute), true
	case ScopeGlobal:
		return globalEnv(), true
	}
	return nil, false
}

// Variables lists the variable names of a scope (for docs and error hints).
func Variables(scope Scope) []string {
	env, _ := sampleEnv(scope)
	out := make([]string, 0, len(env))
	for k := range env {
		out = append(out, k)
	}
	return out
}

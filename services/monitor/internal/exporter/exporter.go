// Package exporter turns the monitor's state into Prometheus metrics at
// scrape time: every DB figure of every shard's newest sample as a gauge
// labelled by shard, per-table and per-partition figures, service and zone
// health, and the state of every alert.
package exporter

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/realmstream/realmstream/services/monitor/internal/rules"
)

// Source gives the collector a consistent view at scrape time.
type Source interface {
	RulesContext() rules.Context
	ActiveAlerts() []rules.Active
}

// Collector is an unchecked prometheus.Collector (its metric set depends on
// the figures present); names are stable: realm_db_<figure>{shard}.
type Collector struct{ src Source }

// New returns a collector reading src.
func New(src Source) *Collector { return &Collector{src: src} }

// Describe sends nothing: the collector is unchecked.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

var (
	descReporting = prometheus.NewDesc("realm_db_reporting", "1 when the shard sent DB stats within --absence-after.", []string{"shard"}, nil)
	descAge       = prometheus.NewDesc("realm_db_last_sample_age_seconds", "Seconds since the shard's newest DB stats event.", []string{"shard"}, nil)
	descTableLive = prometheus.NewDesc("realm_db_table_live_tuples", "Live tuples of a table.", []string{"shard", "table"}, nil)
	descTableDead = prometheus.NewDesc("realm_db_table_dead_tuples", "Dead tuples of a table.", []string{"shard", "table"}, nil)
	descTableSize = prometheus.NewDesc("realm_db_table_size_bytes", "Size of a table.", []string{"shard", "table"}, nil)
	descPartRows  = prometheus.NewDesc("realm_db_partition_rows", "Rows of an events partition (estimate except the default partition).", []string{"shard", "partition", "default"}, nil)
	descPartSize  = prometheus.NewDesc("realm_db_partition_size_bytes", "Size of an events partition.", []string{"shard", "partition", "default"}, nil)
	descAlert     = prometheus.NewDesc("realm_monitor_alert", "1 for every pending or firing alert (like Prometheus' ALERTS).", []string{"rule", "severity", "target", "alertstate"}, nil)
	descRuleFire  = prometheus.NewDesc("realm_monitor_rule_firing", "Number of targets on which the rule is firing.", []string{"rule", "severity"}, nil)
	descSvcUp     = prometheus.NewDesc("realm_service_up", "1 when the instance's heartbeat is recent.", []string{"service", "instance"}, nil)
	descSvcReady  = prometheus.NewDesc("realm_service_ready", "1 when the instance's last heartbeat said ready.", []string{"service", "instance"}, nil)
	descZoneOwn   = prometheus.NewDesc("realm_zone_owners", "Live world instances that claim the zone.", []string{"zone"}, nil)
	descZonePlay  = prometheus.NewDesc("realm_zone_players", "Players in the zone (from its owner's heartbeat).", []string{"zone"}, nil)
	descPlayers   = prometheus.NewDesc("realm_players_online", "Players in zones owned by live world instances.", nil, nil)
	// Not realm_gateway_connections: the gateways export that name themselves,
	// and a sum over both would count every client twice.
	descConns = prometheus.NewDesc("realm_monitor_gateway_connections", "Client connections of live gateway instances, from their heartbeats.", nil, nil)
)

// FigureHelp documents one realm_db_<figure> gauge.
const figureHelp = "DB stats figure %s of the shard's newest sample (see docs/monitor.md)."

// Collect emits the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx := c.src.RulesContext()
	now := ctx.Snap.At
	descs := map[string]*prometheus.Desc{}
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for i := range ctx.Snap.Shards {
		sh := &ctx.Snap.Shards[i]
		last := sh.Last()
		for name, v := range last.Sample.Numbers {
			d := descs[name]
			if d == nil {
				d = prometheus.NewDesc("realm_db_"+name, strings.Replace(figureHelp, "%s", name, 1), []string{"shard"}, nil)
				descs[name] = d
			}
			g(d, v, sh.Name)
		}
		age := now.Sub(last.At)
		g(descAge, age.Seconds(), sh.Name)
		g(descReporting, b2f(rules.Reporting(last.Sample, age, ctx.AbsenceAfter)), sh.Name)
		for _, t := range last.Sample.Tables {
			g(descTableLive, t.LiveTuples, sh.Name, t.Name)
			g(descTableDead, t.DeadTuples, sh.Name, t.Name)
			g(descTableSize, t.SizeBytes, sh.Name, t.Name)
		}
		for _, p := range last.Sample.Partitions {
			def := strconv.FormatBool(p.IsDefault)
			g(descPartRows, p.Rows, sh.Name, p.Name, def)
			g(descPartSize, p.SizeBytes, sh.Name, p.Name, def)
		}
	}
	firing := map[[2]string]float64{}
	for _, r := range rulesOf(c.src) {
		firing[[2]string{r.Name, r.SevName}] = 0
	}
	for _, a := range c.src.ActiveAlerts() {
		g(descAlert, 1, a.Rule, a.Severity, a.Target, a.State)
		if a.State == rules.StateFiring {
			firing[[2]string{a.Rule, a.Severity}]++
		}
	}
	for k, v := range firing {
		g(descRuleFire, v, k[0], k[1])
	}
	var players, conns float64
	for _, in := range ctx.Snap.Instances {
		alive := in.Alive(now, ctx.HeartbeatTimeout)
		g(descSvcUp, b2f(alive), in.Service, in.InstanceID)
		g(descSvcReady, b2f(in.HB.GetReady()), in.Service, in.InstanceID)
		if alive {
			players += float64(in.HB.GetPlayers())
			conns += float64(in.HB.GetConnections())
		}
	}
	g(descPlayers, players)
	g(descConns, conns)
	for _, z := range ctx.Snap.Zones(ctx.ExpectedZones, ctx.HeartbeatTimeout) {
		g(descZoneOwn, float64(len(z.Owners)), z.Zone)
		g(descZonePlay, float64(z.Players), z.Zone)
	}
}

// RuleLister is optionally implemented by the source to report rules that are not firing as 0.
type RuleLister interface{ Rules() []*rules.Rule }

func rulesOf(src Source) []*rules.Rule {
	if rl, ok := src.(RuleLister); ok {
		return rl.Rules()
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

package monitor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
)

// feeder plays persist's DB monitor (DB stats events on stats.db.<shard>)
// and the services' heartbeats, every 100ms, with figures the test changes.
type feeder struct {
	t  *testing.T
	js jetstream.JetStream
	nc *nats.Conn

	mu     sync.Mutex
	seq    uint64
	shards map[string]func(*schema.DBStats) // nil func = healthy; absent = not reporting
	hbs    map[string]*schema.Heartbeat     // by service/instance

	stop chan struct{}
	done chan struct{}
}

func newFeeder(t *testing.T, js jetstream.JetStream, nc *nats.Conn) *feeder {
	f := &feeder{t: t, js: js, nc: nc, shards: map[string]func(*schema.DBStats){}, hbs: map[string]*schema.Heartbeat{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	t.Cleanup(func() { close(f.stop); <-f.done })
	return f
}

func (f *feeder) set(shard string, mut func(*schema.DBStats)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shards[shard] = mut
}

func (f *feeder) silence(shard string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.shards, shard)
}

func (f *feeder) heartbeat(hb *schema.Heartbeat) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hbs[hb.GetService()+"/"+hb.GetInstanceId()] = hb
}

func (f *feeder) stopHeartbeat(service, instance string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.hbs, service+"/"+instance)
}

func (f *feeder) run() {
	defer close(f.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		f.mu.Lock()
		f.seq++
		var msgs []*nats.Msg
		for shard, mut := range f.shards {
			s := sample(shard, f.seq)
			if mut != nil {
				mut(s)
			}
			b, _ := proto.Marshal(s)
			m := &nats.Msg{Subject: wire.StatsDBSubject(shard), Data: b, Header: nats.Header{}}
			m.Header.Set(wire.HeaderMsgID, fmt.Sprintf("%s:%d", shard, s.GetSampledAtNs()))
			msgs = append(msgs, m)
		}
		var hbs [][]byte
		var subj []string
		for _, hb := range f.hbs {
			c := proto.Clone(hb).(*schema.Heartbeat)
			c.SentAtNs = time.Now().UnixNano()
			b, _ := proto.Marshal(c)
			hbs = append(hbs, b)
			subj = append(subj, wire.HeartbeatSubject(c.GetService(), c.GetInstanceId()))
		}
		f.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, m := range msgs {
			if _, err := f.js.PublishMsg(ctx, m); err != nil {
				f.t.Logf("feeder: publish %s: %v", m.Subject, err)
			}
		}
		cancel()
		for i, b := range hbs {
			_ = f.nc.Publish(subj[i], b)
		}
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
	}
}

func worldHB(instance string, zones ...string) *schema.Heartbeat {
	hb := &schema.Heartbeat{Service: "world", InstanceId: instance, Ready: true, HttpAddr: "127.0.0.1:8081"}
	for i, z := range zones {
		hb.Zones = append(hb.Zones, &schema.ZoneOwnership{Zone: z, Fence: uint64(10 + i), LastSeq: uint64(1000 * (i + 1)), Players: int32(5 + i)})
		hb.Players += int64(5 + i)
	}
	return hb
}

// TestAlertsFireAndResolve drives real DB stats events and heartbeats through
// embedded JetStream into a running monitor: a threshold rule fires only
// after its for: duration and resolves on recovery, a shard that stops
// reporting raises the absence alert (and clears it when it comes back), a
// zone whose owner disappears raises zone_without_owner; every transition
// appears on alerts.<severity> and at the webhook (which fails its first
// request, so delivery goes through the retry).
func TestAlertsFireAndResolve(t *testing.T) {
	srv, nc, js := natstest.StartWithStreams(t)
	alerts := collectAlerts(t, nc)
	wh := newHook(t, 1)
	f := newFeeder(t, js, nc)
	f.set("pg0", nil)
	f.set("pg1", nil)
	f.heartbeat(worldHB("w1", "z0_0", "z1_0"))
	f.heartbeat(&schema.Heartbeat{Service: "gateway", InstanceId: "g1", Ready: true, Connections: 42})

	cfg := testConfig(t, srv.URL)
	cfg.WebhookURL = wh.URL
	m := start(t, cfg)
	addr := m.svc.HTTPAddr()

	// Both shards and the zones are seen; nothing fires while all is healthy.
	waitfor.True(t, 10*time.Second, func() error {
		body, err := httpGet(addr, "/metrics")
		if err != nil {
			return err
		}
		if strings.Contains(body, "\nrealm_gateway_connections") {
			t.Errorf("the monitor exports realm_gateway_connections, which the gateways export: sums count every client twice")
		}
		for _, want := range []string{`realm_db_cache_hit_ratio{shard="pg0"} 0.99`, `realm_db_cache_hit_ratio{shard="pg1"}`,
			`realm_db_partition_rows{default="true",partition="events_default",shard="pg0"} 0`,
			`realm_zone_owners{zone="z0_0"} 1`, `realm_players_online 11`, `realm_monitor_gateway_connections 42`,
			`realm_monitor_rule_firing{rule="cache_hit_ratio_low",severity="warning"} 0`} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("/metrics lacks %s", want)
			}
		}
		return nil
	})
	// Past the start-up grace (one heartbeat timeout) nothing fires.
	time.Sleep(cfg.HeartbeatTimeout + 2*cfg.EvalInterval) // a duration under test, not a wait for an event
	for _, a := range m.svc.ActiveAlerts() {
		if a.State == "firing" {
			t.Fatalf("alert firing while healthy: %+v", a)
		}
	}

	// 1. Cache hit ratio drops on pg0: pending first (for: 300ms), then firing.
	lowSince := time.Now()
	f.set("pg0", func(s *schema.DBStats) { s.CacheHitRatio = 0.42 })
	waitfor.True(t, 10*time.Second, func() error { return alerts.has("cache_hit_ratio_low", "shard=pg0", "firing") })
	got, subj := alerts.find("cache_hit_ratio_low", "shard=pg0", "firing")
	a := got[0]
	if subj[0] != "alerts.warning" || a.GetSeverity() != schema.Severity_SEVERITY_WARNING {
		t.Errorf("alert on %s severity %v, want alerts.warning", subj[0], a.GetSeverity())
	}
	if held := time.Unix(0, a.GetAtNs()).Sub(time.Unix(0, a.GetSinceNs())); held < 300*time.Millisecond {
		t.Errorf("fired after holding %v, want >= for: 300ms", held)
	}
	if time.Unix(0, a.GetAtNs()).Before(lowSince.Add(300 * time.Millisecond)) {
		t.Errorf("fired %v after the drop, before for: 300ms", time.Unix(0, a.GetAtNs()).Sub(lowSince))
	}
	if a.GetValue() != 0.42 || a.GetLabels()["shard"] != "pg0" || !strings.Contains(a.GetMessage(), "42.0%") || a.GetSource() != "mon-test" {
		t.Errorf("alert = %v", a)
	}
	if err := alerts.has("cache_hit_ratio_low", "shard=pg1", "firing"); err == nil {
		t.Error("pg1 is healthy but alerted")
	}
	waitfor.True(t, 10*time.Second, func() error { return wh.has("cache_hit_ratio_low", "shard=pg0", "firing") })
	waitfor.True(t, 5*time.Second, func() error {
		body, _ := httpGet(addr, "/metrics")
		if !strings.Contains(body, `realm_monitor_alert{alertstate="firing",rule="cache_hit_ratio_low",severity="warning",target="shard=pg0"} 1`) {
			return fmt.Errorf("alert state not in /metrics")
		}
		if !strings.Contains(body, `realm_monitor_webhook_total{outcome="retried"} 1`) {
			return fmt.Errorf("webhook retry not counted")
		}
		return nil
	})

	// 2. It recovers: resolved, on NATS and at the webhook; fired exactly once.
	f.set("pg0", nil)
	waitfor.True(t, 10*time.Second, func() error { return alerts.has("cache_hit_ratio_low", "shard=pg0", "resolved") })
	waitfor.True(t, 10*time.Second, func() error { return wh.has("cache_hit_ratio_low", "shard=pg0", "resolved") })
	if n, _ := alerts.find("cache_hit_ratio_low", "shard=pg0", "firing"); len(n) != 1 {
		t.Errorf("fired %d times, want 1", len(n))
	}

	// 3. pg1 stops reporting: absence alert (critical) after --absence-after.
	silentSince := time.Now()
	f.silence("pg1")
	waitfor.True(t, 10*time.Second, func() error { return alerts.has("shard_not_reporting", "shard=pg1", "firing") })
	got, subj = alerts.find("shard_not_reporting", "shard=pg1", "firing")
	if subj[0] != "alerts.critical" {
		t.Errorf("absence alert on %s, want alerts.critical", subj[0])
	}
	if since := time.Since(silentSince); since < cfg.AbsenceAfter {
		t.Errorf("absence alert after %v, want >= %v", since, cfg.AbsenceAfter)
	}
	if got[0].GetValue() < cfg.AbsenceAfter.Seconds() {
		t.Errorf("absence value %v s, want >= %v", got[0].GetValue(), cfg.AbsenceAfter.Seconds())
	}
	waitfor.True(t, 10*time.Second, func() error { return wh.has("shard_not_reporting", "shard=pg1", "firing") })
	if err := alerts.has("shard_not_reporting", "shard=pg0", "firing"); err == nil {
		t.Error("pg0 reports but got an absence alert")
	}
	f.set("pg1", nil)
	waitfor.True(t, 10*time.Second, func() error { return alerts.has("shard_not_reporting", "shard=pg1", "resolved") })

	// 4. Consumer lag growing and rows in the default partition, at once.
	var lag int64 = 200
	var lagMu sync.Mutex
	f.set("pg0", func(s *schema.DBStats) {
		lagMu.Lock()
		lag += 50
		s.ConsumerLag = lag
		lagMu.Unlock()
		s.DefaultPartitionRows = 17
		s.Partitions[3].Rows = 17
	})
	waitfor.True(t, 10*time.Second, func() error { return alerts.has("consumer_lag_growing", "shard=pg0", "firing") })
	waitfor.True(t, 10*time.Second, func() error { return alerts.has("default_partition_rows", "shard=pg0", "firing") })
	f.set("pg0", nil)
	waitfor.True(t, 10*time.Second, func() error { return alerts.has("consumer_lag_growing", "shard=pg0", "resolved") })
	waitfor.True(t, 10*time.Second, func() error { return alerts.has("default_partition_rows", "shard=pg0", "resolved") })

	// 5. The world instance owning z1_0 vanishes: zone without owner; another takes over.
	f.heartbeat(worldHB("w1", "z0_0"))
	waitfor.True(t, 10*time.Second, func() error { return alerts.has("zone_without_owner", "zone=z1_0", "firing") })
	if err := alerts.has("zone_without_owner", "zone=z0_0", "firing"); err == nil {
		t.Error("z0_0 is owned but alerted")
	}
	f.heartbeat(worldHB("w2", "z1_0"))
	waitfor.True(t, 10*time.Second, func() error { return alerts.has("zone_without_owner", "zone=z1_0", "resolved") })
	waitfor.True(t, 10*time.Second, func() error { return wh.has("zone_without_owner", "zone=z1_0", "resolved") })
}

package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/wire"

	"github.com/realmstream/realmstream/services/monitor/internal/notify"
)

// testRules are short-duration versions of the default rule shapes, so the
// tests see for:, firing and resolving in well under a second.
const testRules = `
rules:
  - name: cache_hit_ratio_low
    expr: 'up && cache_hit_ratio < 0.90'
    for: 300ms
    severity: warning
    message: "shard {{.shard}}: cache hit ratio {{pct .cache_hit_ratio}} is below 90%"
    value: cache_hit_ratio
  - name: shard_not_reporting
    expr: "!reporting"
    severity: critical
    message: "shard {{.shard}} has sent no DB stats for {{dur .age_seconds}}"
    value: age_seconds
  - name: consumer_lag_growing
    expr: 'consumer_lag > 100 && growing("consumer_lag", "1s")'
    severity: warning
    message: "shard {{.shard}}: consumer lag {{num .consumer_lag}} and growing"
  - name: default_partition_rows
    expr: "default_partition_rows > 0"
    severity: warning
    message: "shard {{.shard}}: {{num .default_partition_rows}} rows in the default partition"
  - name: zone_without_owner
    scope: zone
    expr: "owners == 0"
    for: 200ms
    severity: critical
    message: "zone {{.zone}} has no owner"
`

func writeRules(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func testConfig(t *testing.T, natsURL string) Config {
	cfg := DefaultConfig()
	cfg.NATSURL = natsURL
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.InstanceID = "mon-test"
	cfg.RulesPath = writeRules(t, testRules)
	cfg.EvalInterval = 50 * time.Millisecond
	// Generous against a loaded CI machine (the feeder publishes every 100ms).
	cfg.AbsenceAfter = 3 * time.Second
	cfg.HeartbeatTimeout = 2 * time.Second
	cfg.Heartbeat = 200 * time.Millisecond
	cfg.Zones = "z0_0,z1_0"
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.WebhookBackoff = 20 * time.Millisecond
	return cfg
}

type running struct {
	svc     *Service
	run     *svcmain.Running
	stopped bool
}

// start runs a monitor until the test ends (or stop is called).
func start(t *testing.T, cfg Config) *running {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	svc, err := New(cfg, log)
	if err != nil {
		t.Fatalf("monitor.New: %v", err)
	}
	run, err := svcmain.Start(context.Background(), "monitor", svc, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{svc: svc, run: run}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.stopped {
		return
	}
	r.stopped = true
	if err := r.run.Stop(15 * time.Second); err != nil {
		t.Errorf("monitor Run: %v", err)
	}
}

// testWriter sends logs to t.Log, dropping them once the test is over.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line racing the end of the test
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// sample is a healthy Postgres shard's DB stats event.
func sample(shard string, seq uint64) *schema.DBStats {
	return &schema.DBStats{
		SchemaVersion: 1, Shard: shard, Backend: "postgres", InstanceId: "persist-1",
		SampledAtNs: time.Now().UnixNano(), SampleSeq: seq, Up: true,
		XactCommit: int64(1000 + 50*seq), BlksHit: int64(99000 + 1000*seq), BlksRead: 500, CacheHitRatio: 0.99,
		CommitsPerSec: 25 + float64(seq%7), Connections: 12 + int32(seq%5), MaxConnections: 100,
		PartitionCount: 4, DaysAhead: 3, DatabaseSizeBytes: 64 << 20,
		Partitions: []*schema.PartitionStat{
			{Name: "events_20261125", RangeFrom: "2026-11-25", RangeTo: "2026-11-26", Rows: 120000, SizeBytes: 24 << 20},
			{Name: "events_20261126", RangeFrom: "2026-11-26", RangeTo: "2026-11-27", Rows: 45000 + int64(seq*100), SizeBytes: 9 << 20},
			{Name: "events_20261127", RangeFrom: "2026-11-27", RangeTo: "2026-11-28"},
			{Name: "events_default", IsDefault: true},
		},
		Tables: []*schema.TableStat{
			{Name: "events", LiveTuples: 165000, DeadTuples: 1200 + int64(seq*10), SizeBytes: 33 << 20},
			{Name: "players", LiveTuples: 800, DeadTuples: 40, SizeBytes: 1 << 20},
		},
		Pool:        &schema.PoolStat{TotalConns: 4, IdleConns: 2, AcquiredConns: 2, MaxConns: 8, AcquireCount: int64(seq * 10)},
		ConsumerLag: int64(seq % 3),
	}
}

func publishStats(t *testing.T, js jetstream.JetStream, s *schema.DBStats) {
	t.Helper()
	b, err := proto.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: wire.StatsDBSubject(s.GetShard()), Data: b, Header: nats.Header{}}
	msg.Header.Set(wire.HeaderMsgID, fmt.Sprintf("%s:%d", s.GetShard(), s.GetSampledAtNs()))
	msg.Header.Set(wire.HeaderSchema, wire.SchemaVersion)
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("publish stats: %v", err)
	}
}

func publishHeartbeat(t *testing.T, nc *nats.Conn, hb *schema.Heartbeat) {
	t.Helper()
	hb.SentAtNs = time.Now().UnixNano()
	b, _ := proto.Marshal(hb)
	if err := nc.Publish(wire.HeartbeatSubject(hb.GetService(), hb.GetInstanceId()), b); err != nil {
		t.Fatal(err)
	}
}

// alertLog collects alerts from alerts.> (core NATS).
type alertLog struct {
	mu     sync.Mutex
	alerts []*schema.Alert
	subj   []string
}

func collectAlerts(t *testing.T, nc *nats.Conn) *alertLog {
	t.Helper()
	l := &alertLog{}
	sub, err := nc.Subscribe(wire.AlertSubjects, func(m *nats.Msg) {
		var a schema.Alert
		if err := proto.Unmarshal(m.Data, &a); err != nil {
			t.Errorf("alert on %s: %v", m.Subject, err)
			return
		}
		l.mu.Lock()
		l.alerts = append(l.alerts, &a)
		l.subj = append(l.subj, m.Subject)
		l.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return l
}

// find returns the transitions (repeats left out) with rule, target and
// state, with their subjects.
func (l *alertLog) find(rule, target, state string) ([]*schema.Alert, []string) {
	return l.match(rule, target, state, false)
}

// match returns the alerts with rule, target and state, repeats too when
// repeats is set, with their subjects.
func (l *alertLog) match(rule, target, state string, repeats bool) ([]*schema.Alert, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*schema.Alert
	var subj []string
	for i, a := range l.alerts {
		if a.GetRule() == rule && a.GetTarget() == target && a.GetState() == state && (repeats || !a.GetRepeat()) {
			out = append(out, a)
			subj = append(subj, l.subj[i])
		}
	}
	return out, subj
}

func (l *alertLog) has(rule, target, state string) error {
	if a, _ := l.find(rule, target, state); len(a) > 0 {
		return nil
	}
	return fmt.Errorf("no %s alert %s on %s yet", state, rule, target)
}

// hasRepeat reports a repeat of a firing alert (rule, target).
func (l *alertLog) hasRepeat(rule, target string) error {
	a, _ := l.match(rule, target, "firing", true)
	for _, x := range a {
		if x.GetRepeat() {
			return nil
		}
	}
	return fmt.Errorf("no repeat of firing alert %s on %s yet", rule, target)
}

// hook is a webhook receiver (the user's endpoint). It answers 500 to the
// first failFirst requests to exercise the retry.
type hook struct {
	*httptest.Server
	mu        sync.Mutex
	got       []notify.Payload
	requests  int
	failFirst int
}

func newHook(t *testing.T, failFirst int) *hook {
	h := &hook{failFirst: failFirst}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.requests++
		if h.requests <= h.failFirst {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		var p notify.Payload
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want POST json", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.got = append(h.got, p)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) has(rule, target, state string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.got {
		if p.Rule == rule && p.Target == target && p.State == state {
			return nil
		}
	}
	return fmt.Errorf("webhook: no %s %s on %s among %d notifications", state, rule, target, len(h.got))
}

func httpGet(addr, path string) (string, error) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), errors.New(resp.Status + ": " + string(b))
	}
	return string(b), nil
}

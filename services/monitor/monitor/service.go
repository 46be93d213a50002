package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/opsserver"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/wire"

	"github.com/realmstream/realmstream/services/monitor/internal/dashboard"
	"github.com/realmstream/realmstream/services/monitor/internal/exporter"
	"github.com/realmstream/realmstream/services/monitor/internal/figures"
	"github.com/realmstream/realmstream/services/monitor/internal/notify"
	"github.com/realmstream/realmstream/services/monitor/internal/rules"
	"github.com/realmstream/realmstream/services/monitor/internal/state"
)

// AlertStateBucket is the JetStream key-value bucket where the monitor keeps
// its firing alerts, so that a restarted monitor neither announces an alert
// that is still firing a second time nor forgets to resolve it. It is private
// to the monitor (no other service reads it).
const AlertStateBucket = "MONITOR_ALERTS"

// ServiceName is the monitor's name in heartbeats (svc.hb.monitor.<instance>).
const ServiceName = "monitor"

const recentEvents = 50

// Service is a running monitor.
type Service struct {
	cfg      Config
	log      *slog.Logger
	set      *rules.Set
	engine   *rules.Engine
	store    *state.Store
	hub      *dashboard.Hub
	ops      *opsserver.Server
	webhook  *notify.Webhook
	expected []string
	ready    chan struct{}
	stopping chan struct{} // closed when Run begins to stop: ends the dashboard's event streams
	started  time.Time     // when Run connected; see evaluate
	// downSince is when the NATS connection dropped (unix ns), 0 while connected.
	downSince atomic.Int64

	nc   *nats.Conn
	kv   jetstream.KeyValue
	lags *dashboard.LagPoller // per-zone command lag for the dashboard (set in Run)

	samples     *prometheus.CounterVec
	transitions *prometheus.CounterVec
	evalErrors  *prometheus.CounterVec
	deliveries  *prometheus.CounterVec
	evalSeconds prometheus.Histogram

	mu        sync.Mutex // guards recent and errLogged
	recent    []dashboard.Event
	errLogged map[string]time.Time
}

// New validates cfg, loads and validates the rules and builds the service. A
// bad rules file is an error here: the service never runs half-configured.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	set, err := rules.LoadFile(cfg.RulesPath)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	expected, _ := cfg.expectedZones()
	s := &Service{
		cfg: cfg, log: log, set: set, engine: rules.NewEngine(set),
		store:    state.New(state.Options{Window: cfg.Window, MaxSamples: cfg.WindowMaxSamples, ForgetAfter: cfg.ForgetAfter}),
		hub:      dashboard.NewHub(),
		ops:      opsserver.New(),
		expected: expected,
		ready:    make(chan struct{}),
		stopping: make(chan struct{}),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realm_monitor_stats_events_total",
			Help: "DB stats events consumed, by result (kept, duplicate, invalid)."}, []string{"result"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realm_monitor_alert_transitions_total",
			Help: "Alerts that fired or resolved."}, []string{"rule", "severity", "state"}),
		evalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realm_monitor_rule_errors_total",
			Help: "Run-time errors of rule expressions (the rule counts as not holding)."}, []string{"rule"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realm_monitor_webhook_total",
			Help: "Webhook notifications by outcome (delivered, retried, failed, dropped)."}, []string{"outcome"}),
		evalSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "realm_monitor_eval_seconds",
			Help: "Time to evaluate every rule once.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8)}),
		errLogged: map[string]time.Time{},
	}
	s.ops.Registry.MustRegister(s.samples, s.transitions, s.evalErrors, s.deliveries, s.evalSeconds, exporter.New(s))
	var links []dashboard.Link
	if cfg.PlayURL != "" {
		links = append(links, dashboard.Link{Name: "▶ play", URL: cfg.PlayURL})
	}
	dashboard.Register(s.ops.Mux, s.hub, s.stopping, links...)
	dashboard.RegisterTimeline(s.ops.Mux, func(ctx context.Context, subj string, data []byte) ([]byte, error) {
		if s.nc == nil {
			return nil, errors.New("monitor not connected to NATS yet")
		}
		m, err := s.nc.RequestWithContext(ctx, subj, data)
		if err != nil {
			return nil, err
		}
		return m.Data, nil
	}, 30*time.Second)
	if cfg.WebhookURL != "" {
		s.webhook = notify.NewWebhook(notify.WebhookOptions{URL: cfg.WebhookURL, Attempts: cfg.WebhookAttempts,
			Backoff: cfg.WebhookBackoff, Timeout: cfg.WebhookTimeout, Queue: cfg.WebhookQueue}, s.log,
			func(outcome string) { s.deliveries.WithLabelValues(outcome).Inc() })
	}
	return s, nil
}

// Ready is closed when the monitor consumes, evaluates and serves HTTP.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// HTTPAddr is the bound address of the ops server and dashboard (valid after Ready).
func (s *Service) HTTPAddr() string { return s.ops.Addr() }

// Rules returns the loaded rules.
func (s *Service) Rules() []*rules.Rule { return s.set.Rules }

// RulesContext is the current view of shards, instances and zones (for /metrics).
func (s *Service) RulesContext() rules.Context {
	return rules.Context{Snap: s.store.Snapshot(time.Now()), AbsenceAfter: s.cfg.AbsenceAfter,
		HeartbeatTimeout: s.cfg.HeartbeatTimeout, ExpectedZones: s.expected}
}

// ActiveAlerts returns the pending and firing alerts.
func (s *Service) ActiveAlerts() []rules.Active { return s.engine.Active() }

// Run connects, restores state, consumes and evaluates until ctx is
// cancelled, then drains within cfg.ShutdownTimeout. It returns nil on a clean stop.
func (s *Service) Run(ctx context.Context) error {
	nc, err := svcmain.Connect(ServiceName, &s.cfg.Common, s.log,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close on stop
				s.log.Warn("nats disconnected", "err", err)
				s.downSince.Store(time.Now().UnixNano())
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			s.log.Info("nats reconnected", "url", c.ConnectedUrl())
			// The outage is an incident the rules see for 5 minutes
			// (nats_interrupted), however short it was.
			if from := s.downSince.Swap(0); from != 0 {
				s.store.NATSOutage(time.Unix(0, from), time.Now())
			}
		}))
	if err != nil {
		return err
	}
	s.nc = nc
	s.started = time.Now()
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("monitor: jetstream: %w", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.cfg.EnsureStreams(startCtx, js); err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	if err := s.openAlertState(startCtx, js); err != nil {
		return err
	}
	if err := s.restoreWindow(startCtx, js); err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(startCtx, wire.StreamStats, jetstream.ConsumerConfig{
		Durable:       wire.DurableMonitorStats,
		Description:   "monitor: DB stats events",
		FilterSubject: wire.StatsDBSubjects,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1000,
	})
	if err != nil {
		return fmt.Errorf("monitor: consumer %s on %s: %w", wire.DurableMonitorStats, wire.StreamStats, err)
	}
	cc, err := cons.Consume(s.onStats, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		s.log.Debug("stats consumer", "err", err)
	}))
	if err != nil {
		return fmt.Errorf("monitor: consume %s: %w", wire.StatsDBSubjects, err)
	}
	hbSub, err := nc.Subscribe(wire.HeartbeatAll, s.onHeartbeat)
	if err != nil {
		cc.Stop()
		return fmt.Errorf("monitor: subscribe %s: %w", wire.HeartbeatAll, err)
	}
	// The subscription must be live on the server before the monitor says it is
	// ready: a heartbeat published in between would be lost, and a restart
	// (uptime going back) judged from the next one only.
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		cc.Stop()
		_ = hbSub.Unsubscribe()
		return fmt.Errorf("monitor: flush subscription %s: %w (is NATS reachable?)", wire.HeartbeatAll, err)
	}
	s.ops.AddCheck("nats", func(context.Context) error {
		if !nc.IsConnected() {
			return errors.New("nats: " + nc.Status().String())
		}
		return nil
	})
	if err := s.ops.Listen(s.cfg.HTTPAddr); err != nil {
		cc.Stop()
		_ = hbSub.Unsubscribe()
		return fmt.Errorf("monitor: listen %s: %w", s.cfg.HTTPAddr, err)
	}

	var wg sync.WaitGroup
	drainCtx, drainCancel := context.WithCancel(context.Background())
	defer drainCancel()
	if s.webhook != nil {
		wg.Go(func() { s.webhook.Run(ctx, drainCtx) })
	}
	s.lags = dashboard.NewLagPoller(js)
	wg.Go(func() { s.lags.Run(ctx, s.zonesSeen, 5*time.Second) })
	s.evaluate(time.Now())
	wg.Go(func() { s.loop(ctx, s.cfg.EvalInterval, s.evaluate) })
	if s.cfg.AlertRepeat > 0 {
		wg.Go(func() { s.loop(ctx, s.cfg.AlertRepeat, s.repeatFiring) })
	}
	s.sendHeartbeat(true, false) // before ready: the first one must not wait for the loop
	wg.Go(func() { svcmain.Heartbeats(ctx, s.cfg.Heartbeat, func() { s.sendHeartbeat(true, false) }) })
	s.ops.SetReady(true)
	close(s.ready)
	s.log.Info("monitor ready", "http", s.HTTPAddr(), "rules", len(s.set.Rules), "rules_source", s.set.Source,
		"webhook", s.cfg.WebhookURL != "", "instance", s.cfg.InstanceID)

	<-ctx.Done()
	s.log.Info("monitor stopping")
	s.ops.SetReady(false)
	close(s.stopping)
	deadline := time.AfterFunc(s.cfg.ShutdownTimeout, drainCancel)
	defer deadline.Stop()
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-drainCtx.Done():
	}
	_ = hbSub.Unsubscribe()
	s.sendHeartbeat(false, true)
	wg.Wait() // the webhook drains its queue until drainCtx ends
	shCtx, shCancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer shCancel()
	_ = s.ops.Shutdown(shCtx)
	if err := nc.FlushTimeout(s.cfg.ShutdownTimeout); err != nil {
		s.log.Warn("nats flush on stop", "err", err)
	}
	return nil
}

func (s *Service) loop(ctx context.Context, every time.Duration, fn func(time.Time)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			fn(now)
		}
	}
}

// onStats handles one DB stats event from the durable consumer. Handling is
// idempotent: the store ignores a stream sequence it already holds.
func (s *Service) onStats(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		s.samples.WithLabelValues("invalid").Inc()
		_ = m.Term()
		return
	}
	if s.add(m.Subject(), m.Data(), meta.Timestamp, meta.Sequence.Stream) {
		_ = m.Ack()
	} else {
		_ = m.Term() // a malformed event never becomes valid: do not redeliver it
	}
}

// add decodes and stores one event; it reports false for an invalid one.
func (s *Service) add(subject string, data []byte, at time.Time, seq uint64) bool {
	st, err := figures.Decode(subject, data)
	if err != nil {
		s.samples.WithLabelValues("invalid").Inc()
		s.logOnce("decode|"+subject, "invalid DB stats event dropped", "subject", subject, "seq", seq, "err", err)
		return false
	}
	if s.store.AddSample(state.Point{At: at, StreamSeq: seq, Sample: figures.FromStats(st)}) {
		s.samples.WithLabelValues("kept").Inc()
	} else {
		s.samples.WithLabelValues("duplicate").Inc()
	}
	return true
}

// restoreWindow reloads the last Window of DB stats from the stream, then the
// newest event of every shard (even one older than the window), so that a
// restarted monitor shows history and judges absence at once.
func (s *Service) restoreWindow(ctx context.Context, js jetstream.JetStream) error {
	stream, err := js.Stream(ctx, wire.StreamStats)
	if err != nil {
		return fmt.Errorf("monitor: stream %s: %w", wire.StreamStats, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(wire.StatsDBSubjects))
	if err != nil {
		return fmt.Errorf("monitor: stream %s info: %w", wire.StreamStats, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	start := time.Now().Add(-s.cfg.Window)
	oc, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.StatsDBSubjects}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start})
	if err != nil {
		return fmt.Errorf("monitor: restore window: %w", err)
	}
	n := 0
	for done := false; !done; {
		batch, err := oc.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("monitor: restore window: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			s.add(m.Subject(), m.Data(), meta.Timestamp, meta.Sequence.Stream)
			n++
			if meta.Sequence.Stream >= info.State.LastSeq {
				done = true
			}
		}
		if got == 0 {
			done = true
		}
	}
	for subj := range info.State.Subjects {
		raw, err := stream.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			continue // expired between Info and now
		}
		s.add(raw.Subject, raw.Data, raw.Time, raw.Sequence)
	}
	s.log.Info("DB stats window restored", "events", n, "shards", len(info.State.Subjects))
	return nil
}

func (s *Service) onHeartbeat(m *nats.Msg) {
	var hb schema.Heartbeat
	if err := proto.Unmarshal(m.Data, &hb); err != nil || hb.GetService() == "" || hb.GetInstanceId() == "" {
		s.logOnce("hb|"+m.Subject, "invalid heartbeat ignored", "subject", m.Subject, "err", err)
		return
	}
	s.store.Heartbeat(&hb, time.Now())
}

func (s *Service) sendHeartbeat(ready, stopping bool) {
	if s.nc == nil {
		return
	}
	firing := 0
	for _, a := range s.engine.Active() {
		if a.State == rules.StateFiring {
			firing++
		}
	}
	hb := &schema.Heartbeat{Service: ServiceName, InstanceId: s.cfg.InstanceID, SentAtNs: time.Now().UnixNano(),
		Ready: ready, Stopping: stopping, HttpAddr: s.HTTPAddr(),
		Figures: map[string]float64{"rules": float64(len(s.set.Rules)), "alerts_firing": float64(firing),
			"uptime_s": time.Since(s.started).Seconds()}}
	_ = svcmain.PublishHeartbeat(s.nc, hb)
}

// evaluate runs every rule once, announces the transitions and refreshes the dashboard.
func (s *Service) evaluate(now time.Time) {
	t0 := time.Now()
	rc := rules.Context{Snap: s.store.Snapshot(now), AbsenceAfter: s.cfg.AbsenceAfter,
		HeartbeatTimeout: s.cfg.HeartbeatTimeout, ExpectedZones: s.expected}
	var frozen []rules.Scope
	if now.Sub(s.started) < s.cfg.HeartbeatTimeout {
		// Until every instance had the time to send a heartbeat, "no owner" and
		// "instance lost" would be the monitor's own ignorance.
		frozen = []rules.Scope{rules.ScopeZone, rules.ScopeInstance, rules.ScopeGlobal}
	}
	trans, errs := s.engine.Eval(now, rc.Targets(), frozen...)
	s.evalSeconds.Observe(time.Since(t0).Seconds())
	for _, e := range errs {
		s.evalErrors.WithLabelValues(e.Rule).Inc()
		s.logOnce("eval|"+e.Rule, "alert rule failed at run time (counts as not holding)", "rule", e.Rule, "target", e.Target, "err", e.Err)
	}
	for _, t := range trans {
		s.announce(t)
	}
	s.mu.Lock()
	recent := append([]dashboard.Event(nil), s.recent...)
	s.mu.Unlock()
	v := dashboard.Build(rc, s.cfg.InstanceID, s.engine.Active(), recent, len(s.set.Rules))
	v.CommandLag = s.lags.Lags()
	s.hub.Publish(v)
}

// zonesSeen are the zones the dashboard shows: the expected ones and every
// zone an instance reports owning.
func (s *Service) zonesSeen() []string {
	seen := map[string]bool{}
	for _, z := range s.expected {
		seen[z] = true
	}
	for _, z := range s.store.Snapshot(time.Now()).Zones(s.expected, s.cfg.HeartbeatTimeout) {
		seen[z.Zone] = true
	}
	out := make([]string, 0, len(seen))
	for z := range seen {
		out = append(out, z)
	}
	sort.Strings(out)
	return out
}

// repeatFiring publishes every firing alert again on alerts.<severity>,
// marked repeat. Alerts are core NATS messages, delivered only to
// subscribers connected at that moment; this is how one that was away learns
// what fires. The webhook and the alert-state bucket hear transitions only.
func (s *Service) repeatFiring(now time.Time) {
	for _, a := range s.engine.Active() {
		if a.State != rules.StateFiring {
			continue
		}
		r := s.rule(a.Rule)
		if r == nil {
			continue
		}
		b, err := proto.Marshal(&schema.Alert{Rule: r.Name, Severity: r.Severity, State: rules.StateFiring, Message: a.Message,
			Labels: a.Labels, Value: a.Value, SinceNs: a.Since.UnixNano(), AtNs: now.UnixNano(), Target: a.Target,
			Source: s.cfg.InstanceID, Expr: r.Expr, Repeat: true})
		if err != nil || s.nc == nil {
			continue
		}
		if err := s.nc.Publish(wire.AlertSubject(r.SevName), b); err != nil {
			s.logOnce("repeat|"+r.Name, "publish repeated alert", "rule", r.Name, "err", err)
		}
	}
}

// rule returns the rule named name, or nil.
func (s *Service) rule(name string) *rules.Rule {
	for _, r := range s.set.Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// announce publishes one transition on alerts.<severity>, logs it, records it
// in the alert-state bucket and queues it for the webhook.
func (s *Service) announce(t rules.Transition) {
	r := t.Rule
	a := &schema.Alert{Rule: r.Name, Severity: r.Severity, State: t.State, Message: t.Message, Labels: t.Labels,
		Value: t.Value, SinceNs: t.Since.UnixNano(), AtNs: t.At.UnixNano(), Target: t.Target, Source: s.cfg.InstanceID, Expr: r.Expr}
	attrs := []any{"rule", r.Name, "severity", r.SevName, "state", t.State, "target", t.Target, "value", t.Value, "message", t.Message}
	if t.State == rules.StateFiring {
		if r.Severity == schema.Severity_SEVERITY_CRITICAL {
			s.log.Error("alert firing", attrs...)
		} else {
			s.log.Warn("alert firing", attrs...)
		}
	} else {
		s.log.Info("alert resolved", attrs...)
	}
	s.transitions.WithLabelValues(r.Name, r.SevName, t.State).Inc()
	if b, err := proto.Marshal(a); err == nil && s.nc != nil {
		if err := s.nc.Publish(wire.AlertSubject(r.SevName), b); err != nil {
			s.log.Error("publish alert", "rule", r.Name, "err", err)
		}
	}
	s.saveAlertState(t)
	if s.webhook != nil {
		s.webhook.Enqueue(notify.Payload{Rule: r.Name, Severity: r.SevName, State: t.State, Target: t.Target,
			Message: t.Message, Labels: t.Labels, Value: t.Value, Since: t.Since.UTC(), At: t.At.UTC(),
			Source: s.cfg.InstanceID, Expr: r.Expr})
	}
	s.mu.Lock()
	s.recent = append([]dashboard.Event{{At: t.At, Rule: r.Name, Severity: r.SevName, State: t.State, Target: t.Target,
		Message: t.Message}}, s.recent...)
	if len(s.recent) > recentEvents {
		s.recent = s.recent[:recentEvents]
	}
	s.mu.Unlock()
}

func (s *Service) openAlertState(ctx context.Context, js jetstream.JetStream) error {
	replicas := s.cfg.Streams.Replicas
	if replicas == 0 {
		replicas = 1
	}
	kv, err := wire.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: AlertStateBucket,
		Description: "monitor: firing alerts, so a restart neither repeats nor forgets them", History: 1,
		Replicas: replicas, Storage: s.cfg.Streams.Storage})
	if err != nil {
		return fmt.Errorf("monitor: alert state bucket %s: %w", AlertStateBucket, err)
	}
	s.kv = kv
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("monitor: alert state bucket %s: %w", AlertStateBucket, err)
	}
	var restored []rules.Active
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var a rules.Active
		if json.Unmarshal(e.Value(), &a) == nil {
			restored = append(restored, a)
		}
	}
	s.engine.Restore(restored)
	if len(restored) > 0 {
		s.log.Info("firing alerts restored", "count", len(restored))
	}
	return nil
}

func (s *Service) saveAlertState(t rules.Transition) {
	if s.kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key := alertKey(t.Rule.Name, t.Target)
	var err error
	if t.State == rules.StateFiring {
		b, _ := json.Marshal(rules.Active{Rule: t.Rule.Name, Severity: t.Rule.SevName, State: rules.StateFiring,
			Target: t.Target, Labels: t.Labels, Message: t.Message, Help: t.Rule.Help, Value: t.Value, Since: t.Since, FiredAt: t.At})
		_, err = s.kv.Put(ctx, key, b)
	} else {
		err = s.kv.Purge(ctx, key)
	}
	if err != nil {
		s.log.Warn("alert state not saved", "key", key, "err", err)
	}
}

// alertKey maps rule and target to a KV key ([-/_=.a-zA-Z0-9]).
func alertKey(rule, target string) string {
	k := []byte(rule + "." + target)
	for i, c := range k {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-/_=.", c) >= 0
		if !ok {
			k[i] = '_'
		}
	}
	return string(k)
}

// logOnce logs at most once a minute per key, so a broken publisher or rule
// cannot flood the log.
func (s *Service) logOnce(key, msg string, attrs ...any) {
	s.mu.Lock()
	last, seen := s.errLogged[key]
	now := time.Now()
	if seen && now.Sub(last) < time.Minute {
		s.mu.Unlock()
		return
	}
	s.errLogged[key] = now
	s.mu.Unlock()
	s.log.Warn(msg, attrs...)
}

package zone

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/realmstream/realmstream/libs/telemetry"
)

// Metrics of the zones of one world instance. A nil *Metrics records nothing.
type Metrics struct {
	TickDuration   prometheus.Histogram
	ApplyLatency   prometheus.Histogram
	CommandLatency prometheus.Histogram
	Commands       *prometheus.CounterVec
	Events         *prometheus.CounterVec
	Claims         prometheus.Counter
	Takeovers      prometheus.Counter
	Fenced         prometheus.Counter
	Snapshots      prometheus.Counter
	Replayed       prometheus.Counter
	ClaimDuration  prometheus.Histogram
	Quarantined    prometheus.Counter
	Records        prometheus.Counter
	TickPhase      *prometheus.HistogramVec
	phases         [numPhases]prometheus.Observer
	// RefusalSpansDropped counts the refusals of untraced commands that got
	// no world.decide span because the process's refusal span budget
	// (refusalSpans, telemetry.DefaultRootSpansPerSec, shared by the zones)
	// was spent (trace.go).
	RefusalSpansDropped prometheus.Counter
	refusalSpans        *telemetry.SpanLimit
}

// phase is one part of a tick, timed on its own (realm_world_tick_phase_seconds):
// where a slow tick spends its time.
type phase int

const (
	phaseDecide    phase = iota // the inbox, due disconnects, system events
	phaseCommit                 // the tick record's fenced append, awaited
	phaseExpose                 // acks and notices
	phaseWhere                  // the world_players entries of players who left or crossed
	phaseTransfers              // TransferIn commands sent to other zones
	phaseUpdates                // AOI view built and published
	phaseSnapshot               // snapshot taken (written in the background)
	numPhases
)

var phaseNames = [numPhases]string{"decide", "commit", "expose", "whereabouts", "transfers", "updates", "snapshot"}

// NewMetrics creates and registers the metrics (reg may be nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		TickDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "realm_world_tick_seconds", Help: "Duration of one zone tick (commands, system events, updates).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14)}),
		ApplyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "realm_world_apply_seconds", Help: "Decide + apply + commit of one command: per tick, (decide time + commit time) / commands acked.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14)}),
		CommandLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "realm_world_command_latency_seconds", Help: "Gateway receive to the command's tick committed (wall clocks of two hosts).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		Commands:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realm_world_commands_total", Help: "Commands by result (applied, rejected, duplicate, malformed)."}, []string{"result"}),
		Events:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "realm_world_events_total", Help: "Events appended by type."}, []string{"type"}),
		Claims:    prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_world_claims_total", Help: "Zone ownership claims appended."}),
		Takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_world_takeovers_total", Help: "Claims of zones whose previous owner did not hand over (crash or lost lease)."}),
		Fenced:    prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_world_fenced_total", Help: "Appends refused by the log (another owner appended): step-downs."}),
		Snapshots: prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_world_snapshots_total", Help: "Zone snapshots written."}),
		Replayed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_world_replayed_events_total", Help: "Events replayed while recovering zones."}),
		ClaimDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "realm_world_claim_seconds", Help: "Lease acquired to ownership claim appended (snapshot load + replay + claim).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		Quarantined: prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_world_quarantined_total", Help: "Undecodable zone log messages skipped by replay (each also raises an alert)."}),
		Records:     prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_world_tick_records_total", Help: "Tick records committed (one per zone tick with events, more when a tick is split)."}),
		TickPhase: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "realm_world_tick_phase_seconds",
			Help:    "Duration of each phase of a zone tick (decide, commit, expose, whereabouts, transfers, updates, snapshot): where a slow tick spends its time.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14)}, []string{"phase"}),
		RefusalSpansDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "realm_world_refusal_spans_dropped_total",
			Help: "Refused untraced commands not traced because the refusal spans exceeded their rate (a flood of refusals)."}),
	}
	m.refusalSpans = telemetry.NewSpanLimit(telemetry.DefaultRootSpansPerSec, m.RefusalSpansDropped.Inc)
	for i, n := range phaseNames {
		m.phases[i] = m.TickPhase.WithLabelValues(n)
	}
	if reg != nil {
		reg.MustRegister(m.TickDuration, m.ApplyLatency, m.CommandLatency, m.Commands, m.Events, m.Claims, m.Takeovers, m.Fenced, m.Snapshots, m.Replayed, m.ClaimDuration, m.Quarantined, m.Records, m.TickPhase, m.RefusalSpansDropped)
	}
	return m
}

func (m *Metrics) tickDone(d time.Duration) {
	if m != nil {
		m.TickDuration.Observe(d.Seconds())
	}
}

// lap records the phase that ended now (since *mark) and moves *mark to now.
func (m *Metrics) lap(p phase, mark *time.Time) {
	now := time.Now()
	if m != nil {
		m.phases[p].Observe(now.Sub(*mark).Seconds())
	}
	*mark = now
}

func (m *Metrics) applied(d time.Duration, receivedAt int64, sc trace.SpanContext) {
	if m == nil {
		return
	}
	telemetry.Observe(m.ApplyLatency, d.Seconds(), sc) // a sampled command's trace is the exemplar
	if receivedAt > 0 {
		if l := time.Since(time.Unix(0, receivedAt)); l > 0 {
			telemetry.Observe(m.CommandLatency, l.Seconds(), sc)
		}
	}
}

func (m *Metrics) command(result string) {
	if m != nil {
		m.Commands.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) event(typ string) {
	if m != nil {
		m.Events.WithLabelValues(typ).Inc()
	}
}

func (m *Metrics) claimed(takeover bool, d time.Duration) {
	if m != nil {
		m.ClaimDuration.Observe(d.Seconds())
		m.Claims.Inc()
		if takeover {
			m.Takeovers.Inc()
		}
	}
}

func (m *Metrics) fenced() {
	if m != nil {
		m.Fenced.Inc()
	}
}

func (m *Metrics) snapshot() {
	if m != nil {
		m.Snapshots.Inc()
	}
}

func (m *Metrics) replayed(n int) {
	if m != nil {
		m.Replayed.Add(float64(n))
	}
}

func (m *Metrics) quarantined() {
	if m != nil {
		m.Quarantined.Inc()
	}
}

func (m *Metrics) record(n int) {
	if m != nil {
		m.Records.Add(float64(n))
	}
}

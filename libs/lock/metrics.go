package lock

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics of a Locker (LOCK-9): attempts, failures,
// renewal failures, lost leases and time to acquire. A nil *Metrics records
// nothing.
type Metrics struct {
	Attempts        prometheus.Counter
	Failures        prometheus.Counter
	Acquired        prometheus.Counter
	RenewFailures   prometheus.Counter
	Lost            prometheus.Counter
	AcquireDuration prometheus.Histogram
}

// NewMetrics creates the metrics with the given prefix (e.g. "realm_world_lock")
// and registers them on reg when reg is not nil.
func NewMetrics(prefix string, reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Attempts:      prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "_acquire_attempts_total", Help: "Lease acquire attempts."}),
		Failures:      prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "_acquire_errors_total", Help: "Lease acquire attempts that failed with an error (not counting 'held by another')."}),
		Acquired:      prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "_acquired_total", Help: "Leases acquired."}),
		RenewFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "_renew_failures_total", Help: "Lease renewals that failed (error or not held)."}),
		Lost:          prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "_lost_total", Help: "Leases lost (taken over, expired, or validity ended without renewal)."}),
		AcquireDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: prefix + "_acquire_seconds", Help: "Duration of successful acquire calls.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 3, 10)}),
	}
	if reg != nil {
		reg.MustRegister(m.Attempts, m.Failures, m.Acquired, m.RenewFailures, m.Lost, m.AcquireDuration)
	}
	return m
}

func (m *Metrics) attempt() {
	if m != nil {
		m.Attempts.Inc()
	}
}

func (m *Metrics) failure() {
	if m != nil {
		m.Failures.Inc()
	}
}

func (m *Metrics) acquired(d time.Duration) {
	if m != nil {
		m.Acquired.Inc()
		m.AcquireDuration.Observe(d.Seconds())
	}
}

func (m *Metrics) renewFailure() {
	if m != nil {
		m.RenewFailures.Inc()
	}
}

func (m *Metrics) lost() {
	if m != nil {
		m.Lost.Inc()
	}
}

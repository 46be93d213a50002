package telemetry

import (
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// DefaultRootSpansPerSec is the default rate of the spans a process starts
// whatever the sampling ratio (the roots of refusals and errors): enough to
// see every refusal of normal play, few enough that a flood of refused
// commands (a broken or hostile client) cannot flood the collector.
const DefaultRootSpansPerSec = 100

// SpanLimit bounds the always-sampled spans of one process: a token bucket
// (golang.org/x/time/rate, perSec a second, bursts up to perSec) that
// counts what it refuses, so an operator sees how many refusals went
// untraced (Dropped, and the onDrop callback, e.g. a Prometheus counter).
// It is safe for concurrent use (the zones of a world share one); a nil
// *SpanLimit allows everything.
type SpanLimit struct {
	lim     *rate.Limiter
	now     func() time.Time
	onDrop  func()
	dropped atomic.Int64
}

// NewSpanLimit returns a full bucket of perSec tokens a second (perSec <= 0:
// DefaultRootSpansPerSec); onDrop, if set, runs for each refused span.
func NewSpanLimit(perSec int, onDrop func()) *SpanLimit {
	return newSpanLimit(perSec, onDrop, time.Now)
}

func newSpanLimit(perSec int, onDrop func(), now func() time.Time) *SpanLimit {
	if perSec <= 0 {
		perSec = DefaultRootSpansPerSec
	}
	return &SpanLimit{lim: rate.NewLimiter(rate.Limit(perSec), perSec), now: now, onDrop: onDrop}
}

// Allow says whether one more span may be started now, and counts it as
// dropped when not.
func (l *SpanLimit) Allow() bool {
	if l == nil {
		return true
	}
	if l.lim.AllowN(l.now(), 1) {
		return true
	}
	l.dropped.Add(1)
	if l.onDrop != nil {
		l.onDrop()
	}
	return false
}

// Dropped is the number of spans Allow refused.
func (l *SpanLimit) Dropped() int64 {
	if l == nil {
		return 0
	}
	return l.dropped.Load()
}

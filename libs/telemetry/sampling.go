package telemetry

import (
	"fmt"
	"math"
	"math/rand/v2"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Sampler is the sampler of every service's tracer provider: parent-based
// (a span follows the decision its parent carries in traceparent, local or
// remote), and a root span is always sampled. The ratio is applied once per
// trace, at its head, by the code that starts the trace (the gateway, per
// client command, through HeadSampler.Sample) before any span exists: so an
// unsampled command costs one random number and no allocation in every
// service (no span, no traceparent header, no trace context in its events).
// The other roots are spans that must always be recorded: refusals and
// errors of commands whose trace was not sampled (a refused command starts
// its own root span when it is refused), and the batch spans of the world
// and persist, which are started only when a command they carry is sampled.
func Sampler() sdktrace.Sampler { return sdktrace.ParentBased(sdktrace.AlwaysSample()) }

// HeadSampler takes the head decision of a trace with probability Ratio.
// The zero value samples nothing. It is safe for concurrent use and does
// not allocate.
type HeadSampler struct {
	ratio     float64
	threshold uint64 // Sample is true when a uniform uint64 is below it
	all       bool
}

// NewHeadSampler returns a sampler of ratio (0 = none, 1 = every trace).
func NewHeadSampler(ratio float64) (HeadSampler, error) {
	if math.IsNaN(ratio) || ratio < 0 || ratio > 1 {
		return HeadSampler{}, fmt.Errorf("trace sample ratio %v: want 0..1", ratio)
	}
	if ratio == 1 {
		return HeadSampler{ratio: 1, all: true}, nil
	}
	return HeadSampler{ratio: ratio, threshold: uint64(ratio * (1 << 63) * 2)}, nil
}

// Ratio is the share of traces sampled.
func (h HeadSampler) Ratio() float64 { return h.ratio }

// Sample says whether a new trace is sampled.
func (h HeadSampler) Sample() bool {
	return h.all || (h.threshold != 0 && rand.Uint64() < h.threshold)
}

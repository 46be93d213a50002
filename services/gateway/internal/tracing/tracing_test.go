package tracing

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/services/gateway/internal/ingest"
)

func recorder() (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	return rec, sdktrace.NewTracerProvider(sdktrace.WithSampler(telemetry.Sampler()), sdktrace.WithSpanProcessor(rec))
}

// TestRefusalSpansDroppedAreCounted: once the refusal span budget of a
// second is spent, further refusals start no span and are counted; with
// tracing off nothing is counted.
func TestRefusalSpansDroppedAreCounted(t *testing.T) {
	rec, tp := recorder()
	tr, err := New(Config{TracerProvider: tp, SampleRatio: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	tr.refusals = telemetry.NewSpanLimit(1, nil) // one token a second: no refill during the test
	for tr.refusals.Dropped() == 0 {             // spend the budget
		tr.refusals.Allow()
	}
	spent := tr.refusals.Dropped()
	for range 200 {
		tr.Refused(nil, 1, schema.ErrorCode_ERROR_CODE_RATE_LIMITED, "flood") // returns before reading the connection
	}
	if d := tr.RefusalSpansDropped() - spent; d != 200 || len(rec.Ended()) != 0 {
		t.Fatalf("%d refusals counted as dropped, %d spans, want 200 and none", d, len(rec.Ended()))
	}
	off, _ := New(Config{SampleRatio: 1})
	for range 10 {
		off.Refused(nil, 1, schema.ErrorCode_ERROR_CODE_RATE_LIMITED, "off")
	}
	if d := off.RefusalSpansDropped(); d != 0 {
		t.Fatalf("tracing off: %d refusals counted as dropped", d)
	}
}

// TestUnsampledCommandAllocatesNothing: the head decision and the no-op
// span of an unsampled command cost no allocation.
func TestUnsampledCommandAllocatesNothing(t *testing.T) {
	_, tp := recorder()
	tr, err := New(Config{TracerProvider: tp, SampleRatio: 0})
	if err != nil {
		t.Fatal(err)
	}
	cmd := &schema.Command{CommandId: "s:1", SessionId: "s", Zone: "z0_0", ClientSeq: 1}
	msg := &nats.Msg{Header: nats.Header{}}
	now := time.Now()
	it := &ingest.Item{}
	if a := testing.AllocsPerRun(1000, func() {
		it.Span = tr.StartCommand(now, cmd, msg)
		it.Dequeued()
		it.Span.End()
	}); a != 0 {
		t.Fatalf("an unsampled command allocates %v times", a)
	}
	if len(msg.Header) != 0 {
		t.Fatalf("unsampled command got headers %v", msg.Header)
	}
	off, _ := New(Config{SampleRatio: 1}) // no endpoint, no provider: off
	if off.head.Sample() || off.AllowRefusal() {
		t.Fatal("tracing without an endpoint or provider is on")
	}
}

// BenchmarkCommandSpan is the gateway's tracing cost per command: the head
// decision, the span (start, queue-time attribute, end) and the traceparent
// header, off (no endpoint), unsampled (ratio 0) and sampled (ratio 1, a
// real SDK provider whose batch processor drops into a discarding exporter).
func BenchmarkCommandSpan(b *testing.B) {
	exp := discard{}
	tp, _ := telemetry.Setup("bench", exp)
	for _, mode := range []struct {
		name string
		cfg  Config
	}{{"off", Config{SampleRatio: 1}}, {"unsampled", Config{TracerProvider: tp, SampleRatio: 0}}, {"sampled", Config{TracerProvider: tp, SampleRatio: 1}}} {
		b.Run(mode.name, func(b *testing.B) {
			tr, err := New(mode.cfg)
			if err != nil {
				b.Fatal(err)
			}
			cmd := &schema.Command{CommandId: "s0123456789:42", SessionId: "s0123456789", PlayerId: "p-x", Zone: "z0_0", ClientSeq: 42,
				Body: &schema.Command_Move{Move: &schema.Move{X: 1, Y: 2}}}
			msg := &nats.Msg{Header: nats.Header{}}
			it := &ingest.Item{}
			b.ReportAllocs()
			for b.Loop() {
				it.Received = time.Now()
				it.Span = tr.StartCommand(it.Received, cmd, msg)
				it.Dequeued()
				it.Span.End()
			}
		})
	}
}

// discard is a span exporter that drops what it gets (the collector's side
// is not the gateway's cost).
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/services/gateway/internal/ingest"
)

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
	}{{"off", Config{TraceSampleRatio: 1}}, {"unsampled", Config{TracerProvider: tp, TraceSampleRatio: 0}}, {"sampled", Config{TracerProvider: tp, TraceSampleRatio: 1}}} {
		b.Run(mode.name, func(b *testing.B) {
			tr, err := newTracing(mode.cfg)
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
				it.Span = tr.startCommand(it.Received, cmd, msg)
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

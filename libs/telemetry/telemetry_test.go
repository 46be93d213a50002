package telemetry

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://otel:4318":            "http://otel:4318/v1/traces",
		"http://otel:4318/":           "http://otel:4318/v1/traces",
		"https://x.example/v1/traces": "https://x.example/v1/traces",
		"https://x.example/custom/ep": "https://x.example/custom/ep",
		"otel:4318":                   "otel:4318",
	} {
		if got := TracesURL(in); got != want {
			t.Errorf("TracesURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInjectExtractRoundTrip(t *testing.T) {
	tp, shutdown := Setup("test", nil)
	defer shutdown(context.Background())
	ctx, span := tp.Tracer("t").Start(context.Background(), "op")
	defer span.End()
	h := nats.Header{}
	Inject(ctx, h)
	if h.Get("traceparent") == "" {
		t.Fatal("no traceparent header injected")
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), h))
	if got.TraceID() != span.SpanContext().TraceID() {
		t.Fatalf("trace id %s, want %s", got.TraceID(), span.SpanContext().TraceID())
	}
}

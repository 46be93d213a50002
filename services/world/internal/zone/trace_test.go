package zone

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
)

// refuse decides n refused, untraced commands of r in one tick and returns
// how many got a world.decide span and a trace context in their event.
func refuse(t *testing.T, r *runner, n int) (spans int) {
	t.Helper()
	ts := &tickState{}
	for i := range n {
		cmd := &schema.Command{CommandId: fmt.Sprintf("s1:%d", i), SessionId: "s1", ClientSeq: uint64(i), PlayerId: "p1", Zone: r.c.Zone}
		ev := &schema.Event{EventId: fmt.Sprintf("%s/e%d", r.c.Zone, i), Zone: r.c.Zone, CommandId: cmd.CommandId,
			Body: &schema.Event_CommandRejected{CommandRejected: &schema.CommandRejected{Code: schema.ErrorCode_ERROR_CODE_RATE_LIMITED, Reason: "flood"}}}
		span := r.decided(context.Background(), ts, nil, cmd, ev)
		if (span != nil) != (len(ev.TraceContext) != 0) {
			t.Fatalf("refusal %d: span %v, trace context %x", i, span != nil, ev.TraceContext)
		}
		if span != nil {
			span.End()
			spans++
		}
	}
	return spans
}

// dropped is the value of realm_world_refusal_spans_dropped_total in reg.
func dropped(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "realm_world_refusal_spans_dropped_total" {
			return int(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	t.Fatal("no realm_world_refusal_spans_dropped_total")
	return 0
}

// TestRefusalSpansRateLimited: a flood of refused untraced commands gets
// at most the process's budget of world.decide spans (a bucket shared by
// the zones of one Metrics); the others are counted in
// realm_world_refusal_spans_dropped_total and leave no trace context.
// With tracing off nothing is counted; without Metrics nothing is limited.
func TestRefusalSpansRateLimited(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(telemetry.Sampler()), sdktrace.WithSpanProcessor(rec))
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	a := &runner{c: Config{Zone: "z0_0", Metrics: m}, tracer: tp.Tracer("test")}
	b := &runner{c: Config{Zone: "z0_1", Metrics: m}, tracer: tp.Tracer("test")}
	const n = 3 * telemetry.DefaultRootSpansPerSec
	got := refuse(t, a, n) + refuse(t, b, n)
	d := dropped(t, reg)
	// The bucket refills at 100/s while the test runs: allow a few more.
	if got < telemetry.DefaultRootSpansPerSec || got > telemetry.DefaultRootSpansPerSec+10 || got+d != 2*n {
		t.Fatalf("%d refusal spans and %d dropped of %d refusals, want %d spans", got, d, 2*n, telemetry.DefaultRootSpansPerSec)
	}
	if e := len(rec.Ended()); e != got {
		t.Fatalf("%d spans exported, %d ended", e, got)
	}

	offReg := prometheus.NewRegistry()
	off := NewMetrics(offReg)
	if got := refuse(t, &runner{c: Config{Zone: "z0_0", Metrics: off}, tracer: noop.NewTracerProvider().Tracer("off")}, n); got != 0 ||
		dropped(t, offReg) != 0 {
		t.Fatalf("tracing off: %d spans, %d dropped", got, dropped(t, offReg))
	}
	if got := refuse(t, &runner{c: Config{Zone: "z0_0"}, tracer: tp.Tracer("test")}, n); got != n {
		t.Fatalf("no Metrics: %d of %d refusals traced", got, n)
	}
}

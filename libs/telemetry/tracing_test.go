package telemetry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/telemetry/otlptest"
)

func TestSpanContextRoundTrip(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}, TraceFlags: trace.FlagsSampled})
	b := telemetry.EncodeSpanContext(sc)
	if len(b) != telemetry.SpanContextBytes {
		t.Fatalf("encoded %d bytes", len(b))
	}
	got := telemetry.DecodeSpanContext(b)
	if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsSampled() || !got.IsRemote() {
		t.Fatalf("decoded %v, want %v (remote)", got, sc)
	}
	if b := telemetry.EncodeSpanContext(trace.NewSpanContext(trace.SpanContextConfig{TraceID: sc.TraceID(), SpanID: sc.SpanID()})); b != nil {
		t.Fatalf("an unsampled span context encoded to %x, want nothing", b)
	}
	if telemetry.DecodeSpanContext([]byte{1, 2}).IsValid() {
		t.Fatal("a malformed value decoded to a valid span context")
	}
}

func TestHeadSampler(t *testing.T) {
	for _, bad := range []float64{-0.1, 1.5} {
		if _, err := telemetry.NewHeadSampler(bad); err == nil {
			t.Errorf("ratio %v accepted", bad)
		}
	}
	var off telemetry.HeadSampler
	if off.Sample() {
		t.Fatal("the zero HeadSampler sampled")
	}
	all, _ := telemetry.NewHeadSampler(1)
	none, _ := telemetry.NewHeadSampler(0)
	tenth, _ := telemetry.NewHeadSampler(0.1)
	n, hits := 100000, 0
	for range n {
		if !all.Sample() || none.Sample() {
			t.Fatal("ratio 1 or 0 not respected")
		}
		if tenth.Sample() {
			hits++
		}
	}
	if got := float64(hits) / float64(n); got < 0.09 || got > 0.11 {
		t.Fatalf("ratio 0.1 sampled %.3f", got)
	}
	if a := testing.AllocsPerRun(1000, func() { _ = tenth.Sample() }); a != 0 {
		t.Fatalf("Sample allocates %v", a)
	}
}

func TestLinksBounded(t *testing.T) {
	var l telemetry.Links
	l.Add(trace.SpanContext{}) // invalid: ignored
	for i := range telemetry.MaxLinks + 5 {
		l.Add(trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{byte(i + 1)}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled}))
	}
	if l.Len() != telemetry.MaxLinks {
		t.Fatalf("%d links, want %d", l.Len(), telemetry.MaxLinks)
	}
	l.Reset()
	if l.Len() != 0 {
		t.Fatal("Reset kept links")
	}
}

// TestExportToReceiver exports a parent, a child and a span linking to the
// child through the real OTLP/HTTP exporter to the in-process receiver.
func TestExportToReceiver(t *testing.T) {
	rcv := otlptest.Start()
	defer rcv.Close()
	exp, err := telemetry.NewExporter(context.Background(), rcv.URL())
	if err != nil {
		t.Fatal(err)
	}
	tp, shutdown := telemetry.Setup("svc-test", exp)
	tr := tp.Tracer("test")
	ctx, parent := tr.Start(context.Background(), "parent", trace.WithAttributes(attribute.String("realm.command_id", "s:1")))
	_, child := tr.Start(ctx, "child")
	child.End()
	parent.End()
	var links telemetry.Links
	links.Add(child.SpanContext(), attribute.String("realm.command_id", "s:1"))
	_, batch := tr.Start(context.Background(), "batch", links.Options()...)
	batch.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	tid := parent.SpanContext().TraceID().String()
	got := rcv.Trace(tid)
	if len(got) != 2 || got[0].Name != "parent" || got[1].ParentID != got[0].SpanID || got[0].Service != "svc-test" || got[0].Attrs["realm.command_id"] != "s:1" {
		t.Fatalf("trace %s:\n%s", tid, otlptest.Describe(rcv.Spans()))
	}
	l := rcv.LinkedTo("batch", tid, child.SpanContext().SpanID().String())
	if len(l) != 1 || l[0].TraceID == tid || l[0].Links[0].Attrs["realm.command_id"] != "s:1" {
		t.Fatalf("batch span linking the child: %v\n%s", l, otlptest.Describe(rcv.Spans()))
	}
}

func TestStartTracingOffWithoutEndpoint(t *testing.T) {
	stop, err := telemetry.StartTracing(context.Background(), "x", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestObserveExemplar(t *testing.T) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Buckets: []float64{0.01, 1}})
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xab}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	telemetry.Observe(h, 0.5, sc)
	telemetry.Observe(h, 0.001, trace.SpanContext{})
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	var ex []string
	for _, b := range m.GetHistogram().GetBucket() {
		if e := b.GetExemplar(); e != nil {
			ex = append(ex, e.GetLabel()[0].GetValue())
		}
	}
	if len(ex) != 1 || !strings.HasPrefix(ex[0], "ab") || m.GetHistogram().GetSampleCount() != 2 {
		t.Fatalf("exemplars %v, count %d", ex, m.GetHistogram().GetSampleCount())
	}
}

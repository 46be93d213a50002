package opsserver

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/realmstream/realmstream/libs/telemetry"
)

// TestMetricsCarryExemplars: a histogram observed with a sampled span
// context shows its trace id on /metrics when the scraper asks for
// OpenMetrics (Prometheus with exemplar storage does).
func TestMetricsCarryExemplars(t *testing.T) {
	s := New()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "realm_test_latency_seconds", Help: "test", Buckets: []float64{0.1, 1}})
	s.Registry.MustRegister(h)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x4b, 0xf9}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	telemetry.Observe(h, 0.05, sc)
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	rec := httptest.NewRecorder()
	s.Mux.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	want := `# {trace_id="` + sc.TraceID().String() + `"} 0.05`
	if !strings.Contains(string(body), want) {
		t.Fatalf("no exemplar %q in:\n%s", want, body)
	}
}

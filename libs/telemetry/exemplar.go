package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Observe records v in obs; when sc is a sampled span context the
// observation carries the exemplar {trace_id=<id>}, so a dashboard can jump
// from a histogram bucket to the trace (Grafana: exemplars of a Prometheus
// panel, linked to the Jaeger data source). An unsampled observation costs
// what Observe costs. Exemplars reach /metrics only in the OpenMetrics
// format (libs/opsserver enables it).
func Observe(obs prometheus.Observer, v float64, sc trace.SpanContext) {
	if sc.IsSampled() {
		if eo, ok := obs.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	obs.Observe(v)
}

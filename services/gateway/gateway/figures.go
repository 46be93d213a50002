package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/realmstream/realmstream/libs/telemetry"
)

// newFigures samples what the monitor's dashboard shows of a gateway, from
// its own metrics, windowed over each heartbeat interval.
func newFigures(g prometheus.Gatherer) *telemetry.Figures {
	return telemetry.NewFigures(g,
		telemetry.FigureSpec{Name: "commands_per_sec", Metric: "realm_gateway_commands_accepted_total", Kind: telemetry.Rate},
		telemetry.FigureSpec{Name: "acks_per_sec", Metric: "realm_gateway_acks_total", Kind: telemetry.Rate},
		telemetry.FigureSpec{Name: "busy_per_sec", Metric: "realm_gateway_busy_total", Kind: telemetry.Rate},
		telemetry.FigureSpec{Name: "errors_per_sec", Metric: "realm_gateway_errors_total", Kind: telemetry.Rate, ByLabel: "code"},
		telemetry.FigureSpec{Name: "updates_per_sec", Metric: "realm_gateway_updates_forwarded_total", Kind: telemetry.Rate},
		telemetry.FigureSpec{Name: "publish_p99_ms", Metric: "realm_gateway_publish_latency_seconds", Kind: telemetry.P99Ms},
	)
}

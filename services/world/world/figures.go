package world

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/realmstream/realmstream/libs/telemetry"
)

// newFigures samples what the monitor's dashboard shows of a world instance,
// from its own metrics, windowed over each heartbeat interval.
func newFigures(g prometheus.Gatherer) *telemetry.Figures {
	return telemetry.NewFigures(g,
		telemetry.FigureSpec{Name: "commands_per_sec", Metric: "realm_world_commands_total", Kind: telemetry.Rate},
		telemetry.FigureSpec{Name: "commands_per_sec", Metric: "realm_world_commands_total", Kind: telemetry.Rate, ByLabel: "result"},
		telemetry.FigureSpec{Name: "events_per_sec", Metric: "realm_world_events_total", Kind: telemetry.Rate},
		telemetry.FigureSpec{Name: "records_per_sec", Metric: "realm_world_tick_records_total", Kind: telemetry.Rate},
		telemetry.FigureSpec{Name: "tick_p99_ms", Metric: "realm_world_tick_seconds", Kind: telemetry.P99Ms},
		telemetry.FigureSpec{Name: "apply_p99_ms", Metric: "realm_world_apply_seconds", Kind: telemetry.P99Ms},
		telemetry.FigureSpec{Name: "command_latency_p99_ms", Metric: "realm_world_command_latency_seconds", Kind: telemetry.P99Ms},
		// The monitor alerts when trimming cannot act (zone_log_trim_blocked).
		telemetry.FigureSpec{Name: "trim_blocked_seconds", Metric: "realm_world_trim_blocked_seconds", Kind: telemetry.Value},
		telemetry.FigureSpec{Name: "trim_purged_per_sec", Metric: "realm_world_trim_purged_total", Kind: telemetry.Rate},
		telemetry.FigureSpec{Name: "evt_stream_bytes", Metric: "realm_world_evt_stream_bytes", Kind: telemetry.Value},
		telemetry.FigureSpec{Name: "evt_stream_limit_ratio", Metric: "realm_world_evt_stream_limit_ratio", Kind: telemetry.Value},
		telemetry.FigureSpec{Name: "jetstream_storage_ratio", Metric: "realm_world_jetstream_storage_ratio", Kind: telemetry.Value},
		// The monitor alerts on increases (zone_leases_lost: Redis unreachable, restarted, failed over).
		telemetry.FigureSpec{Name: "leases_lost_total", Metric: "realm_world_lock_lost_total", Kind: telemetry.Value},
	)
}

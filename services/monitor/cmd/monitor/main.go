// Command monitor runs the Realmstream monitor service: DB stats events and
// heartbeats in; alerts, Prometheus metrics and a live dashboard out.
package main

import (
	"log/slog"
	"os"

	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/services/monitor/monitor"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	cfg := monitor.DefaultConfig()
	return svcmain.Run(args, os.Stderr, svcmain.Spec{
		Name: "monitor",
		About: "Consumes DB stats events (stats.db.>) and heartbeats (svc.hb.>), evaluates alert\n" +
			"rules, publishes alerts on alerts.<severity>, serves /metrics and a live dashboard at /.",
		Version:  version,
		Register: cfg.RegisterFlags,
		Common:   &cfg.Common, // the monitor creates no spans of its own: --otlp-endpoint is accepted for uniformity
		New:      func(log *slog.Logger) (svcmain.Service, error) { return monitor.New(cfg, log) },
	})
}

// version is stamped at build time: go build -ldflags "-X main.version=<git describe>".
var version = "dev"

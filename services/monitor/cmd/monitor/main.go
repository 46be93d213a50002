// Command monitor runs the Realmstream monitor service: DB stats events and
// heartbeats in; alerts, Prometheus metrics and a live dashboard out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/telemetry"

	"github.com/realmstream/realmstream/services/monitor/monitor"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: monitor [flags]\n\nConsumes DB stats events (stats.db.>) and heartbeats (svc.hb.>), evaluates alert\nrules, publishes alerts on alerts.<severity>, serves /metrics and a live dashboard at /.\nEvery flag can also be set through the environment variable shown.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	cfg := monitor.DefaultConfig()
	set := envflag.New(fs)
	cfg.RegisterFlags(set)
	if err := set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "monitor: --log-level %q: want debug, info, warn or error\n", cfg.LogLevel)
		return 2
	}
	log := telemetry.NewLogger("monitor", cfg.LogFormat, level).With("version", version)
	svc, err := monitor.New(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := svc.Run(ctx); err != nil {
		log.Error("monitor failed", "err", err)
		return 1
	}
	return 0
}

// version is stamped at build time: go build -ldflags "-X main.version=<git describe>".
var version = "dev"

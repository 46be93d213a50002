// Command gateway runs the Realmstream client gateway. Every flag also reads
// its default from REALM_<FLAG_NAME>; see --help.
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
	"github.com/realmstream/realmstream/services/gateway/gateway"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	cfg := gateway.DefaultConfig()
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: gateway [flags]\n\nThe Realmstream client gateway: TCP and WebSocket clients -> MPSC ring -> JetStream cmd.<zone>.\n\nFlags:\n")
		fs.PrintDefaults()
	}
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
		fmt.Fprintf(os.Stderr, "--log-level %q: want debug, info, warn or error\n", cfg.LogLevel)
		return 2
	}
	log := telemetry.NewLogger("gateway", cfg.LogFormat, level).With("version", version)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	shutdownTracing, err := telemetry.StartTracing(ctx, "gateway", cfg.OTLPEndpoint)
	if err != nil {
		log.Error("tracing", "err", err)
		return 1
	}
	defer func() { _ = shutdownTracing(context.Background()) }()

	svc, err := gateway.New(cfg, log)
	if err != nil {
		log.Error("config", "err", err)
		return 2
	}
	if err := svc.Run(ctx); err != nil {
		log.Error("gateway failed", "err", err)
		return 1
	}
	return 0
}

// version is stamped at build time: go build -ldflags "-X main.version=<git describe>".
var version = "dev"

// Command world runs a Realmstream world instance: it owns some of the zones,
// simulates them and appends their events. Every flag also reads its default
// from REALM_<FLAG_NAME>; see --help.
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

	"github.com/redis/go-redis/v9"

	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/services/world/world"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	cfg := world.DefaultConfig()
	fs := flag.NewFlagSet("world", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: world [flags]\n\nA Realmstream world instance: owns zones (leases in Redis or in-process), consumes cmd.<zone>,\nsimulates at a fixed tick and appends fenced events to evt.<zone>.\n\nFlags:\n")
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
	log := telemetry.NewLogger("world", cfg.LogFormat, level).With("version", version)
	redis.SetLogger(redisLog{log}) // go-redis logs through slog, not to bare stderr

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	shutdownTracing, err := telemetry.StartTracing(ctx, "world", cfg.OTLPEndpoint)
	if err != nil {
		log.Error("tracing", "err", err)
		return 1
	}
	defer func() { _ = shutdownTracing(context.Background()) }()

	svc, err := world.New(cfg, log)
	if err != nil {
		log.Error("config", "err", err)
		return 2
	}
	if err := svc.Run(ctx); err != nil {
		log.Error("world failed", "err", err)
		return 1
	}
	return 0
}

// redisLog adapts slog to go-redis's internal logger.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.log.WarnContext(ctx, "redis client", "msg", fmt.Sprintf(format, v...))
}

// version is stamped at build time: go build -ldflags "-X main.version=<git describe>".
var version = "dev"

// Package svcmain is the body of every Realmstream service's main: flags
// (through envflag) -> logger -> signal context -> tracing -> New -> Run ->
// exit code. Each cmd/<svc>/main.go only describes its service.
package svcmain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/telemetry"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1 // the service ran and failed
	ExitConfig = 2 // bad flags, environment or configuration: nothing started
)

// Service is what Run needs of a constructed service.
type Service interface {
	Run(ctx context.Context) error
}

// Logging is the part of a service's configuration Run reads after parsing.
type Logging struct {
	Level, Format string // --log-level, --log-format
	OTLPEndpoint  string // --otlp-endpoint ("" = traces recorded, not exported)
}

// Spec describes one service binary.
type Spec struct {
	Name    string // service name: flag set, logger and tracer name
	About   string // what the service does, printed by --help above the flags
	Version string // stamped with -ldflags -X main.version
	// Register binds the service's configuration to the flag set.
	Register func(*envflag.Set)
	// Logging returns the parsed logging settings.
	Logging func() Logging
	// New builds the service from the parsed configuration.
	New func(log *slog.Logger) (Service, error)
}

// Run parses args, runs the service until SIGINT/SIGTERM and returns the exit code.
func Run(args []string, stderr io.Writer, s Spec) int {
	fs := flag.NewFlagSet(s.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\n%s\nEvery flag also reads its default from the environment variable shown.\n\nFlags:\n", s.Name, s.About)
		fs.PrintDefaults()
	}
	set := envflag.New(fs)
	s.Register(set)
	if err := set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		fmt.Fprintf(stderr, "%s: %v\n", s.Name, err)
		return ExitConfig
	}
	lc := s.Logging()
	log, err := Logger(s.Name, s.Version, lc)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", s.Name, err)
		return ExitConfig
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	shutdownTracing, err := telemetry.StartTracing(ctx, s.Name, lc.OTLPEndpoint)
	if err != nil {
		log.Error("tracing", "err", err)
		return ExitFailed
	}
	defer func() { _ = shutdownTracing(context.Background()) }()
	svc, err := s.New(log)
	if err != nil {
		log.Error("configuration refused: nothing started", "err", err)
		return ExitConfig
	}
	if err := svc.Run(ctx); err != nil {
		log.Error(s.Name+" failed", "err", err)
		return ExitFailed
	}
	return ExitOK
}

// Logger returns the service's logger (JSON or text, with trace ids and the version).
func Logger(name, version string, lc Logging) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(lc.Level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", lc.Level)
	}
	if lc.Format != "json" && lc.Format != "text" && lc.Format != "" {
		return nil, fmt.Errorf("--log-format %q: want json or text", lc.Format)
	}
	return telemetry.NewLogger(name, lc.Format, level).With("version", version), nil
}

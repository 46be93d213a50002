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
	"os"
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
	OTLPEndpoint  string // --otlp-endpoint ("" = tracing off)
}

// Spec describes one service binary.
type Spec struct {
	Name    string // service name: flag set, logger and tracer name
	About   string // what the service does, printed by --help above the flags
	Version string // stamped with -ldflags -X main.version
	// Register binds the service's configuration to the flag set.
	Register func(*envflag.Set)
	// Common is the service's common configuration block, when it has one:
	// Run then reads the logging settings from it (Logging may be nil) and
	// applies the production rules of a binary (see productionRules).
	Common *Common
	// Logging returns the parsed logging settings (default: Common's).
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
	var lc Logging
	if s.Logging != nil {
		lc = s.Logging()
	} else if s.Common != nil {
		lc = s.Common.Logging()
	}
	log, err := Logger(s.Name, s.Version, lc)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", s.Name, err)
		return ExitConfig
	}
	if s.Common != nil {
		productionRules(fs, s.Common, log)
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

// productionRules applies what a binary (production mode) must do beyond
// the defaults: say loudly which NATS server it connects to, and create no
// streams on a server it was not pointed at. A binary started without
// --nats-url (nor REALM_NATS_URL) would otherwise set up the contract's
// streams on whatever listens on 127.0.0.1:4222; it now only checks they exist
// unless --create-streams (or REALM_CREATE_STREAMS) is given explicitly. The
// stack and tests build services in-process and keep the default (create).
func productionRules(fs *flag.FlagSet, c *Common, log *slog.Logger) {
	urlGiven, createGiven := explicit(fs, "nats-url"), explicit(fs, "create-streams")
	switch {
	case urlGiven:
		log.Info("NATS server", "nats_url", c.NATSURL, "create_streams", c.CreateStreams)
	case createGiven:
		log.Warn("no --nats-url given: connecting to the default NATS server (streams created: --create-streams)", "nats_url", c.NATSURL, "create_streams", c.CreateStreams)
	default:
		c.CreateStreams = false
		log.Warn("no --nats-url given: connecting to the default NATS server and creating NO streams there (only checking they exist); "+
			"give --nats-url (REALM_NATS_URL) or --create-streams", "nats_url", c.NATSURL, "create_streams", false)
	}
}

// explicit reports whether flag name was set on the command line or in its
// environment variable.
func explicit(fs *flag.FlagSet, name string) bool {
	if _, ok := os.LookupEnv(envflag.EnvName(name)); ok {
		return true
	}
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
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

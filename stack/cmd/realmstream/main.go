// Command realmstream runs the whole Realmstream backend in one process on one
// machine with nothing installed (embedded NATS with JetStream, Pebble
// storage, an in-process lock table), and drives it with bots.
//
//	realmstream run  [flags]   the stack (and optionally bots)
//	realmstream bots [flags]   a bot swarm against a running gateway
//	realmstream bench capacity  the capacity curve against a one-process stack and a bare pipeline
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `realmstream: the Realmstream game backend on one machine.

Usage:
  realmstream run  [flags]   start embedded NATS, gateway, world, persist and monitor in this process
  realmstream bots [flags]   connect simulated players to a running gateway and report
  realmstream bench capacity [flags]
                             the capacity curve: bots against a one-process stack and a
                             bare JetStream pipeline of the same shape, table + JSON
  realmstream admin [flags] <command>
                             look inside a running backend: zones, zone state (time
                             travel), zone log, player history, shards, partitions,
                             consumers (realmstream admin --help)
  realmstream help           this text

Run "realmstream <command> --help" for the flags of a command. Every flag can
also be set through the environment variable REALM_<FLAG> (e.g. --data-dir is
REALM_DATA_DIR).
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "run":
		err = runStack(ctx, args[1:], stdout, stderr)
	case "bots":
		err = runBots(ctx, args[1:], stdout, stderr)
	case "admin":
		err = runAdmin(ctx, args[1:], stdout, stderr)
	case "bench":
		err = runBench(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "realmstream: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "realmstream: %v\n", err)
		return 1
	}
	return 0
}

// version is stamped at build time: go build -ldflags "-X main.version=<git describe>".
var version = "dev"

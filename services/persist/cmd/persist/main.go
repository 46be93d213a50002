// Command persist runs the Realmstream persist service: EVT events into
// date-partitioned, hash-sharded Postgres (or Pebble), read models, the
// query API and DB stats events. Every flag also reads its default from
// REALM_<FLAG_NAME>; see --help.
//
//	persist [flags]                                   run the service
//	persist shards show [flags]                       print the shard map
//	persist shards add-db --name pg2 --url URL [--rebalance] [flags]
//	persist shards move --logical 17 --to pg2 [flags] move one logical shard online
//	persist shards rebalance [flags]                  move logical shards until balanced
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
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/services/persist/persist"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) > 0 && args[0] == "shards" {
		return shards(args[1:])
	}
	cfg := persist.DefaultConfig()
	return svcmain.Run(args, os.Stderr, svcmain.Spec{
		Name: "persist",
		About: "Subcommands: persist shards show|add-db|move|rebalance [flags]   (see persist shards --help)\n\n" +
			"Persists the EVT event log into date-partitioned, hash-sharded Postgres (--pg-urls) or Pebble\n" +
			"(--pebble-dir), projects read models, answers persist.query.* and publishes DB stats on stats.db.<shard>.",
		Version:  version,
		Register: cfg.RegisterFlags,
		Logging:  func() svcmain.Logging { return logging(cfg) },
		New:      func(log *slog.Logger) (svcmain.Service, error) { return persist.New(cfg, log) },
	})
}

func logging(cfg persist.Config) svcmain.Logging {
	return svcmain.Logging{Level: cfg.LogLevel, Format: cfg.LogFormat, OTLPEndpoint: cfg.OTLPEndpoint}
}

func logger(cfg persist.Config) (*slog.Logger, bool) {
	log, err := svcmain.Logger("persist", version, logging(cfg))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil, false
	}
	return log, true
}

func shards(args []string) int {
	usage := "Usage: persist shards <show|add-db|move|rebalance> [flags]\n\n" +
		"  show                                  print the shard map (version, databases, logical shards each)\n" +
		"  add-db --name N --url U [--rebalance] migrate a new database, add it to the map, optionally move shards to it\n" +
		"  move --logical L --to N               move one logical shard online (copy, catch up, block, verify, switch, clean)\n" +
		"  rebalance                             move logical shards until every database owns an equal share\n\n" +
		"Moves run while persist replicas keep writing; they pause only briefly for the shard being switched.\n\nFlags:\n"
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	sub := args[0]
	cfg := persist.DefaultConfig()
	cfg.LogFormat = "text"
	fs := flag.NewFlagSet("persist shards "+sub, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	set := envflag.New(fs)
	cfg.RegisterFlags(set)
	var name, url string
	var logical int
	var rebalance bool
	fs.StringVar(&name, "name", "", "add-db: name of the new database (subject token, e.g. pg2); move: see --to")
	fs.StringVar(&name, "to", "", "move: target database name")
	fs.StringVar(&url, "url", "", "add-db: postgres:// URL of the new database")
	fs.IntVar(&logical, "logical", -1, "move: logical shard (0..255)")
	fs.BoolVar(&rebalance, "rebalance", false, "add-db: rebalance after adding")
	if sub == "-h" || sub == "--help" || sub == "help" {
		fs.Usage()
		return 0
	}
	if err := set.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	switch {
	case sub == "add-db" && (name == "" || url == ""):
		fmt.Fprintln(os.Stderr, "add-db needs --name and --url")
		return 2
	case sub == "move" && (name == "" || logical < 0 || logical > 255):
		fmt.Fprintln(os.Stderr, "move needs --logical 0..255 and --to <database>")
		return 2
	case sub != "show" && sub != "add-db" && sub != "move" && sub != "rebalance":
		fmt.Fprintf(os.Stderr, "unknown subcommand %q\n%s", sub, usage)
		return 2
	}
	log, ok := logger(cfg)
	if !ok {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := persist.OpenAdmin(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer a.Close()
	switch sub {
	case "show":
		err = a.Show(ctx, os.Stdout)
	case "add-db":
		err = a.AddDB(ctx, name, url, rebalance, os.Stdout)
	case "move":
		err = a.Move(ctx, logical, name, os.Stdout)
	case "rebalance":
		err = a.Rebalance(ctx, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// version is stamped at build time: go build -ldflags "-X main.version=<git describe>".
var version = "dev"

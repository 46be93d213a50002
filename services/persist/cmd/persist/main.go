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
	"fmt"
	"log/slog"
	"os"
	"strings"

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
		Common:   &cfg.Common,
		New:      func(log *slog.Logger) (svcmain.Service, error) { return persist.New(cfg, log) },
	})
}

const shardsUsage = "persist shards <show|add-db|move|rebalance> [flags]\n\n" +
	"  show                                  print the shard map (version, databases, logical shards each)\n" +
	"  add-db --name N --url U [--rebalance] migrate a new database, add it to the map, optionally move shards to it\n" +
	"  move --logical L --to N               move one logical shard online (copy, catch up, block, verify, switch, clean)\n" +
	"  rebalance                             move logical shards until every database owns an equal share\n\n" +
	"Moves run while persist replicas keep writing; they pause only briefly for the shard being switched.\n"

// shards runs one shard-map subcommand through svcmain like the service
// itself: the same flags, environment, logger, signal handling and exit codes.
func shards(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, "Usage: "+shardsUsage)
		return svcmain.ExitConfig
	}
	sub := args[0]
	if sub == "-h" || sub == "--help" || sub == "help" {
		sub, args = "", []string{"", "--help"}
	}
	switch sub {
	case "", "show", "add-db", "move", "rebalance":
	default:
		fmt.Fprintf(os.Stderr, "unknown subcommand %q\nUsage: %s", sub, shardsUsage)
		return svcmain.ExitConfig
	}
	t := shardsTask{sub: sub, cfg: persist.DefaultConfig(), logical: -1}
	t.cfg.LogFormat = "text"
	return svcmain.Run(args[1:], os.Stderr, svcmain.Spec{
		Name:    strings.TrimSpace("persist shards " + sub),
		About:   shardsUsage,
		Version: version,
		Register: func(s *envflag.Set) {
			t.cfg.RegisterFlags(s)
			s.FS.StringVar(&t.name, "name", "", "add-db: name of the new database (subject token, e.g. pg2); move: see --to")
			s.FS.StringVar(&t.name, "to", "", "move: target database name")
			s.FS.StringVar(&t.url, "url", "", "add-db: postgres:// URL of the new database")
			s.FS.IntVar(&t.logical, "logical", -1, "move: logical shard (0..255)")
			s.FS.BoolVar(&t.rebalance, "rebalance", false, "add-db: rebalance after adding")
		},
		Common: &t.cfg.Common,
		New: func(log *slog.Logger) (svcmain.Service, error) {
			t.log = log
			return t, t.validate()
		},
	})
}

// shardsTask is one run of a shards subcommand.
type shardsTask struct {
	sub, name, url string
	logical        int
	rebalance      bool
	cfg            persist.Config
	log            *slog.Logger
}

func (t shardsTask) validate() error {
	switch {
	case t.sub == "add-db" && (t.name == "" || t.url == ""):
		return errors.New("add-db needs --name and --url")
	case t.sub == "move" && (t.name == "" || t.logical < 0 || t.logical > 255):
		return errors.New("move needs --logical 0..255 and --to <database>")
	}
	return nil
}

func (t shardsTask) Run(ctx context.Context) error {
	a, err := persist.OpenAdmin(ctx, t.cfg, t.log)
	if err != nil {
		return err
	}
	defer a.Close()
	switch t.sub {
	case "show":
		return a.Show(ctx, os.Stdout)
	case "add-db":
		return a.AddDB(ctx, t.name, t.url, t.rebalance, os.Stdout)
	case "move":
		return a.Move(ctx, t.logical, t.name, os.Stdout)
	case "rebalance":
		return a.Rebalance(ctx, os.Stdout)
	}
	return nil
}

// version is stamped at build time: go build -ldflags "-X main.version=<git describe>".
var version = "dev"

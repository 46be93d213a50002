package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/realmstream/realmstream/libs/bots"
	"github.com/realmstream/realmstream/libs/envflag"
)

type botOptions struct {
	Addr      string // host:port
	Transport string // tcp | ws
	Count     int
	Duration  time.Duration
	MoveRate  float64
	JSONPath  string
}

func runBots(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("realmstream bots", flag.ContinueOnError)
	fs.SetOutput(stderr)
	es := envflag.New(fs)
	var o botOptions
	es.String(&o.Addr, "addr", "127.0.0.1:7000", "gateway address host:port (the TCP port for tcp, the WebSocket port for ws)")
	es.String(&o.Transport, "transport", "tcp", "tcp or ws")
	es.Int(&o.Count, "count", 100, "number of bots")
	es.Duration(&o.Duration, "duration", 30*time.Second, "how long the bots play (0 = until Ctrl-C)")
	es.Float(&o.MoveRate, "move-rate", 5, "moves per second per bot")
	es.String(&o.JSONPath, "json", "", "write the final summary as JSON to this file ('-' = stdout)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: realmstream bots [flags]\n\nConnects simulated players (dev-mode tokens) to a running gateway: they log\nin, join zones, move, chat and fight. Prints a progress line every second and\na summary with throughput, errors and latency percentiles.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := es.Parse(args); err != nil {
		return err
	}
	if o.Transport != "tcp" && o.Transport != "ws" {
		return fmt.Errorf("--transport %q: want tcp or ws", o.Transport)
	}
	if o.Count < 1 {
		return fmt.Errorf("--count %d: want at least 1", o.Count)
	}
	return swarm(ctx, o, stdout)
}

// swarm runs bots and prints progress and the summary.
func swarm(ctx context.Context, o botOptions, stdout io.Writer) error {
	addr := o.Addr
	if !strings.Contains(addr, "://") {
		addr = o.Transport + "://" + addr
		if o.Transport == "ws" {
			addr += "/"
		}
	}
	fmt.Fprintf(stdout, "bots: %d over %s to %s\n", o.Count, o.Transport, addr)
	sum, err := bots.Run(ctx, bots.Config{Addr: addr, Bots: o.Count, Duration: o.Duration, MoveRate: o.MoveRate},
		func(p bots.Progress) { fmt.Fprintf(stdout, "\r\033[K%s", p) })
	fmt.Fprintln(stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "summary: %d/%d bots connected, sent %d (%.0f/s), acked %d (%.0f/s), busy %d, errors %d %v, updates %d\n"+
		"  ack latency    p50 %.2fms p99 %.2fms p999 %.2fms\n  update latency p50 %.2fms p99 %.2fms p999 %.2fms\n",
		sum.Connected, sum.Bots, sum.Sent, sum.SentPerSec, sum.Acked, sum.AckedPerSec, sum.Busy, sum.Errors, sum.ErrorsByCode, sum.Updates,
		sum.AckLatency.P50, sum.AckLatency.P99, sum.AckLatency.P999, sum.UpdateLatency.P50, sum.UpdateLatency.P99, sum.UpdateLatency.P999)
	if o.JSONPath != "" {
		b, _ := json.MarshalIndent(sum, "", "  ")
		if o.JSONPath == "-" {
			fmt.Fprintln(stdout, string(b))
		} else if err := os.WriteFile(o.JSONPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.JSONPath, err)
		}
	}
	return nil
}

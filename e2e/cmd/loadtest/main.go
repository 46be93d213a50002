// Command loadtest drives a swarm of realistic bots against running
// Realmstream gateways (TCP and/or WebSocket): log in, move at 10 Hz, chat,
// fight, cross zones, disconnect and resume. It prints a progress line every
// second and a summary at the end, and can write a JSON report and a JSON-lines
// record of every command sent and every answer received.
//
//	loadtest --tcp 127.0.0.1:7000 --ws ws://127.0.0.1:7001/ --bots 500 --duration 60s --json report.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/realmstream/realmstream/libs/bots"
	"github.com/realmstream/realmstream/libs/envflag"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	set := envflag.New(fs)
	var (
		tcp, ws, jsonPath, recPath, prefix string
		nbots                              int
		wsFrac, crossers, elsewhere        float64
		duration, resume, ramp, leave      time.Duration
		chat, attack                       time.Duration
		hz                                 float64
		seed                               int
		quiet                              bool
	)
	set.String(&tcp, "tcp", "127.0.0.1:7000", "comma-separated gateway TCP addresses (host:port)")
	set.String(&ws, "ws", "", "comma-separated gateway WebSocket URLs (ws://host:port/), paired with --tcp by position")
	set.Int(&nbots, "bots", 100, "number of bots")
	set.Duration(&duration, "duration", 30*time.Second, "how long to play")
	set.Float(&wsFrac, "ws-fraction", 0.3, "share of bots on WebSocket (where a gateway offers it)")
	set.Float(&crossers, "crossers", 0.2, "share of bots that walk across zone borders")
	set.Float(&hz, "move-hz", 10, "moves per second per bot")
	set.Duration(&chat, "chat-every", 5*time.Second, "mean interval between chat lines per bot")
	set.Duration(&attack, "attack-every", 2*time.Second, "mean interval between attacks per bot (when a target is near)")
	set.Duration(&resume, "resume-every", 0, "mean interval between deliberate disconnect+resume per bot (0 = never)")
	set.Float(&elsewhere, "resume-elsewhere", 0.5, "share of deliberate resumes made on another gateway (with two or more)")
	set.Duration(&leave, "leave-every", 0, "mean interval between Leave and re-join per bot (0 = never)")
	set.Duration(&ramp, "ramp-up", 5*time.Second, "spread logins over this time")
	set.String(&prefix, "name-prefix", "", "player name prefix (unique per run; default derived from the time)")
	set.Int(&seed, "seed", 1, "random seed")
	set.String(&jsonPath, "json", "", "write the JSON report here")
	set.String(&recPath, "record", "", "write every command and answer as JSON lines here")
	set.Bool(&quiet, "quiet", false, "no progress line")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: loadtest [flags]\n\nA swarm of bots against Realmstream gateways.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	gws := pair(split(tcp), split(ws))
	if len(gws) == 0 {
		fmt.Fprintln(os.Stderr, "loadtest: give at least one gateway with --tcp or --ws")
		return 2
	}
	cfg := bots.Config{
		Gateways: gws, Bots: nbots, WSFraction: wsFrac, CrosserFraction: crossers, MoveRate: hz,
		ChatEvery: chat, AttackEvery: attack, ResumeEvery: resume, ResumeElsewhere: elsewhere, LeaveEvery: leave,
		RampUp: ramp, NamePrefix: prefix, Seed: uint64(seed),
	}
	if !quiet {
		cfg.Progress = func(p bots.Progress) { fmt.Fprintln(os.Stderr, p) }
	}
	if recPath != "" {
		f, err := os.Create(recPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		cfg.Record = f
	}
	sw, err := bots.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	rep := sw.Run(ctx)
	rep.Print(os.Stdout)
	if jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if rep.Acked == 0 {
		fmt.Fprintln(os.Stderr, "loadtest: no command was acknowledged")
		return 1
	}
	return 0
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func pair(tcp, ws []string) []bots.Gateway {
	n := max(len(tcp), len(ws))
	out := make([]bots.Gateway, n)
	for i := range n {
		if i < len(tcp) {
			out[i].TCP = tcp[i]
		}
		if i < len(ws) {
			out[i].WS = ws[i]
		}
	}
	return out
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/realmstream/realmstream/libs/bots"
	"github.com/realmstream/realmstream/libs/envflag"
)

// botOptions configure `realmstream bots` (and the bots of `realmstream run
// --bots`); zero values take the libs/bots defaults.
type botOptions struct {
	Addr            string // comma-separated gateway addresses: host:port, tcp://host:port or ws://host:port/
	Transport       string // tcp | ws: for addresses without a scheme
	Count           int
	Duration        time.Duration
	MoveRate        float64
	ChatEvery       time.Duration
	AttackEvery     time.Duration
	Crossers        float64
	LeaveEvery      time.Duration
	ResumeEvery     time.Duration
	ResumeElsewhere float64
	RampUp          time.Duration
	Seed            int
	NamePrefix      string
	JSONPath        string
	RecordPath      string
	Quiet           bool
	CPUProfile      string
}

const botsUsage = `Usage: realmstream bots [flags]

Connects simulated players (dev-mode tokens) to running gateways: they log
in, join zones, move at --move-rate, chat, attack players they see, and at
the rates below walk across zone borders (transfers), leave and re-join,
and drop their connection to resume the session on the same or another
gateway (give two or more addresses in --addr). Prints a progress line
every second and a summary: throughput, answers by kind, input->update and
send->ack latency percentiles, and the CPU the bots used per command.

Examples:
  realmstream bots --count 500 --move-rate 10 --duration 60s --json report.json
  realmstream bots --addr 127.0.0.1:7000,127.0.0.1:7100 --crossers 0.2 --leave-every 30s --resume-every 20s

Every flag can also be set as REALM_<FLAG> (e.g. REALM_COUNT=500).

Flags:
`

func (o *botOptions) register(es *envflag.Set) {
	es.String(&o.Addr, "addr", "127.0.0.1:7000", "gateway addresses, comma-separated: host:port (speaks --transport), tcp://host:port or ws://host:port/")
	es.String(&o.Transport, "transport", "tcp", "tcp or ws: the transport of addresses given without a scheme")
	es.Int(&o.Count, "count", 100, "number of bots")
	es.Duration(&o.Duration, "duration", 30*time.Second, "how long the bots play (0 = until Ctrl-C)")
	es.Float(&o.MoveRate, "move-rate", 10, "moves per second per bot")
	es.Duration(&o.ChatEvery, "chat-every", 5*time.Second, "mean interval between chat lines per bot (negative = never)")
	es.Duration(&o.AttackEvery, "attack-every", 2*time.Second, "mean interval between attacks per bot on a player seen within reach (negative = never)")
	es.Float(&o.Crossers, "crossers", 0, "share of bots (0..1) that walk across zone borders now and then (a transfer each time)")
	es.Duration(&o.LeaveEvery, "leave-every", 0, "mean interval between a Leave and a re-join (1-2s later) per bot (0 = never)")
	es.Duration(&o.ResumeEvery, "resume-every", 0, "mean interval between deliberate disconnect + session resume per bot (0 = never)")
	es.Float(&o.ResumeElsewhere, "resume-elsewhere", 0.5, "share of resumes made on another gateway of --addr (with two or more)")
	es.Duration(&o.RampUp, "ramp-up", 0, "spread the logins over this time (0 = count/200 seconds, at least 1s)")
	es.Int(&o.Seed, "seed", 1, "random seed of the bots' choices")
	es.String(&o.NamePrefix, "name-prefix", "", "player name prefix (default: unique per run)")
	es.String(&o.JSONPath, "json", "", "write the final report as JSON to this file ('-' = stdout)")
	es.String(&o.RecordPath, "record", "", "write every command sent and every answer as JSON lines to this file")
	es.Bool(&o.Quiet, "quiet", false, "no progress lines")
	es.String(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the bots (go tool pprof) to this file")
}

func runBots(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("realmstream bots", flag.ContinueOnError)
	fs.SetOutput(stderr)
	es := envflag.New(fs)
	var o botOptions
	o.register(es)
	fs.Usage = func() {
		fmt.Fprint(stderr, botsUsage)
		fs.PrintDefaults()
	}
	if err := es.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bots: unexpected arguments %q (flags only; see --help)", fs.Args())
	}
	return swarm(ctx, o, stdout)
}

// gatewaysOf parses --addr.
func gatewaysOf(addrs, transport string) ([]bots.Gateway, error) {
	if transport != "tcp" && transport != "ws" {
		return nil, fmt.Errorf("--transport %q: want tcp or ws", transport)
	}
	var out []bots.Gateway
	for _, a := range strings.Split(addrs, ",") {
		a = strings.TrimSpace(a)
		switch {
		case a == "":
		case strings.HasPrefix(a, "ws://"), strings.HasPrefix(a, "wss://"):
			out = append(out, bots.Gateway{WS: a})
		case strings.HasPrefix(a, "tcp://"):
			out = append(out, bots.Gateway{TCP: strings.TrimPrefix(a, "tcp://")})
		case strings.Contains(a, "://"):
			return nil, fmt.Errorf("--addr %q: want host:port, tcp://host:port or ws://host:port/", a)
		case transport == "ws":
			out = append(out, bots.Gateway{WS: "ws://" + a + "/"})
		default:
			out = append(out, bots.Gateway{TCP: a})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--addr: no gateway address")
	}
	return out, nil
}

func (o *botOptions) config() (bots.Config, error) {
	gws, err := gatewaysOf(o.Addr, o.Transport)
	if err != nil {
		return bots.Config{}, err
	}
	if o.Count < 1 {
		return bots.Config{}, fmt.Errorf("--count %d: want at least 1", o.Count)
	}
	if o.MoveRate < 0 || o.MoveRate > 1000 {
		return bots.Config{}, fmt.Errorf("--move-rate %g: want 0 < rate <= 1000", o.MoveRate)
	}
	for name, v := range map[string]float64{"--crossers": o.Crossers, "--resume-elsewhere": o.ResumeElsewhere} {
		if v < 0 || v > 1 {
			return bots.Config{}, fmt.Errorf("%s %g: want a share between 0 and 1", name, v)
		}
	}
	if o.LeaveEvery < 0 || o.ResumeEvery < 0 || o.Duration < 0 {
		return bots.Config{}, fmt.Errorf("--leave-every, --resume-every and --duration must not be negative")
	}
	return bots.Config{
		Gateways: gws, Bots: o.Count, Duration: o.Duration, MoveRate: o.MoveRate, ChatEvery: o.ChatEvery,
		AttackEvery: o.AttackEvery, CrosserFraction: o.Crossers, LeaveEvery: o.LeaveEvery, ResumeEvery: o.ResumeEvery,
		ResumeElsewhere: o.ResumeElsewhere, RampUp: o.RampUp, Seed: uint64(o.Seed), NamePrefix: o.NamePrefix,
	}, nil
}

// swarm runs bots and prints progress and the summary.
func swarm(ctx context.Context, o botOptions, stdout io.Writer) error {
	if o.Transport == "" {
		o.Transport = "tcp"
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	if o.RecordPath != "" {
		f, err := os.Create(o.RecordPath)
		if err != nil {
			return fmt.Errorf("--record: %w", err)
		}
		defer f.Close()
		cfg.Record = f
	}
	if !o.Quiet {
		cfg.Progress = func(p bots.Progress) { fmt.Fprintln(stdout, p) }
	}
	sw, err := bots.New(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bots: %d to %s at %g moves/s\n", o.Count, o.Addr, cfg.MoveRate)
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	cpu0 := processCPU()
	rep := sw.Run(ctx)
	cpu := processCPU() - cpu0
	if o.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	if rep.Sent == 0 && rep.ConnFail > 0 {
		return fmt.Errorf("no bot could connect to %s (%d attempts failed; is the stack running?)", o.Addr, rep.ConnFail)
	}
	fmt.Fprintf(stdout, "summary: %d/%d bots connected, sent %d (%.0f/s), acked %d (%.0f/s), busy %d, errors %d, updates %d\n",
		rep.Connected, rep.Bots, rep.Sent, rep.SentPerSec, rep.Acked, rep.AckedPerSec, rep.Busy, rep.Errors, rep.Updates)
	rep.Print(stdout)
	if cpu > 0 && rep.Acked > 0 {
		fmt.Fprintf(stdout, "bots CPU: %.2fs (%.2f cores), %.1fµs per acked command\n",
			cpu.Seconds(), cpu.Seconds()/rep.DurationSec, float64(cpu.Microseconds())/float64(rep.Acked))
	}
	if o.JSONPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if o.JSONPath == "-" {
			fmt.Fprintln(stdout, string(b))
		} else if err := os.WriteFile(o.JSONPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.JSONPath, err)
		}
	}
	return nil
}

package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/realmstream/realmstream/libs/bots"
	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/freeport"
)

const benchUsage = `Usage: realmstream bench capacity [flags]

Runs the capacity curve: for each bot count of --bots, a fresh one-process
stack (this binary's "run", started as a child process so that its CPU time
is its own) is loaded by bots moving at --move-rate for --duration, after a
ramp-up and --warmup; then, in the same run, a bare pipeline of the same
shape (bots -> a plain TCP reader -> JetStream publish to cmd.<zone> -> a
consumer that appends one event per command to evt.<zone> and echoes an
update -> a consumer that acks the events), also a child process, with the
same bots. Prints a table (commands/s acked, input->update p50/p99, send->ack
p99, busy, errors, "too fast" refusals, lost, CPU per command of the stack
and of the bots, realm_world_apply_seconds per command and tick duration
p99 scraped from the world's /metrics, and the ratio to the bare pipeline)
and writes a JSON report with --json.

With --stack-batch each step also runs the stack with the gateway's
--command-batch (--stack-batch-linger, default 2ms, its --command-linger)
and prints a table of the two stacks side by side: commands/s, p99, busy,
too fast, lost, commands per message and CPU per command.

With --bare-batch each step also runs the bare pipeline publishing each
zone's waiting commands as one JetStream message (the experiment of
docs/command-batches.md) and prints a second table: the two bare pipelines'
commands/s, p99, busy, lost and CPU per command side by side (--no-stack
runs only those).

The machine is shared by the stack, the bots and the pipeline: run it on a
quiet machine (the load average is printed beside every step).

Examples:
  realmstream bench capacity                                  # 250,500,1000,2000,3000 bots, 60s each
  realmstream bench capacity --bots 250,500 --duration 30s --json report.json
  realmstream bench capacity --tcp 127.0.0.1:7000 --http-base 8080 --stack-pid 1234   # a running stack
  realmstream bench capacity --no-stack --bare-batch --bots 500,1000,2000   # what command batches save, bare pipeline only
  realmstream bench capacity --stack-batch --bots 1000,2000 --duration 30s   # the stack with and without the gateway's --command-batch

Flags:
`

type benchOptions struct {
	Bots      string
	MoveRate  float64
	Duration  time.Duration
	Warmup    time.Duration
	TCP       string
	HTTPBase  int
	StackPID  int
	NoBare    bool
	JSONPath  string
	DataDir   string
	Exe       string
	StackArgs string
	BareBatch bool
	Linger    time.Duration
	// StackBatch also runs each step against a stack whose gateway batches
	// commands (--command-batch, --command-linger StackLinger).
	StackBatch  bool
	StackLinger time.Duration
	NoStack     bool
	Quiet       bool
	counts      []int
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, "Usage: realmstream bench capacity [flags]   (see realmstream bench capacity --help)\n")
		if len(args) == 0 {
			return errors.New("bench: name a benchmark: capacity")
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "capacity":
		return runCapacity(ctx, args[1:], stdout, stderr)
	case "pipeline-server":
		return runPipelineServer(ctx, args[1:], stdout, stderr)
	default:
		return fmt.Errorf("bench: unknown benchmark %q (want capacity)", args[0])
	}
}

func runCapacity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("realmstream bench capacity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	es := envflag.New(fs)
	var o benchOptions
	es.String(&o.Bots, "bots", "250,500,1000,2000,3000", "bot counts of the curve, comma-separated")
	es.Float(&o.MoveRate, "move-rate", 10, "moves per second per bot")
	es.Duration(&o.Duration, "duration", 60*time.Second, "measured time per step (after the ramp-up and the warm-up)")
	es.Duration(&o.Warmup, "warmup", 5*time.Second, "time after the last bot connected before measuring")
	es.String(&o.TCP, "tcp", "", "measure a running stack at this gateway TCP address instead of starting one (no bare pipeline unless --bare)")
	es.Int(&o.HTTPBase, "http-base", 8080, "with --tcp: the stack's first ops port (the world's /metrics is the next one)")
	es.Int(&o.StackPID, "stack-pid", 0, "with --tcp: the stack's process id, for its CPU time (Linux)")
	es.Bool(&o.NoBare, "no-bare", false, "skip the bare pipeline (no ratio)")
	es.String(&o.JSONPath, "json", "", "write the report as JSON to this file")
	es.String(&o.DataDir, "data-dir", "", "where the stacks and pipelines keep their data (default a temporary directory, removed after)")
	es.String(&o.Exe, "exe", "", "the realmstream binary to start for the stack and the pipeline (default this one)")
	es.String(&o.StackArgs, "stack-args", "", "extra flags for each started stack's realmstream run, space-separated (e.g. \"--nats-sync always\")")
	es.Bool(&o.BareBatch, "bare-batch", false, "also run, at each step, the bare pipeline with each zone's waiting commands published as one message (docs/command-batches.md), and compare it with the bare pipeline")
	es.Duration(&o.Linger, "bare-batch-linger", 0, "with --bare-batch: how long each zone's batcher waits for more commands after a batch's first (0: only what has queued)")
	es.Bool(&o.StackBatch, "stack-batch", false, "also run, at each step, the stack with the gateway's --command-batch (docs/command-batches.md), and compare it with the stack as configured")
	es.Duration(&o.StackLinger, "stack-batch-linger", 2*time.Millisecond, "with --stack-batch: the gateway's --command-linger")
	es.Bool(&o.NoStack, "no-stack", false, "skip the stack (with --bare-batch: only the two bare pipelines)")
	es.Bool(&o.Quiet, "quiet", false, "no progress lines of the bots")
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	if err := es.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench capacity: unexpected arguments %q", fs.Args())
	}
	for _, f := range strings.Split(o.Bots, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("--bots %q: want comma-separated positive counts", o.Bots)
		}
		o.counts = append(o.counts, n)
	}
	if o.MoveRate <= 0 || o.MoveRate > 1000 {
		return fmt.Errorf("--move-rate %g: want 0 < rate <= 1000", o.MoveRate)
	}
	if o.NoStack && o.NoBare && !o.BareBatch && !o.StackBatch {
		return errors.New("--no-stack with --no-bare leaves nothing to run (add --bare-batch or --stack-batch, or drop one)")
	}
	if o.Duration < time.Second {
		return fmt.Errorf("--duration %v: want at least 1s", o.Duration)
	}
	if o.Warmup < 0 {
		return fmt.Errorf("--warmup %v: must not be negative", o.Warmup)
	}
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find this binary (give --exe): %w", err)
		}
		o.Exe = exe
	}
	if o.DataDir == "" {
		d, err := os.MkdirTemp("", "realmstream-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.DataDir = d
	} else if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return err
	}
	rep := capacityReport{Command: "realmstream bench capacity " + strings.Join(args, " "), Machine: machineInfo(),
		MoveRate: o.MoveRate, DurationS: o.Duration.Seconds(), WarmupS: o.Warmup.Seconds(), Started: time.Now().UTC()}
	fmt.Fprintf(stdout, "capacity: bots %v at %g moves/s, %v measured per step; %s; load average %s\n",
		o.counts, o.MoveRate, o.Duration, rep.Machine.String(), loadAvg())
	for i, n := range o.counts {
		st := capacityStep{Bots: n}
		var kinds []string
		if !o.NoStack {
			kinds = append(kinds, "stack")
		}
		if o.StackBatch {
			kinds = append(kinds, "stack-batch")
		}
		if !o.NoBare {
			kinds = append(kinds, "bare")
		}
		if o.BareBatch {
			kinds = append(kinds, "bare-batch")
		}
		for _, kind := range kinds {
			fmt.Fprintf(stdout, "capacity: [%d/%d] %s with %d bots: starting (load average %s)\n", i+1, len(o.counts), kind, n, loadAvg())
			res, err := o.step(ctx, kind, n, filepath.Join(o.DataDir, fmt.Sprintf("%s-%d", kind, n)), stdout)
			if err != nil {
				return fmt.Errorf("%s with %d bots: %w", kind, n, err)
			}
			fmt.Fprintf(stdout, "capacity: [%d/%d] %s with %d bots: %s\n", i+1, len(o.counts), kind, n, res.line())
			switch kind {
			case "stack":
				st.Stack = res
			case "stack-batch":
				st.StackBatch = res
			case "bare":
				st.Bare = res
			default:
				st.BareBatch = res
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if st.Stack != nil && st.Bare != nil && st.Bare.AckedPerSec > 0 {
			st.Ratio = st.Stack.AckedPerSec / st.Bare.AckedPerSec
		}
		if st.StackBatch != nil && st.Stack != nil && st.StackBatch.ServerCPUPerCmdUs > 0 {
			st.StackBatchCPURatio = st.Stack.ServerCPUPerCmdUs / st.StackBatch.ServerCPUPerCmdUs
		}
		if st.StackBatch != nil && st.Bare != nil && st.Bare.AckedPerSec > 0 {
			st.StackBatchRatio = st.StackBatch.AckedPerSec / st.Bare.AckedPerSec
		}
		if st.BareBatch != nil && st.Bare != nil && st.BareBatch.ServerCPUPerCmdUs > 0 {
			st.BatchCPURatio = st.Bare.ServerCPUPerCmdUs / st.BareBatch.ServerCPUPerCmdUs
		}
		rep.Steps = append(rep.Steps, st)
	}
	rep.Finished = time.Now().UTC()
	rep.print(stdout)
	if o.JSONPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.JSONPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.JSONPath, err)
		}
		fmt.Fprintf(stdout, "capacity: report written to %s\n", o.JSONPath)
	}
	return nil
}

// capacityReport is the JSON report.
type capacityReport struct {
	Command   string         `json:"command"`
	Machine   machine        `json:"machine"`
	MoveRate  float64        `json:"move_rate"`
	DurationS float64        `json:"duration_s"`
	WarmupS   float64        `json:"warmup_s"`
	Started   time.Time      `json:"started"`
	Finished  time.Time      `json:"finished"`
	Steps     []capacityStep `json:"steps"`
}

type capacityStep struct {
	Bots  int         `json:"bots"`
	Stack *stepResult `json:"stack,omitempty"`
	Bare  *stepResult `json:"bare,omitempty"`
	// Ratio is the stack's commands/s acked over the bare pipeline's.
	Ratio float64 `json:"ratio_to_bare,omitempty"`
	// BareBatch is the bare pipeline publishing command batches
	// (--bare-batch); BatchCPURatio the bare pipeline's server CPU per
	// command over the batched one's (above 1: batching saves CPU).
	BareBatch     *stepResult `json:"bare_batch,omitempty"`
	BatchCPURatio float64     `json:"bare_cpu_over_batched,omitempty"`
	// StackBatch is the stack with the gateway's --command-batch
	// (--stack-batch); StackBatchCPURatio the stack's server CPU per
	// command over the batching stack's, StackBatchRatio the batching
	// stack's commands/s over the bare pipeline's.
	StackBatch         *stepResult `json:"stack_batch,omitempty"`
	StackBatchCPURatio float64     `json:"stack_cpu_over_batched,omitempty"`
	StackBatchRatio    float64     `json:"stack_batch_ratio_to_bare,omitempty"`
}

// stepResult is one measured window. Latencies and counts are over the
// window; Lost is over the whole step (commands never answered).
type stepResult struct {
	Kind          string       `json:"kind"`
	Bots          int          `json:"bots"`
	Connected     int          `json:"connected"`
	WindowS       float64      `json:"window_s"`
	Acked         int64        `json:"acked"`
	AckedPerSec   float64      `json:"acked_per_s"`
	SentPerSec    float64      `json:"sent_per_s"`
	UpdatesPerSec float64      `json:"updates_per_s"`
	InputToUpdate bots.Latency `json:"input_to_update"`
	SendToAck     bots.Latency `json:"send_to_ack"`
	Busy          int64        `json:"busy"`
	Errors        int64        `json:"errors"`
	Rejected      int64        `json:"rejected"`
	TooFast       int64        `json:"too_fast"`
	Lost          int64        `json:"lost"` // sent, never answered (whole step)
	// CPU per acked command in µs, and in cores, of the server process
	// (stack or pipeline) and of this process (the bots).
	ServerCPUPerCmdUs float64 `json:"server_cpu_per_cmd_us"`
	ServerCores       float64 `json:"server_cores"`
	BotsCPUPerCmdUs   float64 `json:"bots_cpu_per_cmd_us"`
	BotsCores         float64 `json:"bots_cores"`
	// From the world's /metrics (stack only).
	ApplyPerCmdUs float64 `json:"world_apply_per_cmd_us,omitempty"`
	TickP99Ms     float64 `json:"tick_p99_ms,omitempty"`
	TicksPerSec   float64 `json:"ticks_per_s,omitempty"`
	MetricsError  string  `json:"metrics_error,omitempty"`
	LoadBefore    string  `json:"load_before"`
	// CalibrationMs is the time of a fixed CPU-bound job (calibrate) just
	// before the step: the machine's speed then. On a VM whose speed drifts,
	// compare steps and runs only at similar calibrations.
	CalibrationMs float64 `json:"calibration_ms"`
	LoadAfter     string  `json:"load_after"`
	// CommandsPerMessage: the batched bare pipeline's mean batch size
	// (whole step), or the batching stack's gateway's (the window).
	CommandsPerMessage float64          `json:"commands_per_message,omitempty"`
	ErrorCodes         map[string]int64 `json:"error_codes,omitempty"`
	RejectReasons      map[string]int64 `json:"reject_reasons,omitempty"`
}

func (r *stepResult) line() string {
	s := fmt.Sprintf("%.0f commands/s acked, input->update p50 %.1fms p99 %.1fms, send->ack p99 %.1fms, busy %d, errors %d, too fast %d, lost %d, server CPU %.1fµs/cmd (%.2f cores), bots CPU %.1fµs/cmd (%.2f cores)",
		r.AckedPerSec, r.InputToUpdate.P50, r.InputToUpdate.P99, r.SendToAck.P99, r.Busy, r.Errors, r.TooFast, r.Lost,
		r.ServerCPUPerCmdUs, r.ServerCores, r.BotsCPUPerCmdUs, r.BotsCores)
	if strings.HasPrefix(r.Kind, "stack") {
		if r.MetricsError != "" {
			s += "; world metrics: " + r.MetricsError
		} else {
			s += fmt.Sprintf(", world apply %.1fµs/cmd, tick p99 %.1fms (%.0f ticks/s)", r.ApplyPerCmdUs, r.TickP99Ms, r.TicksPerSec)
		}
	}
	return s + fmt.Sprintf("; load %s -> %s, calibration %.1fms", r.LoadBefore, r.LoadAfter, r.CalibrationMs)
}

func (rep *capacityReport) print(w io.Writer) {
	fmt.Fprintf(w, "\ncapacity at %g moves/s per bot, %.0fs measured per step; %s\n", rep.MoveRate, rep.DurationS, rep.Machine.String())
	if !slices.ContainsFunc(rep.Steps, func(s capacityStep) bool { return s.Stack != nil }) {
		rep.printBatches(w)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "bots\tcmds/s acked\tin->upd p50\tp99\tack p99\tbusy\terrors\ttoo fast\tlost\tstack µs/cmd\tbots µs/cmd\tapply µs/cmd\ttick p99\tbare cmds/s\tbare p99\tratio\tload\tcal ms\t")
	for _, s := range rep.Steps {
		r := s.Stack
		if r == nil {
			continue
		}
		bare, bareP99, ratio := "-", "-", "-"
		if s.Bare != nil {
			bare = fmt.Sprintf("%.0f", s.Bare.AckedPerSec)
			bareP99 = fmt.Sprintf("%.1fms", s.Bare.InputToUpdate.P99)
			ratio = fmt.Sprintf("%.2f", s.Ratio)
		}
		apply, tick := "-", "-"
		if r.MetricsError == "" {
			apply, tick = fmt.Sprintf("%.1f", r.ApplyPerCmdUs), fmt.Sprintf("%.1fms", r.TickP99Ms)
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%.1fms\t%.1fms\t%.1fms\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t\n",
			s.Bots, r.AckedPerSec, r.InputToUpdate.P50, r.InputToUpdate.P99, r.SendToAck.P99, r.Busy, r.Errors, r.TooFast, r.Lost,
			r.ServerCPUPerCmdUs, r.BotsCPUPerCmdUs, apply, tick, bare, bareP99, ratio, r.LoadAfter, r.CalibrationMs)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "stack/bots µs/cmd: process CPU time (user+system) per acked command; lost: commands never answered; ratio: stack cmds/s / bare pipeline cmds/s, same bots, same run; cal ms: a fixed CPU-bound job timed before the step (the machine's speed then: lower is faster)")
	rep.printStackBatches(w)
	rep.printBatches(w)
}

// printStackBatches prints, for the steps run with --stack-batch, the stack
// against the stack whose gateway publishes command batches.
func (rep *capacityReport) printStackBatches(w io.Writer) {
	header := false
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, s := range rep.Steps {
		a, b := s.Stack, s.StackBatch
		if a == nil || b == nil {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\nstack, one message per command vs the gateway's --command-batch, same bots, same run\n")
			fmt.Fprintln(tw, "bots\tcmds/s\tbatched cmds/s\tin->upd p99\tbatched p99\tbusy\tbatched busy\ttoo fast\tbatched too fast\tlost\tbatched lost\tcmds/msg\tstack µs/cmd\tbatched µs/cmd\tCPU ratio\tbots µs/cmd\tbatched bots µs/cmd\tratio to bare\tbatched ratio\tcal ms\tbatched cal ms\t")
			header = true
		}
		ratio, bratio := "-", "-"
		if s.Bare != nil {
			ratio, bratio = fmt.Sprintf("%.2f", s.Ratio), fmt.Sprintf("%.2f", s.StackBatchRatio)
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.1fms\t%.1fms\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.2f\t%.1f\t%.1f\t%s\t%s\t%.1f\t%.1f\t\n",
			s.Bots, a.AckedPerSec, b.AckedPerSec, a.InputToUpdate.P99, b.InputToUpdate.P99, a.Busy, b.Busy, a.TooFast, b.TooFast, a.Lost, b.Lost, b.CommandsPerMessage,
			a.ServerCPUPerCmdUs, b.ServerCPUPerCmdUs, s.StackBatchCPURatio, a.BotsCPUPerCmdUs, b.BotsCPUPerCmdUs, ratio, bratio, a.CalibrationMs, b.CalibrationMs)
	}
	if header {
		_ = tw.Flush()
		fmt.Fprintln(w, "CPU ratio: the stack's process CPU per acked command over the batching stack's (above 1: batching saves that much); cmds/msg: commands per message the batching gateway published in the window")
	}
}

// printBatches prints, for the steps run with --bare-batch, the bare
// pipeline against the same pipeline publishing command batches.
func (rep *capacityReport) printBatches(w io.Writer) {
	header := false
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, s := range rep.Steps {
		b, c := s.Bare, s.BareBatch
		if b == nil || c == nil {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\nbare pipeline, one message per command vs command batches (one message per zone's waiting commands), same bots, same run\n")
			fmt.Fprintln(tw, "bots\tcmds/s\tbatched cmds/s\tack p99\tbatched ack p99\tin->upd p99\tbatched in->upd p99\tcmds/msg\tbusy\tbatched busy\tlost\tbatched lost\tserver µs/cmd\tbatched µs/cmd\tCPU ratio\tbots µs/cmd\tbatched bots µs/cmd\tcal ms\tbatched cal ms\t")
			header = true
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.1fms\t%.1fms\t%.1fms\t%.1fms\t%.1f\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t\n",
			s.Bots, b.AckedPerSec, c.AckedPerSec, b.SendToAck.P99, c.SendToAck.P99, b.InputToUpdate.P99, c.InputToUpdate.P99, c.CommandsPerMessage, b.Busy, c.Busy, b.Lost, c.Lost,
			b.ServerCPUPerCmdUs, c.ServerCPUPerCmdUs, s.BatchCPURatio, b.BotsCPUPerCmdUs, c.BotsCPUPerCmdUs, b.CalibrationMs, c.CalibrationMs)
	}
	if header {
		_ = tw.Flush()
		fmt.Fprintln(w, "CPU ratio: the bare pipeline's process CPU per acked command over the batched pipeline's (above 1: batching saves that much); the pipelines' event side (one event per command) is the same in both")
	}
}

// step starts a stack or a bare pipeline (or uses --tcp), runs n bots,
// measures one window and stops everything.
func (o *benchOptions) step(ctx context.Context, kind string, n int, dir string, stdout io.Writer) (*stepResult, error) {
	addr := o.TCP
	pid := o.StackPID
	metricsURL := ""
	var childLog func() string // stops the child and returns its log
	if o.TCP != "" {
		metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", o.HTTPBase+1)
	}
	isStack := kind == "stack" || kind == "stack-batch"
	gatewayURL := ""
	if o.TCP == "" || !isStack {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		ports, err := freePortRun(2, 1)
		if err != nil {
			return nil, err
		}
		addr = fmt.Sprintf("127.0.0.1:%d", ports[0])
		var args []string
		if isStack {
			base, err := freePortRun(1, 5)
			if err != nil {
				return nil, err
			}
			args = append([]string{"run", "--data-dir", dir, "--nats-port", "-1", "--tcp-addr", addr,
				"--ws-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--http-base", strconv.Itoa(base[0]), "--log-level", "warn"},
				strings.Fields(o.StackArgs)...)
			if kind == "stack-batch" {
				args = append(args, "--command-batch", "--command-linger", o.StackLinger.String())
			}
			metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", base[0]+1)
			gatewayURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", base[0])
		} else {
			args = []string{"bench", "pipeline-server", "--tcp-addr", addr, "--data-dir", dir}
			if kind == "bare-batch" {
				args = append(args, "--batch", "--batch-linger", o.Linger.String())
			}
		}
		ch, err := startChild(o.Exe, args, filepath.Join(dir, kind+".log"))
		if err != nil {
			return nil, err
		}
		defer ch.stop(30 * time.Second)
		childLog = func() string {
			ch.stop(30 * time.Second)
			b, _ := os.ReadFile(ch.logPath)
			return string(b)
		}
		if err := ch.waitTCP(ctx, addr, 120*time.Second); err != nil {
			return nil, err
		}
		if isStack {
			if err := waitHTTP(ctx, strings.TrimSuffix(metricsURL, "/metrics")+"/readyz", 60*time.Second); err != nil {
				return nil, fmt.Errorf("%w (log %s:\n%s)", err, ch.logPath, ch.tail())
			}
		}
		pid = ch.cmd.Process.Pid
	}
	cfg := bots.Config{Gateways: []bots.Gateway{{TCP: addr}}, Bots: n, MoveRate: o.MoveRate,
		NamePrefix: fmt.Sprintf("cap%d-%s-%x", n, kind, time.Now().UnixNano()&0xfffff), ProgressEvery: 5 * time.Second}
	if !o.Quiet {
		cfg.Progress = func(p bots.Progress) { fmt.Fprintf(stdout, "  %s %d: %s\n", kind, n, p) }
	}
	sw, err := bots.New(cfg)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan *bots.Report, 1)
	go func() { done <- sw.Run(runCtx) }()
	ramp := max(time.Second, time.Duration(n)*time.Second/200)
	if !sleepCtx(ctx, ramp+o.Warmup) {
		cancel()
		<-done
		return nil, ctx.Err()
	}
	res := &stepResult{Kind: kind, Bots: n, LoadBefore: loadAvg(), CalibrationMs: float64(calibrate()) / 1e6}
	if c := sw.Connected(); c < n {
		fmt.Fprintf(stdout, "  %s %d: only %d of %d bots connected after the ramp-up; measuring anyway\n", kind, n, c, n)
	}
	r0, lat0, ack0 := sw.Report(), sw.Lat.Snapshot(), sw.Ack.Snapshot()
	bcpu0 := processCPU()
	scpu0, scpuErr := time.Duration(0), errors.New("no stack process id (--stack-pid)")
	if pid > 0 {
		scpu0, scpuErr = pidCPU(pid)
	}
	var m0 worldMetrics
	var mErr error
	var g0 [2]float64
	if isStack {
		m0, mErr = scrapeWorld(metricsURL)
	}
	if gatewayURL != "" {
		g0 = scrapeBatchSize(gatewayURL)
	}
	t0 := time.Now()
	sleepCtx(ctx, o.Duration)
	win := time.Since(t0)
	r1 := sw.Report()
	lat, ack := sw.Lat.Sub(lat0), sw.Ack.Sub(ack0)
	bcpu := processCPU() - bcpu0
	var scpu time.Duration
	if scpuErr == nil {
		var c1 time.Duration
		if c1, scpuErr = pidCPU(pid); scpuErr == nil {
			scpu = c1 - scpu0
		}
	}
	if gatewayURL != "" {
		if g1 := scrapeBatchSize(gatewayURL); g1[1] > g0[1] {
			res.CommandsPerMessage = (g1[0] - g0[0]) / (g1[1] - g0[1])
		}
	}
	if isStack && mErr == nil {
		var m1 worldMetrics
		if m1, mErr = scrapeWorld(metricsURL); mErr == nil {
			d := m1.sub(m0)
			if d.applyCount > 0 {
				res.ApplyPerCmdUs = d.applySum / d.applyCount * 1e6
			}
			res.TickP99Ms = d.tickQuantile(0.99) * 1e3
			res.TicksPerSec = d.tickCount / win.Seconds()
		}
	}
	if mErr != nil {
		res.MetricsError = mErr.Error()
	}
	res.LoadAfter = loadAvg()
	cancel()
	final := <-done
	w := win.Seconds()
	res.Connected = final.Connected
	res.WindowS = w
	res.Acked = r1.Acked - r0.Acked
	res.AckedPerSec = float64(res.Acked) / w
	res.SentPerSec = float64(r1.Sent-r0.Sent) / w
	res.UpdatesPerSec = float64(r1.Updates-r0.Updates) / w
	res.InputToUpdate, res.SendToAck = lat.Summary(), ack.Summary()
	res.Busy, res.Errors = r1.Busy-r0.Busy, r1.Errors-r0.Errors
	res.Rejected, res.TooFast = r1.Rejected-r0.Rejected, r1.TooFast-r0.TooFast
	res.Lost = final.Unanswered
	res.ErrorCodes, res.RejectReasons = final.ErrorCodes, final.RejectReasons
	if res.Acked > 0 {
		res.BotsCPUPerCmdUs = float64(bcpu.Microseconds()) / float64(res.Acked)
		if scpuErr == nil {
			res.ServerCPUPerCmdUs = float64(scpu.Microseconds()) / float64(res.Acked)
		}
	}
	res.BotsCores = bcpu.Seconds() / w
	res.ServerCores = scpu.Seconds() / w
	if kind == "bare-batch" && childLog != nil {
		// The pipeline prints, as it stops, how many commands went out in
		// how many messages (the whole step, ramp-up included).
		if m := batchSummary.FindStringSubmatch(childLog()); m != nil {
			res.CommandsPerMessage, _ = strconv.ParseFloat(m[1], 64)
		}
	}
	if final.Sent == 0 {
		return nil, fmt.Errorf("no command was sent (connect failures %d; errors %v)", final.ConnFail, final.ErrorExamples)
	}
	return res, nil
}

var batchSummary = regexp.MustCompile(`batch messages \(([0-9.]+) per message\)`)

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// child is a started realmstream process (stack or pipeline).
type child struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

func startChild(exe string, args []string, logPath string) (*child, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s %s: %w", exe, strings.Join(args, " "), err)
	}
	c := &child{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		lf.Close()
		close(c.done)
	}()
	return c, nil
}

// waitTCP waits until addr accepts connections (or the child exits).
func (c *child) waitTCP(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-c.done:
			return fmt.Errorf("%s exited before listening (%v); log %s:\n%s", filepath.Base(c.cmd.Path), c.err, c.logPath, c.tail())
		default:
		}
		if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			nc.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v; log %s:\n%s", addr, limit, c.logPath, c.tail())
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// stop asks the child to drain (SIGTERM) and kills it after timeout.
func (c *child) stop(timeout time.Duration) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *child) tail() string {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

func waitHTTP(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	cl := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := cl.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %v", url, limit, err)
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// freePortRun finds count groups of width consecutive free ports below the
// ephemeral range (libs/freeport: a ":0" port can be taken by any outgoing
// connection before the child binds it). The ports are free when returned;
// another process could still take one before the child starts, which the
// child's start then reports.
func freePortRun(count, width int) ([]int, error) {
	out := make([]int, count)
	for i := range out {
		base, err := freeport.Run(width)
		if err != nil {
			return nil, err
		}
		out[i] = base
	}
	return out, nil
}

// worldMetrics are the world's counters the table needs.
type worldMetrics struct {
	applySum, applyCount float64
	tickCount            float64
	tickBuckets          map[float64]float64 // le -> cumulative count
}

func (m worldMetrics) sub(o worldMetrics) worldMetrics {
	d := worldMetrics{applySum: m.applySum - o.applySum, applyCount: m.applyCount - o.applyCount,
		tickCount: m.tickCount - o.tickCount, tickBuckets: map[float64]float64{}}
	for le, v := range m.tickBuckets {
		d.tickBuckets[le] = v - o.tickBuckets[le]
	}
	return d
}

// tickQuantile interpolates within the histogram buckets (as Prometheus'
// histogram_quantile does); seconds.
func (m worldMetrics) tickQuantile(q float64) float64 {
	les := make([]float64, 0, len(m.tickBuckets))
	for le := range m.tickBuckets {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 || m.tickCount <= 0 {
		return 0
	}
	rank := q * m.tickCount
	prevLe, prevN := 0.0, 0.0
	for _, le := range les {
		n := m.tickBuckets[le]
		if n >= rank {
			if math.IsInf(le, 1) {
				return prevLe
			}
			if n == prevN {
				return le
			}
			return prevLe + (le-prevLe)*(rank-prevN)/(n-prevN)
		}
		prevLe, prevN = le, n
	}
	return prevLe
}

func scrapeWorld(url string) (worldMetrics, error) {
	var m worldMetrics
	err := fetchMetrics(url, func(r io.Reader) error {
		var err error
		m, err = parseWorldMetrics(r)
		return err
	})
	return m, err
}

// parseWorldMetrics reads the Prometheus text format: the sums over every
// label set of realm_world_apply_seconds and realm_world_tick_seconds.
func parseWorldMetrics(r io.Reader) (worldMetrics, error) {
	m := worldMetrics{tickBuckets: map[float64]float64{}}
	seen := false
	err := scanMetrics(r, func(name, labels string, v float64) {
		switch name {
		case "realm_world_apply_seconds_sum":
			m.applySum += v
			seen = true
		case "realm_world_apply_seconds_count":
			m.applyCount += v
		case "realm_world_tick_seconds_count":
			m.tickCount += v
		case "realm_world_tick_seconds_bucket":
			i := strings.Index(labels, `le="`)
			if i < 0 {
				return
			}
			rest := labels[i+4:]
			le, err := strconv.ParseFloat(rest[:strings.IndexByte(rest, '"')], 64)
			if err != nil {
				return
			}
			m.tickBuckets[le] += v
		}
	})
	if err != nil {
		return m, err
	}
	if !seen {
		return m, errors.New("no realm_world_apply_seconds in the world's metrics")
	}
	return m, nil
}

// scrapeBatchSize reads the gateway's realm_gateway_command_batch_size sum
// and count (zeros when it cannot).
func scrapeBatchSize(url string) (sc [2]float64) {
	_ = fetchMetrics(url, func(r io.Reader) error {
		return scanMetrics(r, func(name, _ string, v float64) {
			switch name {
			case "realm_gateway_command_batch_size_sum":
				sc[0] += v
			case "realm_gateway_command_batch_size_count":
				sc[1] += v
			}
		})
	})
	return sc
}

// fetchMetrics GETs a /metrics URL (5 s timeout) and hands its body to read.
func fetchMetrics(url string, read func(io.Reader) error) error {
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return read(resp.Body)
}

// scanMetrics calls fn with the name, the label set ("{...}" or "") and the
// value of each sample line of the Prometheus text format; comments and
// unreadable lines are skipped.
func scanMetrics(r io.Reader, fn func(name, labels string, v float64)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, labels := line[:sp], ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name, labels = name[:i], name[i:]
		}
		fn(name, labels, v)
	}
	return sc.Err()
}

type machine struct {
	CPUs    int    `json:"cpus"`
	Model   string `json:"cpu_model,omitempty"`
	Kernel  string `json:"kernel,omitempty"`
	Go      string `json:"go"`
	Version string `json:"realmstream_version"`
}

func (m machine) String() string {
	s := fmt.Sprintf("%d CPUs", m.CPUs)
	if m.Model != "" {
		s += " (" + m.Model + ")"
	}
	if m.Kernel != "" {
		s += ", Linux " + m.Kernel
	}
	return s + ", " + m.Go
}

func machineInfo() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Version: version}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if i := strings.IndexByte(l, ':'); i >= 0 {
					m.Model = strings.TrimSpace(l[i+1:])
				}
				break
			}
		}
	}
	return m
}

// loadAvg is the 1-minute load average ("?" where /proc is missing).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// calibrate times a fixed CPU-bound job on one core: SHA-256 over 16 MiB,
// the mean of 5 (about 50 ms on the 2-core machine of docs/benchmarks.md).
// The same binary on the same machine gives the same time unless the
// machine's speed changed (a VM's neighbours, frequency scaling).
func calibrate() time.Duration {
	buf := make([]byte, 16<<20)
	start := time.Now()
	for i := range 5 {
		buf[0] = byte(i)
		_ = sha256.Sum256(buf)
	}
	return time.Since(start) / 5
}

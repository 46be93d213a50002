package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/bots"
)

// TestMain lets the bench start this test binary as its child processes
// (the stack's "run", the bare pipeline): with REALMSTREAM_TEST_AS_MAIN=1 it
// is the realmstream command.
func TestMain(m *testing.M) {
	if os.Getenv("REALMSTREAM_TEST_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestBenchCapacitySmoke runs `bench capacity` at a tiny size so that the
// command does not rot: a real one-process stack and a real bare pipeline
// (child processes), bots against both, the table and the JSON report.
// runCapacityReport runs `bench capacity args... --quiet --json F` (its
// children are this test binary, TestMain) and returns what it printed and
// its JSON report.
func runCapacityReport(t *testing.T, args ...string) (string, capacityReport) {
	t.Helper()
	t.Setenv("REALMSTREAM_TEST_AS_MAIN", "1")
	report := filepath.Join(t.TempDir(), "capacity.json")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := runBench(ctx, append(append([]string{"capacity"}, args...), "--quiet", "--json", report), &out, &out); err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep capacityReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return out.String(), rep
}

func TestBenchCapacitySmoke(t *testing.T) {
	out, rep := runCapacityReport(t, "--bots", "10", "--duration", "3s", "--warmup", "1s")
	if !strings.Contains(out, "cmds/s acked") || !strings.Contains(out, "ratio") {
		t.Fatalf("no table:\n%s", out)
	}
	if len(rep.Steps) != 1 || rep.Steps[0].Stack == nil || rep.Steps[0].Bare == nil {
		t.Fatalf("report steps: %+v", rep.Steps)
	}
	st, bare := rep.Steps[0].Stack, rep.Steps[0].Bare
	if st.AckedPerSec <= 0 || bare.AckedPerSec <= 0 || rep.Steps[0].Ratio <= 0 {
		t.Fatalf("no throughput: stack %+v bare %+v", st, bare)
	}
	if st.InputToUpdate.Samples == 0 || bare.InputToUpdate.Samples == 0 {
		t.Fatalf("no input->update samples: stack %+v bare %+v", st.InputToUpdate, bare.InputToUpdate)
	}
	if st.MetricsError != "" || st.ApplyPerCmdUs <= 0 || st.TicksPerSec <= 0 {
		t.Fatalf("world metrics: %q apply %v ticks/s %v", st.MetricsError, st.ApplyPerCmdUs, st.TicksPerSec)
	}
	if st.ServerCPUPerCmdUs <= 0 || st.BotsCPUPerCmdUs <= 0 {
		t.Fatalf("CPU per command: stack %v bots %v", st.ServerCPUPerCmdUs, st.BotsCPUPerCmdUs)
	}
	if st.CalibrationMs <= 0 || bare.CalibrationMs <= 0 || !strings.Contains(out, "cal ms") {
		t.Fatalf("no calibration: stack %v bare %v", st.CalibrationMs, bare.CalibrationMs)
	}
}

func TestBenchBadFlags(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"capacity", "--bots", "0"}, {"capacity", "--bots", "a,b"},
		{"capacity", "--move-rate", "0"}, {"capacity", "--duration", "10ms"}, {"capacity", "extra"}, {"capacity", "--no-stack", "--no-bare"},
		{"capacity", "--stack-batch-linger", "x"}} {
		if err := runBench(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("bench %v: want an error", args)
		}
	}
}

func TestParseWorldMetrics(t *testing.T) {
	text := `# HELP realm_world_apply_seconds x
# TYPE realm_world_apply_seconds histogram
realm_world_apply_seconds_bucket{le="0.001"} 5
realm_world_apply_seconds_bucket{le="+Inf"} 10
realm_world_apply_seconds_sum 0.02
realm_world_apply_seconds_count 10
realm_world_tick_seconds_bucket{le="0.01"} 90
realm_world_tick_seconds_bucket{le="0.02"} 99
realm_world_tick_seconds_bucket{le="0.04"} 100
realm_world_tick_seconds_bucket{le="+Inf"} 100
realm_world_tick_seconds_sum 1
realm_world_tick_seconds_count 100
`
	m, err := parseWorldMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if m.applySum != 0.02 || m.applyCount != 10 || m.tickCount != 100 {
		t.Fatalf("%+v", m)
	}
	if q := m.tickQuantile(0.99); math.Abs(q-0.02) > 1e-9 {
		t.Fatalf("p99 %v, want 0.02", q)
	}
	if q := m.tickQuantile(0.5); math.Abs(q-0.01*50/90) > 1e-9 {
		t.Fatalf("p50 %v", q)
	}
	d := m.sub(worldMetrics{applySum: 0.01, applyCount: 5, tickCount: 50, tickBuckets: map[float64]float64{0.01: 50, 0.02: 50, 0.04: 50, math.Inf(1): 50}})
	if d.applySum/d.applyCount != 0.002 || d.tickQuantile(0.99) <= 0.01 {
		t.Fatalf("delta %+v", d)
	}
	if _, err := parseWorldMetrics(strings.NewReader("go_goroutines 3\n")); err == nil {
		t.Fatal("metrics without the world's histograms accepted")
	}
}

// TestBarePipelineBatches runs the bare pipeline with --batch (each zone's
// waiting commands published as one message) against bots: every command is
// acked and echoed, nothing is lost, and the pipeline reports that its
// commands went out in batch messages.
func TestBarePipelineBatches(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runPipelineServer(ctx, []string{"--tcp-addr", addr, "--data-dir", t.TempDir(), "--batch"}, out, out)
	}()
	waitStack(t, 60*time.Second, done, out, func() error {
		if !strings.Contains(out.String(), "bare pipeline listening") {
			return fmt.Errorf("not listening yet")
		}
		return nil
	})
	sw, err := bots.New(bots.Config{Gateways: []bots.Gateway{{TCP: addr}}, Bots: 40, MoveRate: 20, Duration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rep := sw.Run(ctx)
	if rep.Connected != 40 || rep.Sent == 0 || rep.Acked != rep.Sent || rep.Errors != 0 || rep.Busy != 0 || rep.Unanswered != 0 || sw.Lost() != 0 {
		t.Fatalf("bots against the batched pipeline: %+v (lost %d)", rep, sw.Lost())
	}
	if rep.Updates == 0 {
		t.Fatalf("no update echoed: %+v", rep)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(\d+) commands in (\d+) batch messages`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no batch summary:\n%s", out.String())
	}
	if cmds, _ := strconv.Atoi(m[1]); int64(cmds) != rep.Acked {
		t.Fatalf("%d commands went through the batchers, the bots had %d acked", cmds, rep.Acked)
	}
}

// TestBenchStackBatch: --stack-batch runs, at each step, the stack with the
// gateway's --command-batch beside the stack as configured, and reports both,
// the CPU ratio and the commands per message scraped from the gateway.
func TestBenchStackBatch(t *testing.T) {
	out, rep := runCapacityReport(t, "--bots", "30", "--duration", "3s", "--warmup", "1s", "--no-bare", "--stack-batch", "--stack-batch-linger", "30ms")
	if !strings.Contains(out, "gateway's --command-batch, same bots, same run") {
		t.Fatalf("no batch table:\n%s", out)
	}
	if len(rep.Steps) != 1 || rep.Steps[0].Stack == nil || rep.Steps[0].StackBatch == nil {
		t.Fatalf("report steps: %+v", rep.Steps)
	}
	s := rep.Steps[0]
	if s.StackBatch.AckedPerSec <= 0 || s.StackBatch.Lost != 0 || s.StackBatchCPURatio <= 0 {
		t.Fatalf("batched stack: %+v, CPU ratio %v", s.StackBatch, s.StackBatchCPURatio)
	}
	if s.StackBatch.CommandsPerMessage < 1 || s.Stack.CommandsPerMessage != 0 {
		t.Fatalf("commands per message: batched %v (want >= 1, scraped from the gateway), unbatched %v (want none)",
			s.StackBatch.CommandsPerMessage, s.Stack.CommandsPerMessage)
	}
}

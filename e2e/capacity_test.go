package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkStackCapacity is the long run (not in CI; see docs/bench/e2e.md):
// for each bot count in E2E_BOTS (default 25,50,100,200) a fresh
// stack plays E2E_STEP (default 60s) without faults and is audited; the
// largest count whose input->update p99 stays under 50 ms (with nothing lost)
// is the capacity. Then one run at that count with every fault measures the
// recovery figures. JSON reports go to E2E_OUT (default a temp dir).
//
//	E2E_WORLD_ARGS="--tick 20ms" go test ./e2e -run '^$' -bench StackCapacity -benchtime 1x -timeout 30m -v
func BenchmarkStackCapacity(b *testing.B) {
	counts := []int{25, 50, 100, 200}
	if v := os.Getenv("E2E_BOTS"); v != "" {
		counts = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("E2E_BOTS: %v", err)
			}
			counts = append(counts, n)
		}
	}
	step := 60 * time.Second
	if v := os.Getenv("E2E_STEP"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("E2E_STEP: %v", err)
		}
		step = d
	}
	out := os.Getenv("E2E_OUT")
	if out == "" {
		out = b.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		best := 0
		var bestRes, lastRes *runResult
		for _, n := range counts {
			var res *runResult
			ok := b.Run(fmt.Sprintf("bots=%d", n), func(b *testing.B) {
				res = runStack(b, runOptions{Bots: n, Duration: step, WSFraction: 0.3, Progress: os.Stderr,
					Report: filepath.Join(out, fmt.Sprintf("capacity-%d.json", n))})
				for _, v := range res.Violations {
					b.Errorf("audit: %v", v)
				}
				b.ReportMetric(res.Swarm.InputToUpdate.P99, "p99-ms")
				b.ReportMetric(res.Swarm.InputToUpdate.P50, "p50-ms")
				b.ReportMetric(res.EventsPerSec, "events/s")
				b.ReportMetric(res.Swarm.AckedPerSec, "cmds/s")
			})
			if !ok || res == nil {
				b.Fatalf("bots=%d: the audit failed; stopping", n)
			}
			lastRes = res
			fmt.Fprintf(os.Stderr, "CAPACITY bots=%d p50=%.1fms p99=%.1fms p999=%.1fms events/s=%.0f acked/s=%.0f busy=%d errors=%d rejected=%d load=%s\n",
				n, res.Swarm.InputToUpdate.P50, res.Swarm.InputToUpdate.P99, res.Swarm.InputToUpdate.P999,
				res.EventsPerSec, res.Swarm.AckedPerSec, res.Swarm.Busy, res.Swarm.Errors, res.Swarm.Rejected, loadAvg())
			if res.Swarm.InputToUpdate.P99 < 50 {
				best, bestRes = n, res
			}
			if res.Swarm.InputToUpdate.P99 > 5000 {
				break // saturated: more bots only measure the backlog
			}
		}
		b.ReportMetric(float64(best), "max-bots-p99<50ms")
		faultBots := best
		if bestRes == nil {
			bestRes = lastRes
			faultBots = counts[0]
		}
		b.ReportMetric(bestRes.EventsPerSec, "events/s")
		if v := os.Getenv("E2E_FAULT_BOTS"); v != "" {
			faultBots, _ = strconv.Atoi(v)
		}
		if os.Getenv("E2E_SKIP_FAULTS") == "" {
			b.Run(fmt.Sprintf("faults-bots=%d", faultBots), func(b *testing.B) {
				res := runStack(b, runOptions{Bots: faultBots, Duration: 110 * time.Second, Faults: true, ResumeEvery: 30 * time.Second,
					WSFraction: 0.3, Progress: os.Stderr, Report: filepath.Join(out, fmt.Sprintf("faults-%d.json", faultBots))})
				for _, v := range res.Violations {
					b.Errorf("audit: %v", v)
				}
				for _, f := range res.Faults {
					fmt.Fprintf(os.Stderr, "RECOVERY %-24s %-40s %8.2fs  %s\n", f.Fault, f.Target, f.RecoveredIn.Seconds(), f.Measure)
				}
				b.ReportMetric(res.Swarm.InputToUpdate.P99, "p99-ms")
			})
		}
		summary, _ := json.MarshalIndent(map[string]any{"max_bots_p99_under_50ms": best, "events_per_s": bestRes.EventsPerSec}, "", "  ")
		_ = os.WriteFile(filepath.Join(out, "capacity-summary.json"), summary, 0o644)
	}
}

// loadAvg is the 1-minute load average (the machine is shared: say so beside every figure).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

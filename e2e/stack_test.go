package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStackUnderFaults is the CI-sized end-to-end run: the whole stack as
// separate processes (2 gateways, 3 worlds, 2 persist replicas, monitor) on
// embedded NATS, a private Redis and two private Postgres clusters; 200 bots
// over TCP and WebSocket for 100s while every service is killed (-9) and
// restarted once, Redis, NATS and one Postgres shard are restarted, and
// links get latency, resets and a cut. Then the audit: no acknowledged
// command missing, every zone log linear and fenced, no command applied
// twice, every stored command applied, Postgres equal to the log, read
// models equal to a re-fold of the events.
func TestStackUnderFaults(t *testing.T) {
	report := os.Getenv("E2E_REPORT")
	if report == "" {
		report = filepath.Join(t.TempDir(), "e2e-report.json")
	}
	var progress *os.File
	if testing.Verbose() {
		progress = os.Stderr
	}
	opts := runOptions{Bots: 200, Duration: 100 * time.Second, Faults: true, ResumeEvery: 20 * time.Second,
		WSFraction: 0.3, Report: report}
	if progress != nil {
		opts.Progress = progress
	}
	res := runStack(t, opts)
	for _, v := range res.Violations {
		t.Errorf("audit: %v", v)
	}
	if res.Swarm.Acked == 0 || res.Commands.Acked == 0 {
		t.Fatal("no command was acknowledged")
	}
	if res.Swarm.InputToUpdate.Samples == 0 {
		t.Error("no input->update latency sample: bots never saw their own moves applied")
	}
	if len(res.Faults) < 9 {
		t.Errorf("only %d faults injected", len(res.Faults))
	}
}

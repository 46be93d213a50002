package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/realmstream/realmstream/e2e/harness"
	"github.com/realmstream/realmstream/libs/bots"
)

// TestLoadtestAgainstGateway runs the command against a real gateway process
// (on embedded NATS) and checks its exit code and JSON report.
func TestLoadtestAgainstGateway(t *testing.T) {
	st := harness.StartStack(t, harness.StackConfig{Gateways: 1, NoWorld: true, NoPersist: true})
	addr := st.GatewayAddrs()[0]
	report := filepath.Join(t.TempDir(), "report.json")
	record := filepath.Join(t.TempDir(), "record.jsonl")
	code := run([]string{"--tcp", addr[0], "--ws", addr[1], "--bots", "12", "--duration", "3s", "--ramp-up", "500ms",
		"--resume-every", "2s", "--json", report, "--record", record, "--quiet"})
	if code != 0 {
		t.Fatalf("loadtest exited %d", code)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r bots.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Bots != 12 || r.Acked == 0 || r.Sent < r.Acked || r.WSBots == 0 {
		t.Fatalf("report: %+v", r)
	}
	if fi, err := os.Stat(record); err != nil || fi.Size() == 0 {
		t.Fatalf("record file: %v", err)
	}
	if code := run([]string{"--tcp", "", "--ws", ""}); code != 2 {
		t.Fatalf("no gateway: exit %d, want 2", code)
	}
}

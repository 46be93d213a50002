package mpsc

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var spinFlag = flag.Bool("spin", false, "also run the SPIN model check of testdata/ring.pml (needs spin and gcc; ~1 min, ~1 GB)")

// TestSpinModel exhaustively checks the Promela model of the ring
// (testdata/ring.pml, QUEUE-T7) with SPIN: every interleaving of 2
// producers x 2 items, a capacity-2 ring, a batch consumer that parks, and a
// concurrent Close. It proves per-producer FIFO, no duplicate, no loss of an
// accepted item, and no lost wake-up (a parked consumer or producer left
// blocked is an "invalid end state"). The model was checked to catch a
// consumer without the re-check after arming, a producer without the
// re-check after registering, and an off-by-one full test.
//
// It is opt-in because it needs the spin and gcc packages and about a
// minute and a gigabyte: go test -run TestSpinModel ./libs/mpsc/ -args -spin
func TestSpinModel(t *testing.T) {
	if !*spinFlag {
		t.Skip("opt-in: go test -run TestSpinModel ./libs/mpsc/ -args -spin (apt-get install spin gcc)")
	}
	for _, tool := range []string{"spin", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("-spin needs %s on PATH: apt-get install -y spin gcc", tool)
		}
	}
	model, err := os.ReadFile(filepath.Join("testdata", "ring.pml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ring.pml"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	run("spin", "-a", "ring.pml")
	run("gcc", "-O2", "-DSAFETY", "-o", "pan", "pan.c")
	out := run("./pan", "-m2000000")
	if !strings.Contains(out, "errors: 0") || strings.Contains(out, "pan:1") {
		t.Fatalf("SPIN found a counterexample:\n%s", out)
	}
	if strings.Contains(out, "depth too small") || strings.Contains(out, "max search depth too small") {
		t.Fatalf("search was truncated:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "states, stored") || strings.Contains(line, "errors:") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

package mpsc

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var spinFlag = flag.Bool("spin", false, "also run the SPIN model checks of testdata/*.pml (needs spin and gcc; ~2 min, ~1 GB)")

// TestSpinModel exhaustively checks the Promela models of the ring with SPIN
// (QUEUE-T7).
//
// testdata/ring.pml is the shared lane: every interleaving of 2 producers x
// 2 items, a capacity-2 ring, a batch consumer that parks, producers that
// park, and a concurrent Close. It was checked to catch a consumer without
// the re-check after arming, a producer without the re-check after
// registering, and an off-by-one full test.
//
// testdata/lanes.pml is the producer lanes, in two sizes: 2 producers each
// owning a capacity-2 lane with 2 items each (the round-robin batch consumer
// that parks, and a Close that closes the lanes one after the other: 3.7M
// states), and 1 producer with a capacity-1 lane and 3 items (so the lane
// fills and its owner parks: 0.16M states). It was checked to catch a
// consumer without the re-check after arming, a lane owner without the
// re-check after arming, an off-by-one full test, and a publish by plain
// store instead of CAS (an item accepted after Close is lost). A drain that
// does not wake the lane's owner is not caught here (the final Close wakes
// every owner); TestLaneParkAndWake catches it.
//
// Both prove per-producer FIFO, no duplicate, no loss of an accepted item,
// and no lost wake-up (a parked goroutine left blocked is an "invalid end
// state"). Opt-in because they need the spin and gcc packages, about two
// minutes and a gigabyte: go test -run TestSpinModel ./libs/mpsc/ -args -spin
func TestSpinModel(t *testing.T) {
	if !*spinFlag {
		t.Skip("opt-in: go test -run TestSpinModel ./libs/mpsc/ -args -spin (apt-get install spin gcc)")
	}
	for _, tool := range []string{"spin", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("-spin needs %s on PATH: apt-get install -y spin gcc", tool)
		}
	}
	for _, tc := range []struct {
		model string
		defs  []string // spin -D options
	}{
		{"ring.pml", nil},
		{"lanes.pml", nil},
		{"lanes.pml", []string{"-DP=1", "-DC=1", "-DK=3"}},
	} {
		t.Run(strings.Join(append([]string{tc.model}, tc.defs...), " "), func(t *testing.T) { spinCheck(t, tc.model, tc.defs) })
	}
}

// spinCheck runs spin, gcc and pan on testdata/<model> and fails on any
// counterexample or a truncated search.
func spinCheck(t *testing.T, model string, defs []string) {
	src, err := os.ReadFile(filepath.Join("testdata", model))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, model), src, 0o644); err != nil {
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
	run("spin", append(append([]string{}, defs...), "-a", model)...)
	run("gcc", "-O2", "-DSAFETY", "-o", "pan", "pan.c")
	out := run("./pan", "-m4000000")
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

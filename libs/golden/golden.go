// Package golden runs data-driven script tests: each script matching a
// pattern goes through a function of the test, whose output is compared with
// the .golden file beside the script; with update the golden files are
// rewritten instead (a test's -update flag). Only tests import it.
package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Scripts runs run on every file matching pattern (e.g. "testdata/*.txt"),
// one subtest each, and compares its output with <script>.golden.
func Scripts(t *testing.T, pattern string, update bool, run func(t *testing.T, path string) string) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts match %s (%v)", pattern, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			got := run(t, f)
			golden := strings.TrimSuffix(f, filepath.Ext(f)) + ".golden"
			if update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test -update to accept):\n--- got\n%s", golden, got)
			}
		})
	}
}

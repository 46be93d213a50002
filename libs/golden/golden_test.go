package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScripts(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(script, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	upper := func(t *testing.T, path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.ToUpper(string(b))
	}
	Scripts(t, filepath.Join(dir, "*.txt"), true, upper)
	if b, _ := os.ReadFile(filepath.Join(dir, "a.golden")); string(b) != "HELLO\n" {
		t.Fatalf("golden %q", b)
	}
	Scripts(t, filepath.Join(dir, "*.txt"), false, upper) // equal: passes
}

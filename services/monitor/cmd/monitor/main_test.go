package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHelp(t *testing.T) {
	if code := run([]string{"--help"}); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
}

// TestBadRulesExit: with a bad rules file the binary exits 2 before
// connecting or listening (the NATS URL points nowhere).
func TestBadRulesExit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(p, []byte("rules:\n  - name: x\n    expr: nope > 1\n    severity: warning\n    message: m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"--rules", p, "--nats-url", "nats://127.0.0.1:1", "--http-addr", "127.0.0.1:0"}); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	t.Setenv("REALM_EVAL_INTERVAL", "soon")
	if code := run(nil); code != 2 {
		t.Fatalf("bad env: exit %d, want 2", code)
	}
}

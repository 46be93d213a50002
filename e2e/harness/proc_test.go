package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProcStartKillRestartStop(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder(root, t.TempDir())
	bin, err := b.Build("testsvc", "./e2e/harness/internal/testsvc")
	if err != nil {
		t.Fatal(err)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := &Proc{Name: "svc-1", Path: bin, Args: []string{"--http-addr", addr},
		ReadyURL: "http://" + addr + "/readyz", LogPath: filepath.Join(t.TempDir(), "svc-1.log")}
	t.Cleanup(p.Close)
	ctx := context.Background()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Running() || p.Ready() {
		t.Fatal("still running after kill -9")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Pid() == pid || p.Starts() != 2 {
		t.Fatalf("restart: pid %d -> %d, starts %d", pid, p.Pid(), p.Starts())
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if !strings.Contains(p.Tail(1000), "stopped cleanly") {
		t.Fatalf("log tail: %q", p.Tail(1000))
	}
	if c := p.Crashes(); len(c) != 0 {
		t.Fatalf("crashes recorded for intended kills: %v", c)
	}
}

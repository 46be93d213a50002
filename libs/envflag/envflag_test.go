package envflag

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestEnvDefaultsAndFlagsWin(t *testing.T) {
	t.Setenv("REALM_NATS_URL", "nats://env:4222")
	t.Setenv("REALM_WORKERS", "7")
	t.Setenv("REALM_TICK", "50ms")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	s := New(fs)
	var url string
	var workers int
	var tick time.Duration
	s.String(&url, "nats-url", "nats://127.0.0.1:4222", "NATS URL")
	s.Int(&workers, "workers", 1, "workers")
	s.Duration(&tick, "tick", time.Second, "tick")
	if err := s.Parse([]string{"--workers", "9"}); err != nil {
		t.Fatal(err)
	}
	if url != "nats://env:4222" || workers != 9 || tick != 50*time.Millisecond {
		t.Fatalf("got %q %d %v", url, workers, tick)
	}
}

func TestBadEnvIsAnError(t *testing.T) {
	t.Setenv("REALM_WORKERS", "many")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s := New(fs)
	var n int
	s.Int(&n, "workers", 1, "workers")
	if err := s.Parse(nil); err == nil {
		t.Fatal("want an error for REALM_WORKERS=many")
	}
}

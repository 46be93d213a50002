package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/freeport"
)

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePorts and freeBase give the stacks of these tests ports from
// libs/freeport: below the kernel's ephemeral range (a port picked with ":0"
// is free when checked, but an outgoing connection of a test running beside
// this one can take it as its local port before the stack binds it; CI:
// TestAdminAgainstStack waited 90 s for a stack that had stopped), and never
// the same port twice in this binary (TestRunStackR3 picks NATS and ops
// ports separately).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	out := make([]int, n)
	for i := range out {
		p, err := freeport.Port()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = p
	}
	return out
}

// freeBase finds five consecutive free ports for the ops servers (gateway,
// world, persist, monitor, the browser demo).
func freeBase(t *testing.T) int {
	t.Helper()
	base, err := freeport.Run(5)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// waitStack waits until up says the stack started by runStack (its result
// comes on done) is ready; a stack that stopped meanwhile fails the test at
// once with its error, and a stack that is still not up at the timeout
// fails it with what it printed and where its goroutines are.
func waitStack(t *testing.T, timeout time.Duration, done chan error, out *syncBuffer, up func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-done:
			done <- err // the test's deferred stop reads it again
			t.Fatalf("the stack stopped before it was up: %v\n%s", err, tail(out.String()))
		default:
		}
		err := up()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			var stacks bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("the stack is not up after %v: %v\nstack output:\n%s\ngoroutines:\n%s", timeout, err, tail(out.String()), stacks.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRunStackWithBots is the README's first command in a test: the whole
// stack in one process, bots playing against it, traffic acknowledged and
// updates flowing back, the dashboard served, and a clean stop.
func TestRunStackWithBots(t *testing.T) {
	base := freeBase(t)
	out, stop := startStackWithBots(t, 10, "--nats-port", "-1", "--http-base", strconv.Itoa(base))
	s := out.String()
	m := regexp.MustCompile(`acked (\d+) .*updates (\d+)`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("summary without acked/updates:\n%s", tail(s))
	}
	acked, _ := strconv.Atoi(m[1])
	updates, _ := strconv.Atoi(m[2])
	if acked < 50 || updates < 50 {
		t.Fatalf("too little traffic: acked %d updates %d\n%s", acked, updates, tail(s))
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", base+3))
	if err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dashboard status %d", resp.StatusCode)
	}
	stop()
}

// startStackWithBots runs `realmstream run` in this process with bots bots
// playing for 6 s (plus args), waits for the bots' summary and returns the
// output and a stop that cancels the stack and checks it stops cleanly.
func startStackWithBots(t *testing.T, bots int, args ...string) (*syncBuffer, func()) {
	t.Helper()
	ports := freePorts(t, 2)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	args = append([]string{"--data-dir", t.TempDir(),
		"--tcp-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--ws-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--bots", strconv.Itoa(bots), "--bots-duration", "6s", "--log-level", "warn"}, args...)
	go func() { done <- runStack(ctx, args, out, io.Discard) }()
	summary := regexp.MustCompile(fmt.Sprintf(`summary: %d/%d bots connected`, bots, bots))
	waitStack(t, 120*time.Second, done, out, func() error {
		if !summary.MatchString(out.String()) {
			return fmt.Errorf("no summary yet:\n%s", tail(out.String()))
		}
		return nil
	})
	return out, func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("stack stop: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("stack did not stop within 60s of cancel")
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--bots", "-1"}, {"--bots-transport", "udp"}, {"--nats-sync", "sometimes"}, {"--data-dir", ""}} {
		if err := runStack(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("runStack(%v): want an error", args)
		}
	}
	if code := run([]string{"nope"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("unknown command exit code %d, want 2", code)
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

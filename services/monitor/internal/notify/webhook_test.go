package notify

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/waitfor"
)

type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) add(o string) { c.mu.Lock(); c.m[o]++; c.mu.Unlock() }
func (c *counts) get(o string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[o]
}

// TestRetryThenDeliver: the endpoint fails twice, the third attempt delivers.
func TestRetryThenDeliver(t *testing.T) {
	var calls atomic.Int32
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		var p Payload
		_ = json.NewDecoder(r.Body).Decode(&p)
		got.Store(p)
	}))
	defer srv.Close()
	c := &counts{m: map[string]int{}}
	w := NewWebhook(WebhookOptions{URL: srv.URL, Attempts: 5, Backoff: 5 * time.Millisecond, Timeout: time.Second}, slog.Default(), c.add)
	ctx, cancel := context.WithCancel(context.Background())
	go w.Run(ctx, context.Background())
	w.Enqueue(Payload{Rule: "r", State: "firing", Target: "shard=pg0"})
	waitfor.True(t, 5*time.Second, func() error {
		if c.get("delivered") != 1 {
			return context.DeadlineExceeded
		}
		return nil
	})
	cancel()
	<-w.Done()
	if calls.Load() != 3 || c.get("retried") != 2 || got.Load().(Payload).Rule != "r" {
		t.Fatalf("calls %d retried %d", calls.Load(), c.get("retried"))
	}
}

// TestBounded: a dead endpoint gets exactly Attempts tries; a full queue drops
// (and counts) instead of blocking the caller.
func TestBounded(t *testing.T) {
	var calls atomic.Int32
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		<-block
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	defer close(block)
	c := &counts{m: map[string]int{}}
	w := NewWebhook(WebhookOptions{URL: srv.URL, Attempts: 3, Backoff: time.Millisecond, Timeout: 50 * time.Millisecond, Queue: 2}, slog.Default(), c.add)
	ctx, cancel := context.WithCancel(context.Background())
	go w.Run(ctx, context.Background())
	w.Enqueue(Payload{Rule: "r"})
	waitfor.True(t, 5*time.Second, func() error { // the first is in flight, the queue is empty
		if calls.Load() == 0 {
			return context.DeadlineExceeded
		}
		return nil
	})
	start := time.Now()
	for i := 0; i < 9; i++ {
		w.Enqueue(Payload{Rule: "r"})
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Fatal("Enqueue blocked")
	}
	waitfor.True(t, 5*time.Second, func() error {
		if c.get("failed") != 3 { // the one in flight + the 2 queued
			return context.DeadlineExceeded
		}
		return nil
	})
	if d := c.get("dropped"); d != 7 {
		t.Errorf("dropped %d, want 7", d)
	}
	if n := calls.Load(); n != 9 {
		t.Errorf("%d attempts, want 3 notifications x 3 attempts", n)
	}
	cancel()
	<-w.Done()
}

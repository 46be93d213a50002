package persist

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/services/persist/internal/store"
)

// TestKilledReplicaCaughtUpQuickly: two replicas share the consumer with the
// default --ack-wait; one dies holding a committed-but-unacked batch and a
// prefetched one. The other must have stored exactly the log within a few
// seconds of the death (bounded by the default ack-wait, not 30s). The
// bound includes B's start (migrations), so it is conservative.
func TestKilledReplicaCaughtUpQuickly(t *testing.T) {
	ctx := context.Background()
	srv, _, _ := natstest.StartWithStreams(t)
	urls := []string{pgtest.NewDatabase(t), pgtest.NewDatabase(t)}
	pub, _ := newPublisher(t, srv.URL)
	if err := pub.publish(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(srv.URL)
	cfg.PGURLs = urls
	cfg.AckWait = DefaultConfig().AckWait
	crash := errors.New("simulated kill mid-batch")
	died := make(chan time.Time, 1)
	var batches atomic.Int32
	cfgA := cfg
	cfgA.InstanceID = "persist-a"
	cfgA.testBeforeAck = func([]store.Record) error {
		if batches.Add(1) == 2 {
			died <- time.Now()
			return crash
		}
		return nil
	}
	a, err := New(cfgA, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	aDone := make(chan error, 1)
	go func() { aDone <- a.Run(ctx) }()
	var t0 time.Time
	select {
	case t0 = <-died:
	case <-time.After(30 * time.Second):
		t.Fatal("replica A stored no batch in 30s")
	}
	if err := <-aDone; !errors.Is(err, crash) {
		t.Fatalf("replica A: %v", err)
	}
	cfgB := cfg
	cfgB.InstanceID = "persist-b"
	b := start(t, cfgB)
	waitStored(t, urls, 1000, 10*time.Second)
	took := time.Since(t0)
	assertExactlyTheLog(t, pub, pgRows(t, urls, nil))
	waitfor.True(t, 5*time.Second, func() error {
		if b.svc.pipeSkipped() == 0 {
			return errorf("the batch A committed was not redelivered to B")
		}
		return nil
	})
	t.Logf("replica B caught up %v after A died (ack-wait %v), skipped %d redelivered rows", took, cfg.AckWait, b.svc.pipeSkipped())
}

// TestLongBatchNotRedelivered: a batch whose write (here: commit plus a slow
// step before the ack) takes 3x --ack-wait is kept alive with in-progress
// acks, so the other replica never gets it (nor the batch prefetched behind
// it) while it is being written.
func TestLongBatchNotRedelivered(t *testing.T) {
	ctx := context.Background()
	srv, _, _ := natstest.StartWithStreams(t)
	urls := []string{pgtest.NewDatabase(t), pgtest.NewDatabase(t)}
	pub, _ := newPublisher(t, srv.URL)
	if err := pub.publish(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(srv.URL)
	cfg.PGURLs = urls
	cfg.AckWait = time.Second
	var batches atomic.Int32
	cfgA := cfg
	cfgA.InstanceID = "persist-a"
	slow := make(chan struct{})
	cfgA.testBeforeAck = func([]store.Record) error {
		if batches.Add(1) == 1 {
			close(slow)
			time.Sleep(3 * cfg.AckWait)
		}
		return nil
	}
	a := start(t, cfgA)
	select {
	case <-slow:
	case <-time.After(30 * time.Second):
		t.Fatal("replica A stored no batch in 30s")
	}
	cfgB := cfg
	cfgB.InstanceID = "persist-b"
	b := start(t, cfgB)
	waitStored(t, urls, 1000, 30*time.Second)
	waitfor.True(t, 10*time.Second, func() error {
		a.svc.mu.Lock()
		pipe := a.svc.pipe
		a.svc.mu.Unlock()
		if n, err := pipe.Lag(ctx); err != nil || n != 0 {
			return errorf("lag %d", n)
		}
		return nil
	})
	assertExactlyTheLog(t, pub, pgRows(t, urls, nil))
	if a.svc.pipeSkipped() != 0 || b.svc.pipeSkipped() != 0 {
		t.Fatalf("redelivered while being written: A skipped %d, B skipped %d rows", a.svc.pipeSkipped(), b.svc.pipeSkipped())
	}
	if a.svc.pipeKeepAlives() == 0 {
		t.Fatal("no in-progress acks sent for the slow batch")
	}
	t.Logf("A: %d keep-alive rounds, B stored %d", a.svc.pipeKeepAlives(), b.svc.EventsStored())
}

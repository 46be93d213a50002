package zone

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
)

func tickOf(prefix string, n int) []*schema.Event {
	evs := make([]*schema.Event, n)
	for i := range evs {
		id := fmt.Sprintf("%s:%d", prefix, i+1)
		evs[i] = chatEv("z/c/"+id, id)
	}
	return evs
}

// checkZ reads the log of z and checks its invariants.
func checkZ(t *testing.T, js jetstream.JetStream) []zonelog.Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Read again on an error: right after a stream leader change (R3), the
	// read's consumer may have no leader yet ("no responders").
	var l []zonelog.Entry
	waitfor.True(t, 15*time.Second, func() (err error) {
		l, err = zonelog.Read(ctx, js, "z")
		return err
	})
	if _, vs := zonelog.Check(map[string][]zonelog.Entry{"z": l}); len(vs) > 0 {
		t.Fatalf("violations: %v", vs)
	}
	return l
}

// staleOwnerRefusedWhole: owner 1 decided a tick of 10 events; owner 2
// claims first; owner 1's commit is refused and none of its 10 events is in
// the log (R1 or R3 alike).
func staleOwnerRefusedWhole(t *testing.T, js jetstream.JetStream) {
	ctx := context.Background()
	a := testAppender(t, js, "z", 1)
	if _, err := one(ctx, a, 1, claimEv("z/claim/1", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.commit(ctx, 2, tickOf("a", 10)); err != nil {
		t.Fatal(err)
	}
	b := testAppender(t, js, "z", 2)
	b.lastSeq = a.lastSeq
	if _, err := one(ctx, b, 3, claimEv("z/claim/2", 2)); err != nil {
		t.Fatal(err)
	}
	_, err := a.commit(ctx, 3, tickOf("stale", 10))
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("stale owner's commit: %v, want ErrFenced", err)
	}
	if _, err := b.commit(ctx, 4, tickOf("b", 10)); err != nil {
		t.Fatal(err)
	}
	l := checkZ(t, js)
	if len(l) != 1+10+1+10 {
		t.Fatalf("%d events, want 22", len(l))
	}
	for _, e := range l {
		if e.Event.Fence == 1 && e.Event.Tick == 3 {
			t.Fatalf("an event of the stale tick is in the log: %v", e.Event)
		}
	}
}

// TestStaleOwnerCommitRefusedWhole (R1).
func TestStaleOwnerCommitRefusedWhole(t *testing.T) {
	_, _, js := natstest.StartWithStreams(t)
	staleOwnerRefusedWhole(t, js)
}

// TestAmbiguousTickCommit: the PubAck of a tick record of 20 events is lost
// (the network stalls server -> client past the publish timeout); the
// appender reads the log end, finds its record and does not store the
// tick twice. When the record never reached the server it sends the same
// record again.
func TestAmbiguousTickCommit(t *testing.T) {
	srv, _, direct := natstest.StartWithStreams(t)
	p := newHoldProxy(t, srv.Addr().String())
	_, js := natstest.Connect(t, p.url())
	a := testAppender(t, js, "z", 1)
	ctx := context.Background()
	if _, err := one(ctx, a, 1, claimEv("z/claim/1", 1)); err != nil {
		t.Fatal(err)
	}
	p.toClient.Store(true)
	go func() { time.Sleep(500 * time.Millisecond); p.toClient.Store(false) }()
	if _, err := a.commit(ctx, 2, tickOf("s", 20)); err != nil {
		t.Fatalf("ambiguous commit: %v", err)
	}
	p.toServer.Store(true)
	go func() { time.Sleep(500 * time.Millisecond); p.toServer.Store(false) }()
	if _, err := a.commit(ctx, 3, tickOf("u", 20)); err != nil {
		t.Fatalf("lost commit: %v", err)
	}
	if a.resolved != 2 {
		t.Fatalf("%d ambiguous commits resolved, want 2", a.resolved)
	}
	l := checkZ(t, direct)
	if len(l) != 41 {
		t.Fatalf("%d events, want 41 (no tick stored twice)", len(l))
	}
}

// TestSplitTick: a tick whose events exceed the max payload is stored as
// several fenced records of the same tick (parts), in order.
func TestSplitTick(t *testing.T) {
	_, _, js := natstest.StartWithStreams(t)
	a := testAppender(t, js, "z", 1)
	a.maxBytes = 400
	ctx := context.Background()
	if _, err := one(ctx, a, 1, claimEv("z/claim/1", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.commit(ctx, 2, tickOf("s", 30)); err != nil {
		t.Fatal(err)
	}
	l := checkZ(t, js)
	parts := map[uint32]bool{}
	for _, e := range l[1:] {
		if e.Record.Tick != 2 || e.Record.Parts < 2 {
			t.Fatalf("record %s: tick %d parts %d", e.RecordID, e.Record.Tick, e.Record.Parts)
		}
		parts[e.Record.Part] = true
	}
	if len(parts) != int(l[1].Record.Parts) || len(l) != 31 {
		t.Fatalf("%d parts seen of %d, %d events", len(parts), l[1].Record.Parts, len(l))
	}
}

// clusterJS starts a 3-node JetStream cluster with the contract's streams
// at R3.
func clusterJS(t *testing.T) (*natstest.Cluster, jetstream.JetStream) {
	c := natstest.StartCluster(t, 3)
	_, js := natstest.Connect(t, c.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	return c, js
}

// TestR3Commits: the same commits on a 3-node cluster with R3 streams: one
// record per tick, a stale owner refused whole, and the cluster's
// wrong-sequence answer (10164) recognised as fenced.
func TestR3Commits(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	_, js := clusterJS(t)
	staleOwnerRefusedWhole(t, js)

	// The raw answer of the cluster to a wrong expected sequence.
	ctx := context.Background()
	_, err := js.Publish(ctx, wire.EventSubject("z"), []byte("x"), jetstream.WithExpectLastSequencePerSubject(1))
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || !wrongLastSeq(err) {
		t.Fatalf("wrong last sequence on R3: %v", err)
	}
	t.Logf("R3 wrong-sequence answer: code %d", apiErr.ErrorCode)
}

// TestR3LeaderChangeDuringCommit: the EVT stream's leader steps down while
// an owner commits ticks; every commit either succeeds or is resolved (the
// record is in the log once) and the log stays linear.
func TestR3LeaderChangeDuringCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node cluster")
	}
	_, js := clusterJS(t)
	ctx := context.Background()
	a := testAppender(t, js, "z", 1)
	a.timeout = 2 * time.Second
	if _, err := one(ctx, a, 1, claimEv("z/claim/1", 1)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	var ticks atomic.Uint64
	go func() {
		for tick := uint64(2); ; tick++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := a.commit(ctx, tick, tickOf(fmt.Sprintf("t%d", tick), 10)); err != nil {
				done <- fmt.Errorf("tick %d: %w", tick, err)
				return
			}
			ticks.Store(tick - 1)
		}
	}()
	waitfor.True(t, 10*time.Second, func() error {
		if ticks.Load() < 5 {
			return errors.New("no commits yet")
		}
		return nil
	})
	st, err := js.Stream(ctx, wire.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	before := st.CachedInfo().Cluster.Leader
	// Ask the stream leader to step down (JetStream API) in the middle of the commits.
	nc := js.Conn()
	if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+wire.StreamEvents, nil, 5*time.Second); err != nil {
		t.Fatalf("step down: %v", err)
	}
	at := ticks.Load()
	// A few commits on the new leader are the point, not a rate: under a
	// loaded CI machine a commit right after the election can take its whole
	// timeout and be resolved by reading the log.
	waitfor.True(t, 30*time.Second, func() error {
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.Cluster.Leader == before || info.Cluster.Leader == "" {
			return fmt.Errorf("leader still %q", info.Cluster.Leader)
		}
		if ticks.Load() < at+5 {
			return fmt.Errorf("%d commits after the step-down", ticks.Load()-at)
		}
		return nil
	})
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	l := checkZ(t, js)
	if n := ticks.Load(); len(l) != 1+int(n)*10 {
		t.Fatalf("%d events, want %d", len(l), 1+n*10)
	}
	t.Logf("leader %s -> new leader; %d records, %d ambiguous commits resolved", before, a.records, a.resolved)
}

// TestWrongLastSequenceCodes: both refusals of an expected sequence are
// fenced: 10071 (single server) and 10164 (replicated streams answer it for
// a conflict detected while proposals are in flight). Racing appenders on an
// R3 stream: one wins each round, the others are refused.
func TestWrongLastSequenceCodes(t *testing.T) {
	for _, code := range []jetstream.ErrorCode{jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant} {
		if !wrongLastSeq(fmt.Errorf("publish: %w", &jetstream.APIError{ErrorCode: code, Code: 400})) {
			t.Errorf("code %d not recognised as a wrong last sequence", code)
		}
	}
	if testing.Short() {
		return
	}
	_, js := clusterJS(t)
	ctx := context.Background()
	base := testAppender(t, js, "z", 1)
	if _, err := one(ctx, base, 1, claimEv("z/claim/1", 1)); err != nil {
		t.Fatal(err)
	}
	codes := map[jetstream.ErrorCode]int{}
	var mu sync.Mutex
	for round := 0; round < 5; round++ {
		var wg sync.WaitGroup
		var wins atomic.Int32
		start := base.lastSeq
		for i := 0; i < 6; i++ {
			a := testAppender(t, js, "z", uint64(10+i))
			a.lastSeq = start
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := a.commit(ctx, uint64(round+2), tickOf(fmt.Sprintf("r%d-%d", round, i), 5))
				switch {
				case err == nil:
					wins.Add(1)
					mu.Lock()
					base.lastSeq = a.lastSeq
					mu.Unlock()
				case errors.Is(err, ErrFenced):
				default:
					t.Error(err)
				}
				// The raw code the cluster answers for the same conflict.
				_, rerr := js.Publish(ctx, wire.EventSubject("z"), []byte("x"), jetstream.WithExpectLastSequencePerSubject(start))
				var apiErr *jetstream.APIError
				if errors.As(rerr, &apiErr) {
					mu.Lock()
					codes[apiErr.ErrorCode]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d commits stored, want 1", round, wins.Load())
		}
	}
	t.Logf("codes answered by the R3 stream for stale expected sequences: %v", codes)
}

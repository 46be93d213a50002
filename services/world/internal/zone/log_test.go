package zone

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
)

// holdProxy forwards TCP between a client and the NATS server; while a
// direction is held, bytes in that direction are buffered in the kernel (not
// read), so the peer sees nothing until release: a stalled network.
type holdProxy struct {
	ln       net.Listener
	target   string
	toServer atomic.Bool // hold client -> server
	toClient atomic.Bool // hold server -> client
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newHoldProxy(t *testing.T, target string) *holdProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go p.pipe(s, c, &p.toServer)
			go p.pipe(c, s, &p.toClient)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *holdProxy) pipe(dst, src net.Conn, hold *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		for hold.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		n, err := src.Read(buf)
		if n > 0 {
			for hold.Load() { // hold what was read too
				time.Sleep(5 * time.Millisecond)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				dst.Close()
			}
			return
		}
	}
}

func (p *holdProxy) url() string { return "nats://" + p.ln.Addr().String() }

func testAppender(t testing.TB, js jetstream.JetStream, zone string, fence uint64) *appender {
	st, err := js.Stream(context.Background(), wire.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	return &appender{js: js, stream: st, zone: zone, subject: wire.EventSubject(zone), instance: "w" + strconv.FormatUint(fence, 10),
		fence: fence, timeout: 300 * time.Millisecond, valid: func() bool { return true }}
}

// one commits ev as the record of tick.
func one(ctx context.Context, a *appender, tick uint64, ev *schema.Event) (uint64, error) {
	return a.commit(ctx, tick, []*schema.Event{ev})
}

func claimEv(id string, f uint64) *schema.Event {
	return &schema.Event{EventId: id, Body: &schema.Event_OwnershipClaimed{OwnershipClaimed: &schema.OwnershipClaimed{InstanceId: "w", Fence: f}}}
}

func chatEv(id, cmd string) *schema.Event {
	return &schema.Event{EventId: id, CommandId: cmd, Body: &schema.Event_ChatSent{ChatSent: &schema.ChatSent{Text: "x"}}}
}

// TestAmbiguousAppend: the PubAck of a stored append is lost (the network
// stalls server -> client past the publish timeout). The appender resolves
// the outcome by reading the log's last message and does not append twice;
// when the publish never reached the server it sends the same message again.
func TestAmbiguousAppend(t *testing.T) {
	srv, _, direct := natstest.StartWithStreams(t)
	p := newHoldProxy(t, srv.Addr().String())
	_, js := natstest.Connect(t, p.url())
	a := testAppender(t, js, "z", 1)
	ctx := context.Background()
	if _, err := one(ctx, a, 1, claimEv("z/claim/1", 1)); err != nil {
		t.Fatal(err)
	}

	// 1. Stored, ack lost: release the stall after the publish timed out.
	p.toClient.Store(true)
	go func() { time.Sleep(500 * time.Millisecond); p.toClient.Store(false) }()
	seq, err := one(ctx, a, 2, chatEv("z/c/s:1", "s:1"))
	if err != nil {
		t.Fatalf("ambiguous append: %v", err)
	}
	// 2. Never reached the server: stall client -> server, then release.
	p.toServer.Store(true)
	go func() { time.Sleep(500 * time.Millisecond); p.toServer.Store(false) }()
	seq2, err := one(ctx, a, 3, chatEv("z/c/s:2", "s:2"))
	if err != nil {
		t.Fatalf("lost append: %v", err)
	}
	if a.resolved != 2 {
		t.Fatalf("%d ambiguous appends resolved, want 2", a.resolved)
	}
	if seq2 <= seq {
		t.Fatalf("seq %d after %d", seq2, seq)
	}
	logs, err := zonelog.ReadAll(ctx, direct, []string{"z"})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs["z"]) != 3 {
		t.Fatalf("%d events in the log, want 3 (no double append)", len(logs["z"]))
	}
	if _, vs := zonelog.Check(logs); len(vs) != 0 {
		t.Fatalf("violations: %v", vs)
	}

	// 3. Another owner appended meanwhile: the stale appender is refused.
	b := testAppender(t, direct, "z", 2)
	b.lastSeq = a.lastSeq
	if _, err := one(ctx, b, 3, claimEv("z/claim/2", 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := one(ctx, a, 4, chatEv("z/c/s:3", "s:3")); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale append: %v, want ErrFenced", err)
	}
	_ = nats.ErrTimeout
}

// TestConcurrentAppendsOneWins (LOCK-T5): appenders racing with the same
// expected sequence (owners that all believe they own the zone): exactly one
// append is stored, the others are refused; and a retry of a stored append
// (same Nats-Msg-Id, old expected sequence) is recognised as ours, not
// stored twice.
func TestConcurrentAppendsOneWins(t *testing.T) {
	_, _, js := natstest.StartWithStreams(t)
	ctx := context.Background()
	base := testAppender(t, js, "z", 1)
	if _, err := one(ctx, base, 1, claimEv("z/claim/1", 1)); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 5; round++ {
		var wg sync.WaitGroup
		var wins, refused atomic.Int32
		start := base.lastSeq
		for i := 0; i < 8; i++ {
			a := testAppender(t, js, "z", uint64(10+i))
			a.lastSeq = start
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := one(ctx, a, uint64(round+2), chatEv("z/r"+strconv.Itoa(round)+"/"+strconv.Itoa(i), ""))
				switch {
				case err == nil:
					wins.Add(1)
					base.lastSeq = a.lastSeq
				case errors.Is(err, ErrFenced):
					refused.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 || refused.Load() != 7 {
			t.Fatalf("round %d: %d stored, %d refused; want 1 and 7", round, wins.Load(), refused.Load())
		}
	}
	// Retry of a stored append with its original expected sequence.
	prev := base.lastSeq
	ev := chatEv("z/retry", "s:1")
	seq, err := one(ctx, base, 100, ev)
	if err != nil {
		t.Fatal(err)
	}
	base.lastSeq = prev
	again, err := one(ctx, base, 100, chatEv("z/retry", "s:1"))
	if err != nil || again != seq {
		t.Fatalf("retry: seq %d (first %d), %v", again, seq, err)
	}
	logs, err := zonelog.ReadAll(ctx, js, []string{"z"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(logs["z"]); n != 1+5+1 {
		t.Fatalf("%d events stored, want 7", n)
	}
}

// lostPublish is a JetStream whose next PublishMsg on subject fails as a
// lost request does (the reconnect after a NATS restart, a timeout): the
// message never reaches the server and the caller cannot tell.
type lostPublish struct {
	jetstream.JetStream
	subject string
	lose    atomic.Int32
}

func (l *lostPublish) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if m.Subject == l.subject && l.lose.Add(-1) >= 0 {
		return nil, nats.ErrTimeout
	}
	return l.JetStream.PublishMsg(ctx, m, opts...)
}

// TestAmbiguousAppendNotOursWithTheSameFence (the e2e fault run, NATS
// restart after a Redis restart): Redis lost its fence counter, and the NATS
// outage made two instances take the same zone over at once; both claimed
// with fence max(lease fence, previous + 1), the same, from the same log
// end, so their records had the same record id. The second's publish was
// lost and resolving it read the first's record: its record id and fence,
// taken for its own (the instance was not compared). Both then ran the zone
// with fence 5, each acking the commands of ticks that, resolved the same
// way, were the other's: the world log of run 3 (world-1 and world-2 both
// "zone claimed zone=z2_2 fence=5 last_seq=8727") and 60 commands of z2_2
// acked without an event. The record of another instance is never ours.
func TestAmbiguousAppendNotOursWithTheSameFence(t *testing.T) {
	_, _, js := natstest.StartWithStreams(t)
	ctx := context.Background()
	prev := testAppender(t, js, "z", 4)
	if _, err := one(ctx, prev, 1, claimEv("z/claim/4/world-3", 4)); err != nil {
		t.Fatal(err)
	}
	lost := &lostPublish{JetStream: js, subject: wire.EventSubject("z")}
	a, b := testAppender(t, js, "z", 5), testAppender(t, lost, "z", 5)
	a.instance, b.instance = "world-1", "world-2"
	a.lastSeq, b.lastSeq = prev.lastSeq, prev.lastSeq
	// Both claim at tick 1 of fence 5: the same record id.
	if _, err := one(ctx, a, 1, claimEv("z/claim/5/world-1", 5)); err != nil {
		t.Fatal(err)
	}
	lost.lose.Store(1)
	seq, err := one(ctx, b, 1, claimEv("z/claim/5/world-2", 5))
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("world-2's lost claim resolved as stored at seq %d (%v): it is world-1's record; want ErrFenced", seq, err)
	}
	// A lost tick whose record id another owner of the same fence used.
	b.lastSeq = a.lastSeq
	if _, err := one(ctx, a, 2, chatEv("z/c/s:1", "s:1")); err != nil {
		t.Fatal(err)
	}
	lost.lose.Store(1)
	if seq, err := one(ctx, b, 2, chatEv("z/c/s:2", "s:2")); !errors.Is(err, ErrFenced) {
		t.Fatalf("world-2's lost tick resolved as stored at seq %d (%v): want ErrFenced (its commands would be acked without events)", seq, err)
	}
	// A Duplicate answer naming the other owner's record of the same id is
	// a refusal too (it was before: that path compared the instance).
	if _, err := one(ctx, a, 3, chatEv("z/c/s:3", "s:3")); err != nil {
		t.Fatal(err)
	}
	if seq, err := one(ctx, b, 3, chatEv("z/c/s:4", "s:4")); !errors.Is(err, ErrFenced) {
		t.Fatalf("world-2's tick after world-1's of the same id: stored at seq %d (%v), want ErrFenced", seq, err)
	}
}

package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// answers records, per seq, every answer one client got.
type answers struct {
	mu   sync.Mutex
	sent map[uint64]time.Time
	got  map[uint64][]string
}

func newAnswers() *answers {
	return &answers{sent: map[uint64]time.Time{}, got: map[uint64][]string{}}
}

func (a *answers) markSent(seq uint64) {
	a.mu.Lock()
	a.sent[seq] = time.Now()
	a.mu.Unlock()
}

// read consumes c's packets until it closes, recording the answers.
func (a *answers) read(c *client.Conn) {
	for p := range c.Packets() {
		if p.AckSeq == 0 || p.GetUpdate() != nil {
			continue
		}
		a.mu.Lock()
		a.got[p.AckSeq] = append(a.got[p.AckSeq], kind(p))
		a.mu.Unlock()
	}
}

// unanswered lists the sent seqs without an answer.
func (a *answers) unanswered() []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []uint64
	for s := range a.sent {
		if len(a.got[s]) == 0 {
			out = append(out, s)
		}
	}
	return out
}

// TestPublisherRecoversFromAckStall is the regression test of issue 10 #2:
// PubAcks held back 1.5 s by a proxy (longer than the publish timeout, so
// publishes time out and go to the retry queue while holding their window
// slots) with MaxPending=64 and 8 clients sending. Before the fix the
// publisher parked in acquire waiting for slots that only the retry queue it
// no longer served could free: nothing accepted was answered again and every
// new command got Busy until shutdown. Now every accepted command gets its
// one answer and new commands are accepted and acked once acks flow again.
func TestPublisherRecoversFromAckStall(t *testing.T) {
	srv, _, _ := natstest.StartWithStreams(t)
	px := startStallProxy(t, srv.Addr().String())
	h := start(t, func(c *Config) {
		c.NATSURL = px.URL()
		c.MaxPending = 64
		c.PublishTimeout = 250 * time.Millisecond
		c.Rate, c.Burst = 100000, 100000
		c.ShutdownTimeout = 2 * time.Second
	})
	const clients = 8
	conns := make([]*client.Conn, clients)
	recs := make([]*answers, clients)
	for i := range conns {
		conns[i], _ = h.login("tcp", "stall"+string(rune('a'+i)), "z1_1")
		recs[i] = newAnswers()
		go recs[i].read(conns[i])
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				// Bursts: readers race past the window check together, so
				// the ring holds more commands than free slots.
				for range 16 {
					seq := c.Reserve()
					recs[i].markSent(seq)
					if err := c.SendRaw(ctx, &schema.ClientPacket{Seq: seq, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: 10, Y: 10}}}); err != nil {
						return
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	px.stall(1500 * time.Millisecond)
	stallEnd := time.Now().Add(1500 * time.Millisecond)
	// Keep sending for 2.5 s after acks flow again.
	time.Sleep(time.Until(stallEnd.Add(2500 * time.Millisecond)))
	cancel()
	wg.Wait()

	// Every sent command gets exactly one answer.
	deadline := time.Now().Add(10 * time.Second)
	for i, r := range recs {
		for len(r.unanswered()) > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if u := r.unanswered(); len(u) > 0 {
			t.Fatalf("client %d: %d of %d commands never answered (e.g. seq %d); inflight %d ring %d",
				i, len(u), len(r.sent), u[0], h.gw.pub.inflight.Load(), h.gw.ring.Len())
		}
	}
	// New commands are accepted and acked after the stall: each client has
	// acks for commands sent more than 1 s after the stall ended.
	for i, r := range recs {
		r.mu.Lock()
		acksAfter, busy, other := 0, 0, map[string]int{}
		for s, at := range r.sent {
			if len(r.got[s]) != 1 {
				t.Errorf("client %d seq %d: answers %v, want exactly one", i, s, r.got[s])
			}
			for _, k := range r.got[s] {
				switch {
				case k == "ack" && at.After(stallEnd.Add(time.Second)):
					acksAfter++
				case k == "ack":
				case k == "busy":
					busy++
				default:
					other[k]++
				}
			}
		}
		r.mu.Unlock()
		t.Logf("client %d: %d sent, %d acked after the stall, %d busy, other %v", i, len(r.sent), acksAfter, busy, other)
		if acksAfter == 0 {
			t.Errorf("client %d: no command sent after the stall was acked", i)
		}
	}
}

// TestAmbiguousPublishResendSameSeq is the regression test of issue 10 #4: a
// command whose PubAck never arrives within the publish timeout and its
// retries (a stall proxy holds the acks; the stream did store it) is answered
// OUTCOME_UNKNOWN, not "INTERNAL: could not be stored; resend it". Resending
// it with the same seq is accepted and deduplicated (Ack duplicate, stored
// once); the same seq with a different body is refused SEQ_REUSED; an acked
// seq stays STALE_SEQ. Before the fix the answer was INTERNAL and the resend
// STALE_SEQ, so a client had to use a new seq and the command was applied twice.
func TestAmbiguousPublishResendSameSeq(t *testing.T) {
	srv, _, _ := natstest.StartWithStreams(t)
	px := startStallProxy(t, srv.Addr().String())
	h := start(t, func(c *Config) {
		c.NATSURL = px.URL()
		c.PublishTimeout = 100 * time.Millisecond
		c.PublishRetries = 2
		c.ShutdownTimeout = 2 * time.Second
	})
	h.srv = srv
	h.nc, h.js = natstest.Connect(t, srv.URL) // the server behind the proxy
	ctx := context.Background()
	c, w := h.login("tcp", "amb", "z1_1")
	acked, err := c.Move(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p := next(t, c, 5*time.Second); p.AckSeq != acked || p.GetAck() == nil {
		t.Fatalf("got %v, want ack of %d", p, acked)
	}

	px.stall(1500 * time.Millisecond)
	stallEnd := time.Now().Add(1500 * time.Millisecond)
	move := &schema.ClientPacket{Body: &schema.ClientPacket_Move{Move: &schema.Move{X: 7, Y: 7}}}
	seq, err := c.Send(ctx, move)
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, c, seq, schema.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN)
	if time.Now().After(stallEnd) {
		t.Fatal("the answer came after the stall: the test did not exercise the ambiguous path")
	}
	time.Sleep(time.Until(stallEnd))

	other := &schema.ClientPacket{Seq: seq, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: 8, Y: 8}}}
	if err := c.SendRaw(ctx, other); err != nil {
		t.Fatal(err)
	}
	expectError(t, c, seq, schema.ErrorCode_ERROR_CODE_SEQ_REUSED)

	if err := c.SendRaw(ctx, move); err != nil {
		t.Fatal(err)
	}
	p := next(t, c, 5*time.Second)
	if p.AckSeq != seq || p.GetAck() == nil || !p.GetAck().Duplicate {
		t.Fatalf("resend with the same seq: got %v, want a duplicate Ack of %d", p, seq)
	}
	if err := c.SendRaw(ctx, move); err != nil { // answered now: a second resend is stale
		t.Fatal(err)
	}
	expectError(t, c, seq, schema.ErrorCode_ERROR_CODE_STALE_SEQ)
	if err := c.SendRaw(ctx, &schema.ClientPacket{Seq: acked, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: 1, Y: 1}}}); err != nil {
		t.Fatal(err)
	}
	expectError(t, c, acked, schema.ErrorCode_ERROR_CODE_STALE_SEQ)

	id := wire.CommandID(w.SessionId, seq)
	n := 0
	for _, m := range h.streamMsgs() {
		if m.Header.Get(wire.HeaderMsgID) == id {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("command %s stored %d times, want once", id, n)
	}
}

// TestBusySeqMayBeResent: a command answered Busy was not accepted; its seq
// may be sent again even after a later seq was accepted (issue 10 #4).
func TestBusySeqMayBeResent(t *testing.T) {
	h := start(t, nil)
	ctx := context.Background()
	c, _ := h.login("tcp", "busy", "z1_1")
	// A Busy answer, as the reader gives it when the window is full.
	seq := c.Reserve()
	var gc *conn
	h.gw.mu.Lock()
	for k := range h.gw.conns {
		gc = k
	}
	h.gw.mu.Unlock()
	gc.resend.add(seq, 0) // what replyBusyFor records
	later, err := c.Move(ctx, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if p := next(t, c, 5*time.Second); p.AckSeq != later || p.GetAck() == nil {
		t.Fatalf("got %v, want ack of %d", p, later)
	}
	if err := c.SendRaw(ctx, &schema.ClientPacket{Seq: seq, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: 3, Y: 3}}}); err != nil {
		t.Fatal(err)
	}
	if p := next(t, c, 5*time.Second); p.AckSeq != seq || p.GetAck() == nil || p.GetAck().Duplicate {
		t.Fatalf("resent busy seq: got %v, want a fresh ack of %d", p, seq)
	}
}

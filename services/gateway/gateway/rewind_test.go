package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/schema"
)

// sessionConn returns gw's connection that holds session sid.
func sessionConn(t *testing.T, gw *Service, sid string) *conn {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		gw.mu.Lock()
		for c := range gw.conns {
			if c.authed.Load() && c.session == sid {
				gw.mu.Unlock()
				return c
			}
		}
		gw.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no connection of session %s on %s", sid, gw.cfg.InstanceID)
	return nil
}

// TestLateCloseDoesNotRewindSession (the CI fault run's "1 resumes with a
// wrong last_seq"): connection A's session is resumed on gateway 2 (B)
// while A is going away, so A does not answer the hand-over and A's final
// record write lands after B's. B acks new commands, then B's gateway is
// gone too, and the session is resumed on gateway 3 (C). C's last_seq must
// cover every seq B acked: A's late write may not overwrite B's record.
// Before the conditional writes, C got A's last seq back and its client
// reused the ids B had acked.
func TestLateCloseDoesNotRewindSession(t *testing.T) {
	h := start(t, nil)
	gw2 := startGateway(t, h, "gw2", nil)
	gw3 := startGateway(t, h, "gw3", nil)
	c, w := h.login("tcp", "wes", "z1_0")
	sendAcked(t, c, 3)
	a := sessionConn(t, h.gw, w.SessionId)
	// A is closing: closeSession has unsubscribed its hand-over first.
	_ = a.ses.takeSub.Unsubscribe()
	c2, w2, err := resume(t, gw2, w)
	if err != nil {
		t.Fatal(err)
	}
	// B's client continues above last_seq, as a client trusting it does.
	ctx := context.Background()
	seq := w2.LastSeq
	send := func(p *schema.ClientPacket) {
		t.Helper()
		seq++
		p.Seq = seq
		if err := c2.SendRaw(ctx, p); err != nil {
			t.Fatal(err)
		}
		if r := next(t, c2, 5*time.Second); r.AckSeq != seq || r.GetAck() == nil || r.GetAck().Duplicate {
			t.Fatalf("seq %d on gw2: %v, want a fresh ack", seq, r)
		}
	}
	send(&schema.ClientPacket{Body: &schema.ClientPacket_Join{Join: &schema.Join{Zone: "z1_0"}}})
	for i := range 3 {
		send(move(float32(50 + i)))
	}
	a.ses.WriteFinal(false) // A's close, late
	// B's gateway is gone: its connection does not answer the hand-over.
	b := sessionConn(t, gw2, w.SessionId)
	_ = b.ses.takeSub.Unsubscribe()
	_, w3, err := resume(t, gw3, w2)
	if err != nil {
		t.Fatal(err)
	}
	if w3.LastSeq < seq {
		t.Fatalf("resume on gw3: last_seq %d below seq %d that gw2 acked (the late close of gw1's connection rewound the record)", w3.LastSeq, seq)
	}
}

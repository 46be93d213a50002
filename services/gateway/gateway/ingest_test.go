package gateway

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
)

// TestCommandsReachStream: hello, join, move, chat and attack over real TCP
// and WebSocket connections end up on cmd.<zone> with the command id as
// Nats-Msg-Id and the session/player/zone headers, and each is acked.
func TestCommandsReachStream(t *testing.T) {
	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr, func(t *testing.T) {
			h := start(t, nil)
			c, w := h.login(tr, "ann", "z1_1")
			if w.SessionId == "" || w.PlayerId != "p-ann" || w.Token == "" {
				t.Fatalf("welcome %+v", w)
			}
			ctx := context.Background()
			var seqs []uint64
			for _, send := range []func() (uint64, error){
				func() (uint64, error) { return c.Move(ctx, 10, 20) },
				func() (uint64, error) { return c.Chat(ctx, "hello") },
				func() (uint64, error) { return c.Attack(ctx, "p-bob") },
			} {
				seq, err := send()
				if err != nil {
					t.Fatal(err)
				}
				seqs = append(seqs, seq)
			}
			for _, seq := range seqs {
				p := next(t, c, 5*time.Second)
				if p.AckSeq != seq || p.GetAck() == nil || p.GetAck().Duplicate {
					t.Fatalf("got %v, want ack of %d", p, seq)
				}
			}
			msgs := h.streamMsgs()
			if len(msgs) != 4 {
				t.Fatalf("stream holds %d commands, want 4 (join, move, chat, attack)", len(msgs))
			}
			for i, m := range msgs {
				seq := uint64(i + 2) // hello was seq 1
				wantID := wire.CommandID(w.SessionId, seq)
				// Session, player and zone travel in the body only (issue 12 #4):
				// the headers are the msg id, the schema and the digest.
				if m.Subject != "cmd.z1_1" || m.Header.Get(wire.HeaderMsgID) != wantID ||
					m.Header.Get(wire.HeaderSchema) != wire.SchemaVersion || m.Header.Get(wire.HeaderCmdDigest) == "" ||
					m.Header.Get(wire.HeaderSession) != "" || m.Header.Get(wire.HeaderPlayer) != "" || m.Header.Get(wire.HeaderZone) != "" {
					t.Fatalf("msg %d: subject %s headers %v, want id %s", i, m.Subject, m.Header, wantID)
				}
				cmd := decodeCommand(t, m.Data)
				if cmd.CommandId != wantID || cmd.SessionId != w.SessionId || cmd.PlayerId != "p-ann" || cmd.Zone != "z1_1" || cmd.ClientSeq != seq || cmd.ReceivedAtNs == 0 || cmd.PlayerName != "ann" {
					t.Fatalf("command %d: %+v", i, cmd)
				}
			}
			if _, ok := msgs[0].Header[wire.HeaderTraceParent]; !ok {
				// The test uses the global no-op tracer: no trace headers then.
				t.Log("no traceparent (no tracer provider installed)")
			}
			if d := decodeCommand(t, msgs[1].Data).GetMove(); d == nil || d.X != 10 || d.Y != 20 {
				t.Fatalf("move body %v", d)
			}
			rtt, err := c.Ping(ctx)
			if err != nil || rtt <= 0 {
				t.Fatalf("ping: %v %v", rtt, err)
			}
		})
	}
}

// TestBadInputGetsErrors sends each kind of bad input and checks the error
// code; the connection survives every one except the oversized frame.
func TestBadInputGetsErrors(t *testing.T) {
	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr, func(t *testing.T) {
			h := start(t, func(c *Config) { c.MaxFrame = 256 })
			ctx := context.Background()
			c := h.dial(tr)
			// Before Hello.
			seq, _ := c.Move(ctx, 1, 1)
			expectError(t, c, seq, schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED)
			if _, err := c.Hello(ctx, &schema.Hello{Name: "bob"}); err != nil {
				t.Fatal(err)
			}
			// Garbage bytes.
			_ = c.SendBytes(ctx, []byte{0xff, 0xff, 0xff})
			expectError(t, c, 0, schema.ErrorCode_ERROR_CODE_MALFORMED)
			seq, _ = c.Move(ctx, 1, 1)
			expectError(t, c, seq, schema.ErrorCode_ERROR_CODE_NOT_IN_ZONE)
			seq, _ = c.Join(ctx, "z7_7")
			expectError(t, c, seq, schema.ErrorCode_ERROR_CODE_UNKNOWN_ZONE)
			seq, _ = c.Join(ctx, "z0_0")
			if p := next(t, c, 5*time.Second); p.GetAck() == nil || p.AckSeq != seq {
				t.Fatalf("join: %v", p)
			}
			seq, _ = c.Move(ctx, float32(math.NaN()), 1)
			expectError(t, c, seq, schema.ErrorCode_ERROR_CODE_INVALID)
			seq, _ = c.Move(ctx, 1, float32(math.Inf(-1)))
			expectError(t, c, seq, schema.ErrorCode_ERROR_CODE_INVALID)
			seq, _ = c.Chat(ctx, "")
			expectError(t, c, seq, schema.ErrorCode_ERROR_CODE_INVALID)
			seq, _ = c.Chat(ctx, strings.Repeat("x", wire.MaxChatBytes-2)+"é") // wire.MaxChatBytes bytes: valid, and the frame fits 256
			if p := next(t, c, 5*time.Second); p.GetAck() == nil || p.AckSeq != seq {
				t.Fatalf("chat: %v", p)
			}
			seq, _ = c.Chat(ctx, strings.Repeat("x", wire.MaxChatBytes-1)+"é") // one byte too many (the world's limit too)
			expectError(t, c, seq, schema.ErrorCode_ERROR_CODE_INVALID)
			seq, _ = c.Chat(ctx, "ok")
			if p := next(t, c, 5*time.Second); p.GetAck() == nil || p.AckSeq != seq {
				t.Fatalf("chat: %v", p)
			}
			// Stale seq: resend an accepted seq.
			stale := &schema.ClientPacket{Seq: seq, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: 3, Y: 3}}}
			_ = c.SendRaw(ctx, stale)
			expectError(t, c, seq, schema.ErrorCode_ERROR_CODE_STALE_SEQ)
			// Oversized: error, then the connection closes.
			_ = c.SendBytes(ctx, make([]byte, 300))
			expectError(t, c, 0, schema.ErrorCode_ERROR_CODE_TOO_LARGE)
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("connection not closed after an oversized frame")
			}
			if n := h.streamCount(); n != 3 {
				t.Fatalf("stream holds %d commands, want 3 (join, chat, chat)", n)
			}
		})
	}
}

// TestInvalidTokensRefused: bad signature, expired, and a resume with a token
// not bound to the session are refused with UNAUTHENTICATED; without --dev a
// name alone is refused.
func TestInvalidTokensRefused(t *testing.T) {
	h := start(t, func(c *Config) { c.Dev = false })
	ctx := context.Background()
	good, err := h.gw.IssueToken("p-1", "one", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := h.gw.IssueToken("p-1", "one", -time.Second)
	tampered := good[:len(good)-2] + "AA"
	for name, hello := range map[string]*schema.Hello{
		"tampered":       {Token: tampered},
		"expired":        {Token: expired},
		"garbage":        {Token: "not-a-token"},
		"name-only":      {Name: "mallory"},
		"resume-foreign": {Token: good, ResumeSession: "s0123"},
	} {
		c := h.dial("tcp")
		_, err := c.Hello(ctx, hello)
		var se *client.ServerError
		if !errors.As(err, &se) || se.Code != schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
			t.Fatalf("%s: got %v, want UNAUTHENTICATED", name, err)
		}
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: connection stays open", name)
		}
	}
	c := h.dial("ws")
	w, err := c.Hello(ctx, &schema.Hello{Token: good})
	if err != nil || w.PlayerId != "p-1" {
		t.Fatalf("good token: %v %v", w, err)
	}
}

// TestResumeResendIsNotDoubleCounted: a client sends commands, loses its
// connection, resumes the session and resends them with the same seqs:
// JetStream deduplicates (Ack duplicate=true) and the stream holds each once.
func TestResumeResendIsNotDoubleCounted(t *testing.T) {
	h := start(t, nil)
	ctx := context.Background()
	c, w := h.login("tcp", "cat", "z2_2")
	var sent []*schema.ClientPacket
	for i := 0; i < 20; i++ {
		p := &schema.ClientPacket{Body: &schema.ClientPacket_Move{Move: &schema.Move{X: float32(i), Y: 5}}}
		if _, err := c.Send(ctx, p); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, p)
	}
	for range sent {
		if p := next(t, c, 5*time.Second); p.GetAck() == nil || p.GetAck().Duplicate {
			t.Fatalf("first send: %v", p)
		}
	}
	_ = c.Close()
	before := h.streamCount()

	for _, tr := range []string{"ws", "tcp"} {
		c2 := h.dial(tr)
		w2, err := c2.Hello(ctx, &schema.Hello{Token: w.Token, ResumeSession: w.SessionId})
		if err != nil {
			t.Fatal(err)
		}
		if w2.SessionId != w.SessionId {
			t.Fatalf("resumed session %s, want %s", w2.SessionId, w.SessionId)
		}
		waitfor.True(t, 5*time.Second, func() error {
			if len(h.gw.down.SubscribedZones()) != 1 {
				return errors.New("zone not restored")
			}
			return nil
		})
		for _, p := range sent {
			if err := c2.SendRaw(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		for _, want := range sent {
			p := next(t, c2, 5*time.Second)
			if p.AckSeq != want.Seq || p.GetAck() == nil || !p.GetAck().Duplicate {
				t.Fatalf("resend over %s: got %v, want duplicate ack of %d", tr, p, want.Seq)
			}
		}
		_ = c2.Close()
		w = w2
	}
	if after := h.streamCount(); after != before {
		t.Fatalf("stream grew from %d to %d on resends", before, after)
	}
}

// TestBusyNeverSilentDrop: with a tiny ring and window, a burst gets Busy for
// what does not fit; every seq is answered by exactly one of Ack, Busy or
// Error, and the stream holds exactly the acked ones.
func TestBusyNeverSilentDrop(t *testing.T) {
	h := start(t, func(c *Config) {
		c.RingSize = 4
		c.MaxPending = 2
		c.BatchSize = 2
		c.Rate = 1e6
		c.Burst = 1e6
		c.SendQueue = 1 << 16
	})
	ctx := context.Background()
	const n = 3000
	var conns []*client.Conn
	for i := 0; i < 4; i++ {
		c, _ := h.login("tcp", "b"+string(rune('a'+i)), "z0_0")
		conns = append(conns, c)
	}
	totals := map[string]int{}
	acked := 0
	for _, c := range conns {
		go func(c *client.Conn) {
			for i := 0; i < n; i++ {
				if _, err := c.Move(ctx, 1, 1); err != nil {
					return
				}
			}
		}(c)
	}
	for _, c := range conns {
		answered := map[uint64]string{}
		first := c.Seq() - uint64(0)
		_ = first
		for len(answered) < n {
			p := next(t, c, 10*time.Second)
			k := kind(p)
			if prev, dup := answered[p.AckSeq]; dup {
				t.Fatalf("seq %d answered twice: %s then %s", p.AckSeq, prev, k)
			}
			answered[p.AckSeq] = k
			totals[k]++
			if k == "ack" {
				acked++
			}
		}
	}
	t.Logf("answers: %v", totals)
	if totals["busy"] == 0 {
		t.Fatal("no Busy under a burst into a ring of 4 with 2 pending acks")
	}
	if got := h.streamCount(); got != uint64(acked+len(conns)) { // + the joins
		t.Fatalf("stream holds %d, acked %d (+%d joins)", got, acked, len(conns))
	}
}

// TestTraceContextFromPacketToAck: with a tracer provider installed, each
// command carries a traceparent header and its span ends at the PubAck with
// the stream sequence.
func TestTraceContextFromPacketToAck(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := start(t, func(c *Config) { c.TracerProvider, c.TraceSampleRatio = tp, 1 })
	h.login("tcp", "tracy", "z0_2")
	msgs := h.streamMsgs()
	if len(msgs) != 1 || msgs[0].Header.Get(wire.HeaderTraceParent) == "" {
		t.Fatalf("no traceparent on the command: %v", msgs[0].Header)
	}
	waitfor.True(t, 5*time.Second, func() error {
		for _, s := range rec.Ended() {
			if s.Name() != "gateway.command" {
				continue
			}
			tp := msgs[0].Header.Get(wire.HeaderTraceParent)
			if !strings.Contains(tp, s.SpanContext().TraceID().String()) {
				return errors.New("span trace id differs from the header")
			}
			for _, a := range s.Attributes() {
				if a.Key == "realm.stream_seq" && a.Value.AsInt64() == 1 {
					return nil
				}
			}
			return errors.New("span without stream_seq")
		}
		return errors.New("no ended gateway.command span")
	})
}

// TestMaxConns: a connection beyond --max-conns gets Busy and is closed.
func TestMaxConns(t *testing.T) {
	h := start(t, func(c *Config) { c.MaxConns = 2 })
	h.login("tcp", "one", "")
	h.login("ws", "two", "")
	c := h.dial("tcp")
	if p := next(t, c, 5*time.Second); p.GetBusy() == nil {
		t.Fatalf("third connection got %v, want Busy", p)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("third connection not closed")
	}
}

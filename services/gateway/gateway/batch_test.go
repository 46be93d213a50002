package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// awaitAcks reads c's packets until every seq of want has its Ack, and
// returns each seq's stream sequence; an Error or a second Ack fails.
func awaitAcks(t *testing.T, c *client.Conn, want []uint64) map[uint64]uint64 {
	t.Helper()
	got := map[uint64]uint64{}
	pending := map[uint64]bool{}
	for _, s := range want {
		pending[s] = true
	}
	deadline := time.After(15 * time.Second)
	for len(pending) > 0 {
		select {
		case p, ok := <-c.Packets():
			if !ok {
				t.Fatalf("connection closed: %v", c.Err())
			}
			if e := p.GetError(); e != nil {
				t.Fatalf("seq %d: error %v", p.AckSeq, e)
			}
			if a := p.GetAck(); a != nil {
				if _, dup := got[p.AckSeq]; dup {
					t.Fatalf("seq %d acked twice", p.AckSeq)
				}
				got[p.AckSeq] = a.StreamSeq
				delete(pending, p.AckSeq)
			}
		case <-deadline:
			t.Fatalf("no ack for %d seqs", len(pending))
		}
	}
	return got
}

// TestCommandBatches (--command-batch): the fresh commands of a zone that
// arrive within the linger share one CMD message; each command is acked once,
// with the stream sequence of the message that holds it; a batch holds only
// its subject's zone; a session's commands keep their order on the subject.
func TestCommandBatches(t *testing.T) {
	h := start(t, func(c *Config) { c.CommandBatch, c.CommandLinger, c.CommandBatchMax = true, 20*time.Millisecond, 8 })
	type player struct {
		c    *client.Conn
		w    *schema.Welcome
		zone string
		seqs []uint64
	}
	var ps []*player
	for i := range 5 {
		zone := "z1_1"
		if i == 4 {
			zone = "z0_0"
		}
		c, w := h.login("tcp", fmt.Sprintf("p%d", i), zone)
		ps = append(ps, &player{c: c, w: w, zone: zone})
	}
	ctx := context.Background()
	for round := range 6 {
		for _, p := range ps {
			seq, err := p.c.Move(ctx, float32(10+round), 20)
			if err != nil {
				t.Fatal(err)
			}
			p.seqs = append(p.seqs, seq)
		}
	}
	acked := map[string]uint64{} // command id -> the Ack's stream seq
	for _, p := range ps {
		for seq, ss := range awaitAcks(t, p.c, p.seqs) {
			acked[wire.CommandID(p.w.SessionId, seq)] = ss
		}
	}

	stored := map[string]uint64{} // command id -> the stream seq holding it
	last := map[string]uint64{}   // session -> the highest seq stored so far
	batches, inBatches := 0, 0
	for _, m := range h.streamMsgs() {
		zone := strings.TrimPrefix(m.Subject, wire.CommandPrefix)
		batch := wire.IsCommandBatch(m.Header)
		if batch {
			batches++
			if id := m.Header.Get(wire.HeaderMsgID); !strings.HasPrefix(id, "b/test/") {
				t.Fatalf("batch id %q, want b/test/<boot>/<n>", id)
			}
		}
		n := 0
		if err := wire.ForEachCommand(m.Header, m.Data, func(b []byte) error {
			n++
			cmd := &schema.Command{}
			if err := proto.Unmarshal(b, cmd); err != nil {
				return err
			}
			if cmd.Zone != zone {
				t.Fatalf("CMD seq %d (%s) holds a command of zone %s", m.Sequence, m.Subject, cmd.Zone)
			}
			if _, dup := stored[cmd.CommandId]; dup {
				t.Fatalf("%s stored twice", cmd.CommandId)
			}
			stored[cmd.CommandId] = m.Sequence
			if cmd.ClientSeq <= last[cmd.SessionId] {
				t.Fatalf("%s stored after seq %d of its session", cmd.CommandId, last[cmd.SessionId])
			}
			last[cmd.SessionId] = cmd.ClientSeq
			return nil
		}); err != nil {
			t.Fatalf("CMD seq %d: %v", m.Sequence, err)
		}
		if batch {
			inBatches += n
			if n > 8 {
				t.Fatalf("batch of %d commands, max 8", n)
			}
		}
	}
	for id, ss := range acked {
		if stored[id] != ss {
			t.Fatalf("%s acked at stream seq %d, stored at %d", id, ss, stored[id])
		}
	}
	// 4 players of z1_1 send 6 rounds at once: within a 20 ms linger most
	// of their 24 moves share batches.
	if batches == 0 || inBatches < 12 {
		t.Fatalf("%d batches holding %d commands: the moves were not batched", batches, inBatches)
	}
	t.Logf("%d commands acked, %d in %d batches", len(acked), inBatches, batches)
	var mm dto.Metric
	if err := h.gw.m.cmdBatch.Write(&mm); err != nil || mm.GetHistogram().GetSampleCount() == 0 {
		t.Fatalf("realm_gateway_command_batch_size observed nothing (%v)", err)
	}
}

// TestBatchedOutcomeUnknownResend: commands of a batch whose PubAck never
// comes (acks stalled past the publish timeout and retries; the stream did
// store the batch) are each answered OUTCOME_UNKNOWN. A resend with the same
// seq is published alone under the command's own id, which JetStream cannot
// match with the batch's id: it is stored again and acked as new (not
// duplicate), the cost docs/command-batches.md accepts (the world applies it
// once: its session seq window). A resend with another body is still refused
// SEQ_REUSED by the gateway.
func TestBatchedOutcomeUnknownResend(t *testing.T) {
	h, px := startBehindStall(t, func(c *Config) { c.CommandBatch, c.CommandLinger = true, 50*time.Millisecond })
	ctx := context.Background()
	c, w := h.login("tcp", "amb", "z1_1")

	px.stall(1500 * time.Millisecond)
	stallEnd := time.Now().Add(1500 * time.Millisecond)
	moves := map[uint64]*schema.ClientPacket{}
	for i := range 3 {
		p := &schema.ClientPacket{Body: &schema.ClientPacket_Move{Move: &schema.Move{X: float32(5 + i), Y: 5}}}
		seq, err := c.Send(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		p.Seq = seq
		moves[seq] = p
	}
	for range moves {
		p := next(t, c, 5*time.Second)
		if e := p.GetError(); e == nil || e.Code != schema.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN || moves[p.AckSeq] == nil {
			t.Fatalf("got %v, want OUTCOME_UNKNOWN for one of the batched moves", p)
		}
	}
	if time.Now().After(stallEnd) {
		t.Fatal("the answers came after the stall: the test did not exercise the ambiguous path")
	}
	time.Sleep(time.Until(stallEnd))
	var one uint64
	for seq := range moves {
		one = seq
		break
	}
	if err := c.SendRaw(ctx, &schema.ClientPacket{Seq: one, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: 99, Y: 99}}}); err != nil {
		t.Fatal(err)
	}
	expectError(t, c, one, schema.ErrorCode_ERROR_CODE_SEQ_REUSED)
	for _, p := range moves {
		if err := c.SendRaw(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	acks := awaitAcks(t, c, func() (s []uint64) {
		for seq := range moves {
			s = append(s, seq)
		}
		return s
	}())
	stored := map[string]int{}
	for _, m := range h.streamMsgs() {
		_ = wire.ForEachCommand(m.Header, m.Data, func(b []byte) error {
			cmd := &schema.Command{}
			if err := proto.Unmarshal(b, cmd); err == nil {
				stored[cmd.CommandId]++
			}
			return nil
		})
	}
	for seq := range moves {
		id := wire.CommandID(w.SessionId, seq)
		if stored[id] != 2 {
			t.Fatalf("%s stored %d times, want twice (in the batch, then alone)", id, stored[id])
		}
		if acks[seq] == 0 {
			t.Fatalf("seq %d: no stream seq in its ack", seq)
		}
	}
}

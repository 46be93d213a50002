package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/realmstream/realmstream/libs/schema"
)

// TestAckRidesTheNextUpdateFrame (--ack-hold): with a hold of 2 s (the join
// Ack comes after it), the Ack of a stored command is not written on its own; the zone's
// next tick writes the update frame and the Ack in one socket write.
func TestAckRidesTheNextUpdateFrame(t *testing.T) {
	h := start(t, func(c *Config) { c.AckHold = 2 * time.Second; c.SendQueueAge = 10 * time.Second })
	const zone = "z0_1"
	c := fanoutClient(t, h, "tcp", "held", zone, 3)
	waitSubscribed(t, h, zone)
	writes := testutil.ToFloat64(h.gw.m.writes)
	seq, err := c.Move(context.Background(), 551, 550) // stays in cell 55
	if err != nil {
		t.Fatal(err)
	}
	// The command is stored (acked by JetStream) but its Ack is held.
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(h.gw.m.acks.WithLabelValues("false")) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case p := <-c.Packets():
		t.Fatalf("got %v before any update: the Ack was written on its own", p)
	case <-time.After(200 * time.Millisecond):
	}
	publishTick(t, h, &schema.ZoneTick{Zone: zone, Tick: 9, Cells: tickCells(zone, 9, 55)})
	var gotAck, gotUpdate bool
	for !gotAck || !gotUpdate {
		p := next(t, c, 5*time.Second)
		switch {
		case p.GetAck() != nil && p.AckSeq == seq:
			gotAck = true
		case p.GetUpdates() != nil:
			gotUpdate = true
		default:
			t.Fatalf("unexpected %v", p)
		}
	}
	if got := testutil.ToFloat64(h.gw.m.writes) - writes; got != 1 {
		t.Fatalf("%v socket writes for the update frame and the held Ack, want 1", got)
	}
}

// TestHeldAckFlushedWithoutUpdates: with no update frame coming, a held
// Ack goes out on its own once it has waited --ack-hold.
func TestHeldAckFlushedWithoutUpdates(t *testing.T) {
	h := start(t, func(c *Config) { c.AckHold = 100 * time.Millisecond })
	c, _ := h.login("tcp", "lone", "z2_2")
	sent := time.Now()
	seq, err := c.Send(context.Background(), move(13))
	if err != nil {
		t.Fatal(err)
	}
	p := next(t, c, 5*time.Second)
	if p.GetAck() == nil || p.AckSeq != seq {
		t.Fatalf("got %v, want the Ack of seq %d", p, seq)
	}
	if since := time.Since(sent); since < 100*time.Millisecond {
		t.Fatalf("Ack after %v, before the hold of 100ms: it was not held", since)
	}
}

// TestRefusalSpanDropsExported: the gateway's count of refusals beyond the
// span budget is a series of its /metrics registry.
func TestRefusalSpanDropsExported(t *testing.T) {
	h := start(t, nil)
	if n, err := testutil.GatherAndCount(h.gw.ops.Registry, "realm_gateway_refusal_spans_dropped_total"); err != nil || n != 1 {
		t.Fatalf("realm_gateway_refusal_spans_dropped_total: %d series, %v; want 1", n, err)
	}
}

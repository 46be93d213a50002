package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/fanout"
)

// fanoutClient logs in with protocol version ver, joins zone and stands at
// (550, 550) (cell 55), with its move acked.
func fanoutClient(t *testing.T, h *harness, transport, name, zone string, ver uint32) *client.Conn {
	t.Helper()
	ctx := context.Background()
	c := h.dial(transport)
	w, err := c.Hello(ctx, &schema.Hello{Name: name, ProtocolVersion: ver})
	if err != nil {
		t.Fatal(err)
	}
	if w.ProtocolVersion != ver {
		t.Fatalf("welcome protocol %d, want %d", w.ProtocolVersion, ver)
	}
	for _, send := range []func() (uint64, error){
		func() (uint64, error) { return c.Join(ctx, zone) },
		func() (uint64, error) { return c.Move(ctx, 550, 550) },
	} {
		seq, err := send()
		if err != nil {
			t.Fatal(err)
		}
		if p := next(t, c, 10*time.Second); p.AckSeq != seq || p.GetAck() == nil {
			t.Fatalf("got %v, want the ack of %d", p, seq)
		}
	}
	return c
}

func publishTick(t *testing.T, h *harness, zt *schema.ZoneTick) {
	t.Helper()
	b, err := proto.Marshal(zt)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.nc.Publish(wire.UpdateTickSubject(zt.Zone), b); err != nil {
		t.Fatal(err)
	}
}

func tickCells(zone string, tick uint64, cells ...uint32) []*schema.ZoneUpdate {
	var out []*schema.ZoneUpdate
	for _, c := range cells {
		out = append(out, &schema.ZoneUpdate{Zone: zone, Cell: c, Tick: tick, Entities: []*schema.EntityView{{Id: fmt.Sprintf("npc-%d", c), X: 1, Y: 2}}})
	}
	return out
}

// frameCells reads n packets and returns, per packet, its body kind and cells.
func frameCells(t *testing.T, c *client.Conn, n int) (kinds []string, cells [][]uint32) {
	t.Helper()
	for range n {
		p := next(t, c, 5*time.Second)
		var cs []uint32
		for _, u := range client.ZoneUpdates(p) {
			cs = append(cs, u.Cell)
		}
		kinds, cells = append(kinds, kind(p)), append(cells, cs)
	}
	return kinds, cells
}

// TestOneFramePerTick: a zone tick published as one ZoneTick reaches a
// protocol 3 client (TCP and WebSocket) as ONE Updates frame holding the
// cells of its area of interest in cell order, and a protocol 2 client as
// one Update per cell; each client's frames of the tick go out in one
// socket write.
func TestOneFramePerTick(t *testing.T) {
	h := start(t, nil)
	const zone = "z0_1"
	c3 := fanoutClient(t, h, "tcp", "v3", zone, 3)
	ws3 := fanoutClient(t, h, "ws", "v3ws", zone, 3)
	c2 := fanoutClient(t, h, "tcp", "v2", zone, 2)
	waitSubscribed(t, h, zone)
	writes := testutil.ToFloat64(h.gw.m.writes)
	// The AOI of cell 55 and two cells outside it.
	near := []uint32{44, 45, 46, 54, 55, 56, 64, 65, 66}
	publishTick(t, h, &schema.ZoneTick{Zone: zone, Tick: 7, Cells: tickCells(zone, 7, 0, 44, 45, 46, 54, 55, 56, 64, 65, 66, 99)})
	for _, c := range []*client.Conn{c3, ws3} {
		kinds, cells := frameCells(t, c, 1)
		if kinds[0] != "*schema.ServerPacket_Updates" || fmt.Sprint(cells[0]) != fmt.Sprint(near) {
			t.Fatalf("protocol 3: got %s %v, want one Updates frame of %v", kinds[0], cells[0], near)
		}
	}
	kinds, cells := frameCells(t, c2, len(near))
	for i := range near {
		if kinds[i] != "*schema.ServerPacket_Update" || len(cells[i]) != 1 || cells[i][0] != near[i] {
			t.Fatalf("protocol 2: frame %d is %s %v, want Update of cell %d", i, kinds[i], cells[i], near[i])
		}
	}
	if got := testutil.ToFloat64(h.gw.m.writes) - writes; got != 3 {
		t.Fatalf("%v socket writes for one tick to 3 clients, want 3", got)
	}
	if got := testutil.ToFloat64(h.gw.m.updateFrames); got != 1+1+9 {
		t.Fatalf("update frames metric %v, want 11", got)
	}
}

// TestPerCellUpdatesMerged: a world that publishes one ZoneUpdate per cell
// (upd.<zone>.<cell>) is merged per tick: a frame never mixes ticks, every
// cell arrives once and in order, and a burst of a tick's cells takes fewer
// frames than cells.
func TestPerCellUpdatesMerged(t *testing.T) {
	h := start(t, nil)
	const zone = "z1_2"
	c := fanoutClient(t, h, "tcp", "merge", zone, 3)
	waitSubscribed(t, h, zone)
	near := []uint32{44, 45, 46, 54, 55, 56, 64, 65, 66}
	const ticks = 20
	for tick := uint64(1); tick <= ticks; tick++ {
		for _, u := range tickCells(zone, tick, append([]uint32{3}, near...)...) {
			publishUpdate(t, h.nc, u)
		}
	}
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	frames, seen := 0, 0
	for seen < ticks*len(near) {
		p := next(t, c, 5*time.Second)
		us := client.ZoneUpdates(p)
		if len(us) == 0 {
			t.Fatalf("unexpected %v", p)
		}
		frames++
		for _, u := range us {
			if want := uint64(seen/len(near) + 1); u.Tick != want || u.Cell != near[seen%len(near)] {
				t.Fatalf("cell view %d: tick %d cell %d, want tick %d cell %d", seen, u.Tick, u.Cell, want, near[seen%len(near)])
			}
			seen++
		}
	}
	t.Logf("%d ticks of %d cells in %d frames", ticks, len(near), frames)
	if frames >= ticks*len(near) {
		t.Fatalf("%d frames for %d cell views: nothing merged", frames, seen)
	}
}

// TestBigTickSplitsFrames: a tick whose cells exceed the frame bound comes
// in a few frames of whole cells, each within the bound.
func TestBigTickSplitsFrames(t *testing.T) {
	h := start(t, nil)
	const zone = "z2_2"
	c := fanoutClient(t, h, "tcp", "big", zone, 3)
	waitSubscribed(t, h, zone)
	near := []uint32{44, 45, 46, 54, 55, 56, 64, 65, 66}
	cells := tickCells(zone, 1, near...)
	for _, u := range cells { // ~9 KiB per cell: 81 KiB in all
		for i := range 100 {
			u.Entities = append(u.Entities, &schema.EntityView{Id: fmt.Sprintf("npc-%d-%d", u.Cell, i), Name: strings.Repeat("n", 80)})
		}
	}
	publishTick(t, h, &schema.ZoneTick{Zone: zone, Tick: 1, Cells: cells})
	var got []uint32
	frames := 0
	for len(got) < len(near) {
		p := next(t, c, 5*time.Second)
		if size := proto.Size(p); size > fanout.MaxUpdatesFrame {
			t.Fatalf("frame of %d bytes, bound %d", size, fanout.MaxUpdatesFrame)
		}
		frames++
		for _, u := range client.ZoneUpdates(p) {
			got = append(got, u.Cell)
			if len(u.Entities) != 101 {
				t.Fatalf("cell %d has %d entities", u.Cell, len(u.Entities))
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(near) || frames < 3 || frames > 5 {
		t.Fatalf("cells %v in %d frames", got, frames)
	}
}

func waitSubscribed(t *testing.T, h *harness, zone string) {
	t.Helper()
	waitfor.True(t, 5*time.Second, func() error {
		if z := h.gw.down.SubscribedZones(); len(z) != 1 || z[0] != zone {
			return fmt.Errorf("subscribed zones %v", z)
		}
		return nil
	})
	// The subscriptions reach the server before anything we publish next.
	if err := h.gw.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestNewlyVisibleCellsFromCache: the world sends only the cells that
// changed, so a client that moves (or joins) is sent the last state of each
// cell that comes into its view, without the lines (chat, combat, removals)
// that state arrived with, in its next frame.
func TestNewlyVisibleCellsFromCache(t *testing.T) {
	h := start(t, nil)
	const zone = "z0_2"
	c := fanoutClient(t, h, "tcp", "mover", zone, 3) // at cell 55
	waitSubscribed(t, h, zone)
	zero := &schema.ZoneUpdate{Zone: zone, Cell: 0, Tick: 1, Entities: []*schema.EntityView{{Id: "npc-idle", X: 10, Y: 10}},
		Chat: []*schema.ChatLine{{From: "npc-idle", Text: "said once"}}, Removed: []string{"gone"}}
	publishTick(t, h, &schema.ZoneTick{Zone: zone, Tick: 1, Cells: []*schema.ZoneUpdate{zero, tickCells(zone, 1, 55)[0]}})
	if _, cells := frameCells(t, c, 1); fmt.Sprint(cells[0]) != "[55]" {
		t.Fatalf("tick 1: cells %v, want [55]", cells[0])
	}
	// Walk to cell 1 (x 150): cell 0 comes into view, unchanged since tick 1.
	seq, _ := c.Move(context.Background(), 150, 50)
	if p := next(t, c, 5*time.Second); p.AckSeq != seq {
		t.Fatalf("move: %v", p)
	}
	publishTick(t, h, &schema.ZoneTick{Zone: zone, Tick: 2, Cells: tickCells(zone, 2, 2)})
	p := next(t, c, 5*time.Second)
	us := client.ZoneUpdates(p)
	if len(us) != 2 || us[0].Cell != 0 || us[1].Cell != 2 {
		t.Fatalf("tick 2: got %v, want the state of cell 0 and the update of cell 2", p)
	}
	if got := us[0]; len(got.Entities) != 1 || got.Entities[0].Id != "npc-idle" || len(got.Chat) != 0 || len(got.Removed) != 0 {
		t.Fatalf("cell 0 from the cache: %v, want its entity and no lines", got)
	}
	// Seen once: the next tick brings only what it carries.
	publishTick(t, h, &schema.ZoneTick{Zone: zone, Tick: 3, Cells: tickCells(zone, 3, 1)})
	if _, cells := frameCells(t, c, 1); fmt.Sprint(cells[0]) != "[1]" {
		t.Fatalf("tick 3: cells %v, want [1]", cells[0])
	}
}

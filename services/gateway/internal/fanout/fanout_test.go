package fanout

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/worldmap"
)

// sink counts what the fan-out queues to one client.
type sink struct {
	frames, bytes int
	closed        bool
}

func (s *sink) SendFrames(b []byte, n int, _ int64) { s.frames += n; s.bytes += len(b) }
func (s *sink) Closed() bool                        { return s.closed }

type noTrace struct{}

func (noTrace) Fanout(*nats.Msg, string, time.Time) {}

func noSubscribe(string, nats.MsgHandler) (*nats.Subscription, error) {
	return nil, errors.New("no NATS in this test")
}

func newTestFanout() *Fanout {
	return New(noSubscribe, worldmap.Default(), Metrics{Updates: prometheus.NewCounter(prometheus.CounterOpts{Name: "u"}),
		UpdateFrames: prometheus.NewCounter(prometheus.CounterOpts{Name: "f"})}, noTrace{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// tick encodes one ZoneUpdate per cell of cells, each with one entity.
func tick(t testing.TB, m worldmap.Map, zone string, n uint64, cells ...uint32) [][]byte {
	var out [][]byte
	for _, c := range cells {
		side := uint32(m.CellsPerSide())
		x, y := (float32(c%side)+0.5)*m.CellSize, (float32(c/side)+0.5)*m.CellSize
		b, err := proto.Marshal(&schema.ZoneUpdate{Zone: zone, Cell: c, Tick: n, Entities: []*schema.EntityView{{Id: "npc", X: x, Y: y, Hp: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestDeliverAOIAndShapes: a tick reaches the members whose area of interest
// holds its cells, protocol 3 as one frame, protocol 2 as one frame per
// cell; a closed client is not joined; a member that left gets nothing.
func TestDeliverAOIAndShapes(t *testing.T) {
	d := newTestFanout()
	m := d.grid
	const zone = "z1_1"
	centre := m.CellOf(m.ZoneSize/2, m.ZoneSize/2)
	near := m.NearCells(nil, centre)
	var v3, v2, far, gone, closed sink
	closed.closed = true
	members := map[*sink]*Member{&v3: {}, &v2: {}, &far: {}, &gone: {}, &closed: {}}
	for s, mb := range members {
		mb.Init(s)
		mb.SetProtocol(3)
	}
	members[&v2].SetProtocol(2)
	d.Join(members[&v3], "p-v3", zone, int64(centre))
	d.Join(members[&v2], "p-v2", zone, int64(centre))
	d.Join(members[&far], "p-far", zone, 0)
	d.Join(members[&gone], "p-gone", zone, int64(centre))
	d.Join(members[&closed], "p-closed", zone, int64(centre))
	d.Leave(members[&gone])
	if z := members[&closed].Zone(); z != "" {
		t.Fatalf("a closed client joined %q", z)
	}
	if z := d.SubscribedZones(); len(z) != 1 || z[0] != zone {
		t.Fatalf("zones %v", z)
	}
	d.Deliver(zone, tick(t, m, zone, 1, near[0], near[len(near)-1]))
	if v3.frames != 1 || v2.frames != 2 || gone.frames != 0 || closed.frames != 0 {
		t.Fatalf("frames: v3 %d (want 1), v2 %d (want 2), left %d, closed %d", v3.frames, v2.frames, gone.frames, closed.frames)
	}
	if far.frames != 0 {
		t.Fatalf("a member far away got %d frames", far.frames)
	}
}

// TestDeliverAllocatesNothing: once its buffers have grown, a tick's
// fan-out (scan, positions, per-client frames, queueing) allocates nothing.
func TestDeliverAllocatesNothing(t *testing.T) {
	d := newTestFanout()
	m := d.grid
	const zone = "z1_1"
	centre := m.CellOf(m.ZoneSize/2, m.ZoneSize/2)
	var sinks [50]sink
	var members [50]Member
	for i := range members {
		members[i].Init(&sinks[i])
		members[i].SetProtocol(uint32(2 + i%2))
		d.Join(&members[i], "p-"+string(rune('a'+i)), zone, int64(centre))
	}
	cells := tick(t, m, zone, 1, m.NearCells(nil, centre)...)
	for range 3 {
		d.Deliver(zone, cells)
	}
	if a := testing.AllocsPerRun(200, func() { d.Deliver(zone, cells) }); a != 0 {
		t.Fatalf("a tick's fan-out allocates %v times", a)
	}
	if sinks[0].frames == 0 {
		t.Fatal("nothing delivered")
	}
}

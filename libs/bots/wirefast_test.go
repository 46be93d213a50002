package bots

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
)

type collect struct {
	zones []string
	ents  []entity
}

func (c *collect) entity(zone []byte, e *entity) {
	c.zones = append(c.zones, string(zone))
	cp := *e
	cp.id = append([]byte(nil), e.id...)
	c.ents = append(c.ents, cp)
}

// TestScanMatchesProto checks the allocation-free decoder against the
// generated code on the packets it reads.
func TestScanMatchesProto(t *testing.T) {
	up := &schema.ServerPacket{AckSeq: 0, Body: &schema.ServerPacket_Update{Update: &schema.Update{ZoneUpdate: &schema.ZoneUpdate{
		Zone: "z1_2", Cell: 7, Tick: 99, ServerTimeNs: 12345,
		Entities: []*schema.EntityView{
			{Id: "p-a", Name: "a", X: 1.5, Y: 999.25, Hp: 100, LastInputSeq: 42},
			{Id: "p-b", Name: "b", X: -3, Y: 0, Hp: 0, Dead: true, LastInputSeq: 1 << 40},
		},
		Chat:    []*schema.ChatLine{{From: "p-a", Text: "hi"}},
		Removed: []string{"p-c"},
	}}}}
	b, _ := proto.Marshal(up)
	ack, field, body, err := scanServer(b)
	if err != nil || ack != 0 || field != fServerUpdate {
		t.Fatalf("scan: %d %d %v", ack, field, err)
	}
	var c collect
	if n, err := scanUpdate(body, &c, new(entity)); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	if len(c.ents) != 2 || c.zones[0] != "z1_2" || string(c.ents[0].id) != "p-a" || c.ents[0].x != 1.5 || c.ents[0].y != 999.25 ||
		c.ents[0].lastSeq != 42 || c.ents[0].dead || !c.ents[1].dead || c.ents[1].lastSeq != 1<<40 || c.ents[1].x != -3 {
		t.Fatalf("entities %+v zones %v", c.ents, c.zones)
	}
	a, _ := proto.Marshal(&schema.ServerPacket{AckSeq: 77, Body: &schema.ServerPacket_Ack{Ack: &schema.Ack{StreamSeq: 1 << 33, Duplicate: true}}})
	ack, field, body, err = scanServer(a)
	if err != nil || ack != 77 || field != fServerAck {
		t.Fatalf("ack scan: %d %d %v", ack, field, err)
	}
	if ss, dup, err := scanAck(body); err != nil || ss != 1<<33 || !dup {
		t.Fatalf("ack: %d %v %v", ss, dup, err)
	}
	// An empty Ack (stream seq 0, not duplicate) has a zero-length body.
	e, _ := proto.Marshal(&schema.ServerPacket{AckSeq: 5, Body: &schema.ServerPacket_Ack{Ack: &schema.Ack{}}})
	if ack, field, _, err := scanServer(e); err != nil || ack != 5 || field != fServerAck {
		t.Fatalf("empty ack: %d %d %v", ack, field, err)
	}
	if _, _, _, err := scanServer([]byte{0x0a, 0xff}); err == nil {
		t.Fatal("truncated packet accepted")
	}
}

func TestScanUpdateAllocatesNothing(t *testing.T) {
	up := &schema.ServerPacket{Body: &schema.ServerPacket_Update{Update: &schema.Update{ZoneUpdate: &schema.ZoneUpdate{Zone: "z0_0",
		Entities: []*schema.EntityView{{Id: "p-a", X: 1, Y: 2, LastInputSeq: 3}, {Id: "p-b", X: 4, Y: 5}}}}}}
	b, _ := proto.Marshal(up)
	s, err := New(Config{Gateways: []Gateway{{TCP: "127.0.0.1:1"}}, Bots: 1})
	if err != nil {
		t.Fatal(err)
	}
	bt := s.bots[0]
	bt.player = "p-a"
	bt.now = time.Now()
	if n := testing.AllocsPerRun(100, func() {
		_, _, body, _ := scanServer(b)
		_, _ = scanUpdate(body, bt, &bt.ent)
	}); n != 0 {
		t.Fatalf("%v allocations per update", n)
	}
}

// TestScanUpdatesMatchesProto: an Updates frame (protocol 3) yields every
// entity of every cell, each with its own cell's zone.
func TestScanUpdatesMatchesProto(t *testing.T) {
	p := &schema.ServerPacket{Body: &schema.ServerPacket_Updates{Updates: &schema.Updates{ZoneUpdates: []*schema.ZoneUpdate{
		{Zone: "z0_0", Cell: 1, Entities: []*schema.EntityView{{Id: "p-a", X: 1, Y: 2, LastInputSeq: 3}, {Id: "p-b", X: 4, Y: 5, Dead: true}}},
		{Zone: "z0_0", Cell: 2},
		{Zone: "z1_0", Cell: 3, Entities: []*schema.EntityView{{Id: "p-c", X: 7, Y: 8}}},
	}}}}
	b, _ := proto.Marshal(p)
	_, field, body, err := scanServer(b)
	if err != nil || field != fServerUpdates {
		t.Fatalf("scan: %d %v", field, err)
	}
	var c collect
	n, err := scanUpdate(body, &c, new(entity))
	if err != nil || n != 3 || len(c.ents) != 3 {
		t.Fatalf("%d cells, %d entities, %v", n, len(c.ents), err)
	}
	checkAgainstProto(t, b, &c)
}

// checkAgainstProto fails unless c holds exactly the entities (and zones) of
// the update packet b as proto.Unmarshal reads it.
func checkAgainstProto(t *testing.T, b []byte, c *collect) {
	t.Helper()
	var p schema.ServerPacket
	if err := proto.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	var cells []*schema.ZoneUpdate
	if u := p.GetUpdate(); u != nil && u.ZoneUpdate != nil {
		cells = append(cells, u.ZoneUpdate)
	}
	cells = append(cells, p.GetUpdates().GetZoneUpdates()...)
	i := 0
	for _, u := range cells {
		for _, e := range u.Entities {
			if i >= len(c.ents) {
				t.Fatalf("%x: scan saw %d entities, proto more", b, len(c.ents))
			}
			g := c.ents[i]
			if c.zones[i] != u.Zone || string(g.id) != e.Id || !sameFloat(g.x, e.X) || !sameFloat(g.y, e.Y) || g.dead != e.Dead || g.lastSeq != e.LastInputSeq {
				t.Fatalf("%x: entity %d: scan %q %+v, proto zone %q %v", b, i, c.zones[i], g, u.Zone, e)
			}
			i++
		}
	}
	if i != len(c.ents) {
		t.Fatalf("%x: scan saw %d entities, proto %d", b, len(c.ents), i)
	}
}

func sameFloat(a, b float32) bool { return a == b || a != a && b != b }

func TestScanUpdatesAllocatesNothing(t *testing.T) {
	var cells []*schema.ZoneUpdate
	for i := range 9 {
		cells = append(cells, &schema.ZoneUpdate{Zone: "z0_0", Cell: uint32(i), Entities: []*schema.EntityView{{Id: "p-a", X: 1, Y: 2, LastInputSeq: 3}, {Id: "p-b", X: 4, Y: 5}}})
	}
	b, _ := proto.Marshal(&schema.ServerPacket{Body: &schema.ServerPacket_Updates{Updates: &schema.Updates{ZoneUpdates: cells}}})
	s, err := New(Config{Gateways: []Gateway{{TCP: "127.0.0.1:1"}}, Bots: 1})
	if err != nil {
		t.Fatal(err)
	}
	bt := s.bots[0]
	bt.player, bt.zone = "p-a", "z0_0"
	bt.now = time.Now()
	if n := testing.AllocsPerRun(100, func() {
		_, _, body, _ := scanServer(b)
		_, _ = scanUpdate(body, bt, &bt.ent)
	}); n != 0 {
		t.Fatalf("%v allocations per Updates frame", n)
	}
}

// FuzzScanServer: on any input the decoder does not panic, and on an update
// packet (either shape) that proto.Unmarshal accepts it reads the same
// entities.
func FuzzScanServer(f *testing.F) {
	b, _ := proto.Marshal(&schema.ServerPacket{AckSeq: 3, Body: &schema.ServerPacket_Update{Update: &schema.Update{ZoneUpdate: &schema.ZoneUpdate{Zone: "z0_0",
		Entities: []*schema.EntityView{{Id: "p-a", X: 1, Y: 2, LastInputSeq: 3}}}}}})
	f.Add(b)
	b, _ = proto.Marshal(&schema.ServerPacket{Body: &schema.ServerPacket_Updates{Updates: &schema.Updates{ZoneUpdates: []*schema.ZoneUpdate{
		{Zone: "z0_0", Cell: 4, Entities: []*schema.EntityView{{Id: "p-a", X: 1, Y: 2, LastInputSeq: 3}}}, {Zone: "z0_1", Entities: []*schema.EntityView{{Id: "q", Dead: true}}}}}}})
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		_, field, body, err := scanServer(p)
		if err != nil {
			return
		}
		var c collect
		switch field {
		case fServerUpdate, fServerUpdates:
			_, err := scanUpdate(body, &c, new(entity))
			var sp schema.ServerPacket
			if proto.Unmarshal(p, &sp) != nil || sp.GetUpdate() == nil && sp.GetUpdates() == nil {
				return
			}
			if err != nil {
				t.Fatalf("%x: proto accepts, scan fails: %v", p, err)
			}
			checkAgainstProto(t, p, &c)
		case fServerAck:
			_, _, _ = scanAck(body)
		}
	})
}

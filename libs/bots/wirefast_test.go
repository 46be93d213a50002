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
	if err := scanUpdate(body, &c, new(entity)); err != nil {
		t.Fatal(err)
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
		_ = scanUpdate(body, bt, &bt.ent)
	}); n != 0 {
		t.Fatalf("%v allocations per update", n)
	}
}

func FuzzScanServer(f *testing.F) {
	b, _ := proto.Marshal(&schema.ServerPacket{AckSeq: 3, Body: &schema.ServerPacket_Update{Update: &schema.Update{ZoneUpdate: &schema.ZoneUpdate{Zone: "z0_0",
		Entities: []*schema.EntityView{{Id: "p-a", X: 1, Y: 2, LastInputSeq: 3}}}}}})
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		_, field, body, err := scanServer(p)
		if err != nil {
			return
		}
		var c collect
		switch field {
		case fServerUpdate:
			_ = scanUpdate(body, &c, new(entity))
		case fServerAck:
			_, _, _ = scanAck(body)
		}
	})
}

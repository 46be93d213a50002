package packet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
)

type seen struct {
	ids  []string
	x, y []float32
}

func (s *seen) Entity(id []byte, x, y float32) {
	s.ids = append(s.ids, string(id))
	s.x, s.y = append(s.x, x), append(s.y, y)
}

func sampleCell(cell uint32, n int) *schema.ZoneUpdate {
	u := &schema.ZoneUpdate{Zone: "z1_1", Cell: cell, Tick: 77, ServerTimeNs: 1764000000000000001,
		Chat:    []*schema.ChatLine{{From: "ann", Text: "hi", Scope: schema.ChatScope_CHAT_SCOPE_NEARBY}},
		Combat:  []*schema.CombatLine{{Attacker: "a", Target: "b", Damage: 3}},
		Removed: []string{"gone"}}
	for i := range n {
		u.Entities = append(u.Entities, &schema.EntityView{Id: fmt.Sprintf("p-%d-%d", cell, i), Name: "n", X: float32(i) + 0.5, Y: float32(cell), Hp: 100, LastInputSeq: uint64(i)})
	}
	return u
}

// TestUpdateCodec checks the hand-written codec against the generated one:
// what the scanners read is what proto.Unmarshal reads, and the frames the
// appenders write unmarshal to the packets proto.Marshal would write.
func TestUpdateCodec(t *testing.T) {
	cells := []*schema.ZoneUpdate{sampleCell(3, 2), sampleCell(14, 0), sampleCell(99, 5)}
	var enc [][]byte
	for _, u := range cells {
		b, err := proto.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		var s seen
		cell, tick, err := ScanZoneUpdate(b, &s)
		if err != nil || cell != u.Cell || tick != u.Tick || len(s.ids) != len(u.Entities) {
			t.Fatalf("scan cell %d: got cell %d tick %d %d entities, err %v", u.Cell, cell, tick, len(s.ids), err)
		}
		if pc, pt, err := PeekZoneUpdate(b); err != nil || pc != u.Cell || pt != u.Tick {
			t.Fatalf("peek cell %d: got cell %d tick %d, err %v", u.Cell, pc, pt, err)
		}
		for i, e := range u.Entities {
			if s.ids[i] != e.Id || s.x[i] != e.X || s.y[i] != e.Y {
				t.Fatalf("entity %d: got %s %v %v, want %s %v %v", i, s.ids[i], s.x[i], s.y[i], e.Id, e.X, e.Y)
			}
		}
		enc = append(enc, b)
	}

	tb, _ := proto.Marshal(&schema.ZoneTick{Zone: "z1_1", Tick: 77, ServerTimeNs: 5, Cells: cells})
	var got [][]byte
	tick, err := ScanZoneTick(tb, func(zu []byte) error { got = append(got, zu); return nil })
	if err != nil || tick != 77 || len(got) != len(enc) {
		t.Fatalf("scan tick: tick %d, %d cells, err %v", tick, len(got), err)
	}
	for i := range got {
		if !bytes.Equal(got[i], enc[i]) {
			t.Fatalf("tick cell %d differs", i)
		}
	}

	frame := AppendUpdatesFrame([]byte("prefix"), enc)
	body := unframe(t, frame[len("prefix"):])
	var p schema.ServerPacket
	if err := proto.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(&schema.ServerPacket{Body: &schema.ServerPacket_Updates{Updates: &schema.Updates{ZoneUpdates: cells}}})
	if !bytes.Equal(body, want) {
		t.Fatalf("Updates frame:\n got %x\nwant %x", body, want)
	}
	inner := 0
	for _, c := range enc {
		inner += UpdatesEntrySize(len(c))
	}
	if UpdatesSize(inner) != len(body) {
		t.Fatalf("UpdatesSize %d, packet %d bytes", UpdatesSize(inner), len(body))
	}

	one := unframe(t, AppendUpdateFrame(nil, enc[2]))
	want, _ = proto.Marshal(&schema.ServerPacket{Body: &schema.ServerPacket_Update{Update: &schema.Update{ZoneUpdate: cells[2]}}})
	if !bytes.Equal(one, want) {
		t.Fatalf("Update frame:\n got %x\nwant %x", one, want)
	}
	// A big cell (length varint of 2+ bytes) and an empty list.
	big := sampleCell(5, 200)
	bb, _ := proto.Marshal(big)
	want, _ = proto.Marshal(&schema.ServerPacket{Body: &schema.ServerPacket_Updates{Updates: &schema.Updates{ZoneUpdates: []*schema.ZoneUpdate{big}}}})
	if got := unframe(t, AppendUpdatesFrame(nil, [][]byte{bb})); !bytes.Equal(got, want) {
		t.Fatal("big Updates frame differs")
	}
	want, _ = proto.Marshal(&schema.ServerPacket{Body: &schema.ServerPacket_Updates{Updates: &schema.Updates{}}})
	if got := unframe(t, AppendUpdatesFrame(nil, nil)); !bytes.Equal(got, want) {
		t.Fatalf("empty Updates frame: got %x want %x", got, want)
	}
}

func TestAppendCellState(t *testing.T) {
	u := sampleCell(12, 3)
	b, _ := proto.Marshal(u)
	st, ents, err := AppendCellState([]byte("x"), b)
	if err != nil || !ents || string(st[:1]) != "x" {
		t.Fatal(ents, err)
	}
	var got schema.ZoneUpdate
	if err := proto.Unmarshal(st[1:], &got); err != nil {
		t.Fatal(err)
	}
	u.Chat, u.Combat, u.Removed = nil, nil, nil
	if !proto.Equal(&got, u) {
		t.Fatalf("state %v, want %v", &got, u)
	}
	b, _ = proto.Marshal(&schema.ZoneUpdate{Zone: "z", Cell: 3, Removed: []string{"gone"}})
	if _, ents, err := AppendCellState(nil, b); err != nil || ents {
		t.Fatalf("a cell with removals only: entities %v, err %v", ents, err)
	}
}

func unframe(t *testing.T, f []byte) []byte {
	t.Helper()
	if len(f) < FrameHeader || int(binary.BigEndian.Uint32(f)) != len(f)-FrameHeader {
		t.Fatalf("bad frame header in %x", f)
	}
	return f[FrameHeader:]
}

func TestScanZoneUpdateAllocatesNothing(t *testing.T) {
	b, _ := proto.Marshal(sampleCell(7, 20))
	var v countVisitor
	if n := testing.AllocsPerRun(100, func() { _, _, _ = ScanZoneUpdate(b, &v) }); n != 0 {
		t.Fatalf("%v allocations per scan", n)
	}
}

type countVisitor struct{ n int }

func (c *countVisitor) Entity([]byte, float32, float32) { c.n++ }

// FuzzScanZoneUpdate: on any input the scanner does not panic, and whatever
// proto.Unmarshal accepts it reads the same way (it may refuse more: it does
// not check UTF-8 or the nested chat and combat lines).
func FuzzScanZoneUpdate(f *testing.F) {
	for _, u := range []*schema.ZoneUpdate{sampleCell(0, 0), sampleCell(42, 3), {}} {
		b, _ := proto.Marshal(u)
		f.Add(b)
	}
	f.Add([]byte{0x2a, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s seen
		cell, tick, err := ScanZoneUpdate(b, &s)
		pc, pt, perr := PeekZoneUpdate(b)
		if err == nil && perr != nil {
			t.Fatalf("%x: scan accepts, peek fails: %v", b, perr)
		}
		var u schema.ZoneUpdate
		if perr := proto.Unmarshal(b, &u); perr != nil {
			return
		}
		if err != nil {
			t.Fatalf("proto accepts %x, scan fails: %v", b, err)
		}
		if pc != u.Cell || pt != u.Tick {
			t.Fatalf("%x: peek cell %d tick %d; proto %d %d", b, pc, pt, u.Cell, u.Tick)
		}
		st, ents, err := AppendCellState(nil, b)
		var su schema.ZoneUpdate
		if err != nil || proto.Unmarshal(st, &su) != nil {
			t.Fatalf("%x: cell state %x does not decode: %v", b, st, err)
		}
		u.Chat, u.Combat, u.Removed = nil, nil, nil
		if !proto.Equal(&su, &u) || ents != (len(u.Entities) > 0) {
			t.Fatalf("%x: cell state differs (entities %v)", b, ents)
		}
		if cell != u.Cell || tick != u.Tick || len(s.ids) != len(u.Entities) {
			t.Fatalf("%x: scan cell %d tick %d %d entities; proto %d %d %d", b, cell, tick, len(s.ids), u.Cell, u.Tick, len(u.Entities))
		}
		for i, e := range u.Entities {
			if s.ids[i] != e.Id || !sameFloat(s.x[i], e.X) || !sameFloat(s.y[i], e.Y) {
				t.Fatalf("%x: entity %d differs", b, i)
			}
		}
	})
}

func sameFloat(a, b float32) bool { return a == b || a != a && b != b }

// FuzzScanZoneTick: the cells the scanner returns are those proto.Unmarshal
// reads, and wrapping them in an Updates frame gives a packet that
// unmarshals to the same cells.
func FuzzScanZoneTick(f *testing.F) {
	for _, t := range []*schema.ZoneTick{{Zone: "z", Tick: 3, Cells: []*schema.ZoneUpdate{sampleCell(1, 1), sampleCell(2, 0)}}, {}} {
		b, _ := proto.Marshal(t)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var cells [][]byte
		tick, err := ScanZoneTick(b, func(zu []byte) error { cells = append(cells, zu); return nil })
		var zt schema.ZoneTick
		if perr := proto.Unmarshal(b, &zt); perr != nil {
			return
		}
		if err != nil || tick != zt.Tick || len(cells) != len(zt.Cells) {
			t.Fatalf("%x: scan tick %d %d cells err %v; proto tick %d %d cells", b, tick, len(cells), err, zt.Tick, len(zt.Cells))
		}
		var p schema.ServerPacket
		if err := proto.Unmarshal(AppendUpdatesFrame(nil, cells)[FrameHeader:], &p); err != nil {
			t.Fatalf("%x: Updates frame does not unmarshal: %v", b, err)
		}
		got := p.GetUpdates().GetZoneUpdates()
		if len(got) != len(zt.Cells) {
			t.Fatalf("%x: frame has %d cells, want %d", b, len(got), len(zt.Cells))
		}
		for i := range got {
			if !proto.Equal(got[i], zt.Cells[i]) {
				t.Fatalf("%x: cell %d differs", b, i)
			}
		}
	})
}

// BenchmarkZoneUpdateIn is the gateway's CPU per received cell update (a
// cell of 6 players): scan (this package) against what the fan-out did
// before, unmarshal the ZoneUpdate and marshal the client's Update packet.
func BenchmarkZoneUpdateIn(b *testing.B) {
	u := sampleCell(45, 6)
	data, _ := proto.Marshal(u)
	b.Run("scan+wrap", func(b *testing.B) {
		var v countVisitor
		var out []byte
		b.ReportAllocs()
		for range b.N {
			if _, _, err := ScanZoneUpdate(data, &v); err != nil {
				b.Fatal(err)
			}
			out = AppendUpdatesFrame(out[:0], [][]byte{data})
		}
	})
	b.Run("unmarshal+marshal", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var z schema.ZoneUpdate
			if err := proto.Unmarshal(data, &z); err != nil {
				b.Fatal(err)
			}
			if _, err := proto.Marshal(&schema.ServerPacket{Body: &schema.ServerPacket_Update{Update: &schema.Update{ZoneUpdate: &z}}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package zone

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/worldmap"
	"github.com/realmstream/realmstream/services/world/internal/rules"
)

// TestCoverExactlyOnce: for every cell of grids of many sizes, its 3x3 area
// of interest holds exactly one zone-chat cover cell, so each client sees a
// zone chat line once.
func TestCoverExactlyOnce(t *testing.T) {
	for n := 1; n <= 20; n++ {
		m := worldmap.Map{Cols: 1, Rows: 1, ZoneSize: float32(10 * n), CellSize: 10}
		v := newView(m)
		cover := map[uint32]bool{}
		for _, c := range v.cover {
			cover[c] = true
		}
		for c := 0; c < m.CellCount(); c++ {
			k := 0
			for _, nc := range m.NearCells(nil, uint32(c)) {
				if cover[nc] {
					k++
				}
			}
			if k != 1 {
				t.Fatalf("n=%d: cell %d sees %d cover cells", n, c, k)
			}
		}
	}
}

func TestViewUpdates(t *testing.T) {
	m := worldmap.Default()
	v := newView(m)
	s := rules.NewState("z")
	s.Players["a"] = &schema.PlayerState{PlayerId: "a", Name: "A", X: 50, Y: 50, Hp: 100, LastInputSeq: 7}
	s.Players["b"] = &schema.PlayerState{PlayerId: "b", Name: "B", X: 950, Y: 950, Hp: 100}
	v.note(s, &schema.Event{PlayerId: "a", Body: &schema.Event_ChatSent{ChatSent: &schema.ChatSent{Text: "near", Scope: schema.ChatScope_CHAT_SCOPE_NEARBY, X: 50, Y: 50}}})
	v.note(s, &schema.Event{PlayerId: "a", Body: &schema.Event_ChatSent{ChatSent: &schema.ChatSent{Text: "all"}}})
	us := v.build("z", s, 1, 0)
	got := map[uint32]string{}
	for _, u := range us {
		got[u.Cell] = fmt.Sprintf("e%d c%d r%d", len(u.Entities), len(u.Chat), len(u.Removed))
	}
	if got[0] != "e1 c2 r0" || got[99] != "e1 c1 r0" {
		t.Fatalf("updates %v", got)
	}
	// a moves away: its old cell reports it removed.
	s.Players["a"].X = 250
	us = v.build("z", s, 2, 0)
	got = map[uint32]string{}
	for _, u := range us {
		got[u.Cell] = fmt.Sprintf("e%d c%d r%d", len(u.Entities), len(u.Chat), len(u.Removed))
	}
	if got[0] != "e0 c0 r1" || got[2] != "e1 c0 r0" {
		t.Fatalf("updates after move %v", got)
	}
}

// TestViewSendsChangedCells: after the first (keyframe) build, a cell goes
// out only when something a client sees in it changed (a move, hp, a line, a
// removal); every KeyframeTicks builds all occupied cells go out again.
func TestViewSendsChangedCells(t *testing.T) {
	m := worldmap.Default()
	v := newView(m)
	s := rules.NewState("z")
	s.Players["a"] = &schema.PlayerState{PlayerId: "a", Name: "A", X: 50, Y: 50, Hp: 100}
	s.Players["b"] = &schema.PlayerState{PlayerId: "b", Name: "B", X: 950, Y: 950, Hp: 100}
	s.Players["c"] = &schema.PlayerState{PlayerId: "c", Name: "C", X: 960, Y: 960, Hp: 100}
	cells := func(tick uint64) map[uint32]int {
		out := map[uint32]int{}
		for _, u := range v.build("z", s, tick, 0) {
			out[u.Cell] = len(u.Entities)
		}
		return out
	}
	if got := cells(1); len(got) != 2 || got[0] != 1 || got[99] != 2 {
		t.Fatalf("first build (keyframe): %v, want cells 0 and 99", got)
	}
	if got := cells(2); len(got) != 0 {
		t.Fatalf("nothing changed, yet cells %v went out", got)
	}
	s.Players["c"].Hp = 90 // a hit in cell 99: the whole cell goes out
	if got := cells(3); len(got) != 1 || got[99] != 2 {
		t.Fatalf("after a hp change: %v, want cell 99 with both entities", got)
	}
	s.Players["a"].X = 55 // a move inside cell 0
	if got := cells(4); len(got) != 1 || got[0] != 1 {
		t.Fatalf("after a move: %v, want cell 0", got)
	}
	v.note(s, &schema.Event{PlayerId: "b", Body: &schema.Event_ChatSent{ChatSent: &schema.ChatSent{Text: "hi", Scope: schema.ChatScope_CHAT_SCOPE_NEARBY, X: 950, Y: 950}}})
	if got := cells(5); len(got) != 1 || got[99] != 2 {
		t.Fatalf("after a chat line: %v, want cell 99", got)
	}
	delete(s.Players, "a") // gone: cell 0 says so once
	us := v.build("z", s, 6, 0)
	if len(us) != 1 || us[0].Cell != 0 || len(us[0].Removed) != 1 {
		t.Fatalf("after a leave: %v", us)
	}
	tick := uint64(7)
	for ; v.ticks%KeyframeTicks != 0; tick++ {
		if got := cells(tick); len(got) != 0 {
			t.Fatalf("tick %d, nothing changed: %v", tick, got)
		}
	}
	if got := cells(tick); len(got) != 1 || got[99] != 2 {
		t.Fatalf("keyframe: %v, want the occupied cell 99", got)
	}
}

// TestZoneTickSplitsByPayload: a tick above the record limit goes out as
// several ZoneTicks of whole cells, every cell exactly once, each within the
// limit.
func TestZoneTickSplitsByPayload(t *testing.T) {
	r := &runner{c: Config{Zone: "z"}, app: &appender{maxBytes: 300}, tick: 7}
	var us []*schema.ZoneUpdate
	for c := uint32(0); c < 20; c++ {
		us = append(us, &schema.ZoneUpdate{Zone: "z", Cell: c, Entities: []*schema.EntityView{{Id: fmt.Sprintf("player-%02d-with-a-name", c)}}})
	}
	var seen []uint32
	msgs := 0
	r.publishTicks(us, 1, func(subject string, b []byte) {
		msgs++
		if len(b) > 300 {
			t.Errorf("a ZoneTick of %d bytes, limit 300", len(b))
		}
		var zt schema.ZoneTick
		if err := proto.Unmarshal(b, &zt); err != nil || zt.Tick != 7 || subject != "upd.z" {
			t.Fatalf("tick %d on %s: %v", zt.Tick, subject, err)
		}
		for _, u := range zt.Cells {
			seen = append(seen, u.Cell)
		}
	})
	if msgs < 2 || len(seen) != 20 {
		t.Fatalf("%d messages carrying %d cells, want several carrying 20", msgs, len(seen))
	}
	for i, c := range seen {
		if c != uint32(i) {
			t.Fatalf("cells %v: not each once in order", seen)
		}
	}
}

package zone

import (
	"fmt"
	"testing"

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

package zone

import (
	"sort"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/worldmap"
)

// view builds the per-cell ZoneUpdates of one tick (area of interest). Each
// entity is in exactly one cell's update; a client receives the updates of the
// 3x3 cells around it, so its bandwidth depends on the players near it, not
// on the players in the zone. Lines go to cells such that each client sees
// each line once:
//   - nearby chat: the sender's cell (reaches everyone whose AOI holds it);
//   - combat: the target's cell;
//   - zone chat: a "perfect cover" of cells, where every 3x3 window of the
//     grid (clipped at the edges) holds exactly one cover cell.
//
// A view is owned by the zone goroutine.
type view struct {
	m      worldmap.Map
	n      int               // cells per side
	last   map[string]uint32 // entity id -> cell it was published in last tick
	mark   []bool            // scratch: cells to publish this tick
	cover  []uint32
	chat   map[uint32][]*schema.ChatLine
	combat map[uint32][]*schema.CombatLine
	cur    map[uint32][]*schema.EntityView // scratch
}

func newView(m worldmap.Map) *view {
	n := m.CellsPerSide()
	v := &view{m: m, n: n, last: map[string]uint32{}, mark: make([]bool, m.CellCount()), chat: map[uint32][]*schema.ChatLine{},
		combat: map[uint32][]*schema.CombatLine{}, cur: map[uint32][]*schema.EntityView{}}
	axis := coverAxis(n)
	for _, y := range axis {
		for _, x := range axis {
			v.cover = append(v.cover, uint32(y*n+x))
		}
	}
	return v
}

// coverAxis returns positions on a path of n cells such that every window
// [i-1, i+1] (clipped) holds exactly one of them (a perfect code of the path).
func coverAxis(n int) []int {
	start := 0
	if n%3 == 0 {
		start = 1
	}
	var out []int
	for i := start; i < n; i += 3 {
		out = append(out, i)
	}
	return out
}

// note records the lines an applied event shows to clients.
func (v *view) note(s *schema.ZoneSnapshot, ev *schema.Event) {
	switch b := ev.Body.(type) {
	case *schema.Event_ChatSent:
		from := ev.PlayerId
		if p := s.Players[ev.PlayerId]; p != nil && p.Name != "" {
			from = p.Name
		}
		line := &schema.ChatLine{From: from, Text: b.ChatSent.Text}
		if b.ChatSent.Scope == schema.ChatScope_CHAT_SCOPE_NEARBY {
			c := v.m.CellOf(b.ChatSent.X, b.ChatSent.Y)
			v.chat[c] = append(v.chat[c], line)
		} else {
			for _, c := range v.cover {
				v.chat[c] = append(v.chat[c], line)
			}
		}
	case *schema.Event_AttackHit:
		if t := s.Players[b.AttackHit.TargetId]; t != nil {
			c := v.m.CellOf(t.X, t.Y)
			v.combat[c] = append(v.combat[c], &schema.CombatLine{Attacker: ev.PlayerId, Target: b.AttackHit.TargetId,
				Damage: b.AttackHit.Damage, Killed: b.AttackHit.Killed})
		}
	}
}

// build returns the updates of this tick, in cell order, and resets the lines.
func (v *view) build(zone string, s *schema.ZoneSnapshot, tick uint64, now int64) []*schema.ZoneUpdate {
	clear(v.cur)
	removed := map[uint32][]string{}
	for id, p := range s.Players {
		c := v.m.CellOf(p.X, p.Y)
		v.cur[c] = append(v.cur[c], &schema.EntityView{Id: p.PlayerId, Name: p.Name, X: p.X, Y: p.Y, Hp: p.Hp, Dead: p.Dead, LastInputSeq: p.LastInputSeq})
		if old, ok := v.last[id]; ok && old != c {
			removed[old] = append(removed[old], id)
		}
		v.last[id] = c
	}
	if len(v.last) > len(s.Players) {
		for id, old := range v.last {
			if _, ok := s.Players[id]; !ok {
				removed[old] = append(removed[old], id)
				delete(v.last, id)
			}
		}
	}
	mark := v.mark
	for i := range mark {
		mark[i] = false
	}
	for c := range v.cur {
		mark[c] = true
	}
	for c := range removed {
		mark[c] = true
	}
	for c := range v.chat {
		mark[c] = true
	}
	for c := range v.combat {
		mark[c] = true
	}
	var out []*schema.ZoneUpdate
	for c, ok := range mark {
		if !ok {
			continue
		}
		cell := uint32(c)
		rm := removed[cell]
		sort.Strings(rm)
		out = append(out, &schema.ZoneUpdate{Zone: zone, Cell: cell, Tick: tick, ServerTimeNs: now, Entities: v.cur[cell],
			Chat: v.chat[cell], Combat: v.combat[cell], Removed: rm})
	}
	clear(v.chat)
	clear(v.combat)
	return out
}

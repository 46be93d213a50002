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
	n      int                            // cells per side
	prev   map[uint32]map[string]struct{} // entity ids published per cell last tick
	cover  []uint32
	chat   map[uint32][]*schema.ChatLine
	combat map[uint32][]*schema.CombatLine
	cur    map[uint32][]*schema.EntityView // scratch
}

func newView(m worldmap.Map) *view {
	n := m.CellsPerSide()
	v := &view{m: m, n: n, prev: map[uint32]map[string]struct{}{}, chat: map[uint32][]*schema.ChatLine{},
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
	for _, p := range s.Players {
		c := v.m.CellOf(p.X, p.Y)
		v.cur[c] = append(v.cur[c], &schema.EntityView{Id: p.PlayerId, Name: p.Name, X: p.X, Y: p.Y, Hp: p.Hp, Dead: p.Dead, LastInputSeq: p.LastInputSeq})
	}
	cells := make([]uint32, 0, len(v.cur)+len(v.prev)+len(v.chat)+len(v.combat))
	seen := map[uint32]bool{}
	for _, m := range []any{v.cur, v.prev, v.chat, v.combat} {
		switch m := m.(type) {
		case map[uint32][]*schema.EntityView:
			for c := range m {
				if !seen[c] {
					seen[c] = true
					cells = append(cells, c)
				}
			}
		case map[uint32]map[string]struct{}:
			for c := range m {
				if !seen[c] {
					seen[c] = true
					cells = append(cells, c)
				}
			}
		case map[uint32][]*schema.ChatLine:
			for c := range m {
				if !seen[c] {
					seen[c] = true
					cells = append(cells, c)
				}
			}
		case map[uint32][]*schema.CombatLine:
			for c := range m {
				if !seen[c] {
					seen[c] = true
					cells = append(cells, c)
				}
			}
		}
	}
	sort.Slice(cells, func(i, j int) bool { return cells[i] < cells[j] })
	out := make([]*schema.ZoneUpdate, 0, len(cells))
	next := make(map[uint32]map[string]struct{}, len(v.cur))
	for _, c := range cells {
		ents := v.cur[c]
		sort.Slice(ents, func(i, j int) bool { return ents[i].Id < ents[j].Id })
		u := &schema.ZoneUpdate{Zone: zone, Cell: c, Tick: tick, ServerTimeNs: now, Entities: ents, Chat: v.chat[c], Combat: v.combat[c]}
		ids := make(map[string]struct{}, len(ents))
		for _, e := range ents {
			ids[e.Id] = struct{}{}
		}
		for id := range v.prev[c] {
			if _, still := ids[id]; !still {
				u.Removed = append(u.Removed, id)
			}
		}
		sort.Strings(u.Removed)
		if len(ids) > 0 {
			next[c] = ids
		}
		if len(u.Entities) == 0 && len(u.Removed) == 0 && len(u.Chat) == 0 && len(u.Combat) == 0 {
			continue
		}
		out = append(out, u)
	}
	v.prev = next
	clear(v.chat)
	clear(v.combat)
	return out
}

package zone

import (
	"math"
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
// Only cells that changed since the previous tick are published: a cell whose
// entities (id, name, position, hp, dead, last input) are the same as last
// tick, with no line and no removal, is left out, and clients keep what they
// have of it. Every KeyframeTicks ticks each occupied cell goes out whole
// anyway, so that a client that just subscribed (a join, a resume on another
// gateway) has the whole area of interest within that time.
//
// A view is owned by the zone goroutine.
type view struct {
	m      worldmap.Map
	n      int               // cells per side
	last   map[string]uint32 // entity id -> cell it was published in last tick
	fp     []uint64          // cell -> fingerprint of its entities last tick
	fpNext []uint64          // scratch: this tick's fingerprints (swapped with fp)
	ticks  uint64            // builds so far (keyframe counter)
	mark   []bool            // scratch: cells to publish this tick
	cover  []uint32
	chat   map[uint32][]*schema.ChatLine
	combat map[uint32][]*schema.CombatLine
	cur    map[uint32][]*schema.EntityView // scratch
}

func newView(m worldmap.Map) *view {
	n := m.CellsPerSide()
	v := &view{m: m, n: n, last: map[string]uint32{}, mark: make([]bool, m.CellCount()), fp: make([]uint64, m.CellCount()), chat: map[uint32][]*schema.ChatLine{},
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

// KeyframeTicks is how often (in ticks) every occupied cell is published
// whether it changed or not: 20 ticks = 1 s at the default 50 ms tick.
const KeyframeTicks = 20

// build returns the updates of this tick (the changed cells, or every
// occupied cell on a keyframe), in cell order, and resets the lines.
func (v *view) build(zone string, s *schema.ZoneSnapshot, tick uint64, now int64) []*schema.ZoneUpdate {
	clear(v.cur)
	removed := map[uint32][]string{}
	fp := v.fpNext
	if len(fp) != len(v.fp) {
		fp = make([]uint64, len(v.fp))
	}
	clear(fp)
	for id, p := range s.Players {
		c := v.m.CellOf(p.X, p.Y)
		e := &schema.EntityView{Id: p.PlayerId, Name: p.Name, X: p.X, Y: p.Y, Hp: p.Hp, Dead: p.Dead, LastInputSeq: p.LastInputSeq}
		v.cur[c] = append(v.cur[c], e)
		fp[c] += entityHash(e) // order-free: the map's order changes every tick
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
	keyframe := v.ticks%KeyframeTicks == 0
	v.ticks++
	mark := v.mark
	for i := range mark {
		mark[i] = false
	}
	for c := range v.cur {
		mark[c] = keyframe || fp[c] != v.fp[c]
	}
	v.fp, v.fpNext = fp, v.fp
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

// entityHash is a 64-bit FNV-1a of what a client sees of an entity.
func entityHash(e *schema.EntityView) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < len(e.Id); i++ {
		h = (h ^ uint64(e.Id[i])) * prime
	}
	h = (h ^ 0xff) * prime
	for i := 0; i < len(e.Name); i++ {
		h = (h ^ uint64(e.Name[i])) * prime
	}
	dead := uint64(0)
	if e.Dead {
		dead = 1
	}
	for _, w := range [...]uint64{uint64(math.Float32bits(e.X)), uint64(math.Float32bits(e.Y)), uint64(uint32(e.Hp)), dead, e.LastInputSeq} {
		for i := 0; i < 8; i++ {
			h = (h ^ (w & 0xff)) * prime
			w >>= 8
		}
	}
	return h
}

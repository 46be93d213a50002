// Package storetest is the conformance suite every persist store runs
// (Postgres and Pebble), plus event builders for tests.
package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/store"
)

// Base is a fixed event time (µs precision, as Postgres keeps it).
var Base = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// NewEvent builds a schema.Event.
func NewEvent(id, zone, player string, ts time.Time) *schema.Event {
	return &schema.Event{EventId: id, Zone: zone, PlayerId: player, TimestampNs: ts.UnixNano(), Fence: 1}
}

// Moved returns a PlayerMoved event.
func Moved(id, zone, player string, ts time.Time, x, y float32) *schema.Event {
	e := NewEvent(id, zone, player, ts)
	e.Body = &schema.Event_PlayerMoved{PlayerMoved: &schema.PlayerMoved{X: x, Y: y}}
	return e
}

// Joined returns a PlayerJoined event.
func Joined(id, zone, player string, ts time.Time, hp int32) *schema.Event {
	e := NewEvent(id, zone, player, ts)
	e.Body = &schema.Event_PlayerJoined{PlayerJoined: &schema.PlayerJoined{Player: &schema.PlayerState{
		PlayerId: player, Name: "name-" + player, X: 1, Y: 2, Hp: hp, MaxHp: hp}}}
	return e
}

// Died returns a PlayerDied event.
func Died(id, zone, player, killer string, ts time.Time) *schema.Event {
	e := NewEvent(id, zone, player, ts)
	e.Body = &schema.Event_PlayerDied{PlayerDied: &schema.PlayerDied{KillerId: killer}}
	return e
}

// Hit returns an AttackHit event by player on target.
func Hit(id, zone, player, target string, ts time.Time, hp int32) *schema.Event {
	e := NewEvent(id, zone, player, ts)
	e.Body = &schema.Event_AttackHit{AttackHit: &schema.AttackHit{TargetId: target, Damage: 5, TargetHp: hp}}
	return e
}

// Kill returns an AttackHit event by player on target that kills it (hp 0,
// killed = true), as the world emits a kill.
func Kill(id, zone, player, target string, ts time.Time) *schema.Event {
	e := Hit(id, zone, player, target, ts, 0)
	e.GetAttackHit().Killed = true
	return e
}

// GameLog is a deterministic log of n events over a few players and zones:
// joins, moves, hits, kills, respawns, leaves and re-joins, with stream
// sequences 1..n.
func GameLog(n int, seed uint64) []store.Record {
	rng := rand.New(rand.NewPCG(seed, seed))
	zs := []string{"z0_0", "z1_1", "z2_1"}
	type pl struct {
		zone         string
		joined, dead bool
		hp           int32
	}
	ids := []string{"pa", "pb", "pc", "pd", "pe", "pf"}
	st := map[string]*pl{}
	for _, id := range ids {
		st[id] = &pl{}
	}
	var out []store.Record
	for seq := 1; seq <= n; seq++ {
		id := ids[rng.IntN(len(ids))]
		p := st[id]
		ts := Base.Add(time.Duration(seq) * time.Millisecond)
		eid := fmt.Sprintf("g%d", seq)
		var ev *schema.Event
		switch k := rng.IntN(10); {
		case !p.joined:
			p.zone, p.joined, p.dead, p.hp = zs[rng.IntN(len(zs))], true, false, 30
			ev = Joined(eid, p.zone, id, ts, p.hp)
		case k == 0:
			p.joined = false
			ev = NewEvent(eid, p.zone, id, ts)
			ev.Body = &schema.Event_PlayerLeft{PlayerLeft: &schema.PlayerLeft{}}
		case p.dead:
			p.dead, p.hp = false, 30
			ev = NewEvent(eid, p.zone, id, ts)
			ev.Body = &schema.Event_PlayerRespawned{PlayerRespawned: &schema.PlayerRespawned{X: float32(seq), Y: 3, Hp: p.hp}}
		case k < 5:
			ev = Moved(eid, p.zone, id, ts, float32(seq), float32(k))
		default:
			var target string
			for _, o := range ids {
				if o != id && st[o].joined && !st[o].dead && st[o].zone == p.zone {
					target = o
					break
				}
			}
			if target == "" {
				ev = Moved(eid, p.zone, id, ts, float32(seq), 1)
				break
			}
			tp := st[target]
			tp.hp -= 10
			if tp.hp <= 0 {
				tp.hp, tp.dead = 0, true
				ev = Kill(eid, p.zone, id, target, ts)
			} else {
				ev = Hit(eid, p.zone, id, target, ts, tp.hp)
			}
		}
		out = append(out, Rec(uint64(seq), ev))
	}
	return out
}

// Rec encodes ev as the EVT message with stream sequence seq and decodes it
// as persist does.
func Rec(seq uint64, ev *schema.Event) store.Record {
	b, err := proto.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return store.Decode(seq, wire.EventSubject(ev.GetZone()), b, time.Unix(0, ev.GetTimestampNs()))
}

// TickMsg encodes events (all of one zone) as the tick record message
// (Realm-Schema wire.SchemaTickRecord) the world commits.
func TickMsg(fence, tick uint64, evs ...*schema.Event) (nats.Header, []byte) {
	zone := ""
	if len(evs) > 0 {
		zone = evs[0].GetZone()
	}
	id := wire.TickRecordID(zone, fence, tick, 0)
	b, err := proto.Marshal(&schema.TickRecord{RecordId: id, Zone: zone, Fence: fence, Tick: tick, Parts: 1,
		CommittedAtNs: Base.UnixNano(), Events: evs})
	if err != nil {
		panic(err)
	}
	h := nats.Header{}
	h.Set(wire.HeaderSchema, wire.SchemaTickRecord)
	h.Set(wire.HeaderEventType, wire.EventTypeTick)
	h.Set(wire.HeaderMsgID, id)
	return h, b
}

// Tick encodes events (all of one zone) as one tick record message with
// stream sequence seq and decodes it as persist does: one Record per event.
func Tick(seq uint64, evs ...*schema.Event) []store.Record {
	h, b := TickMsg(1, seq, evs...)
	zone := ""
	if len(evs) > 0 {
		zone = evs[0].GetZone()
	}
	return store.DecodeMessage(seq, wire.EventSubject(zone), h, b, Base)
}

// GameRecords is GameLog(n, seed) committed as tick records: each zone's
// events in order, up to per events a record, records numbered 1.. in the
// order they fill (so a record holds several events of one player, kills
// and re-joins included).
func GameRecords(n int, seed uint64, per int) [][]store.Record {
	buf := map[string][]*schema.Event{}
	var out [][]store.Record
	seq := uint64(0)
	flush := func(z string) {
		if len(buf[z]) == 0 {
			return
		}
		seq++
		out = append(out, Tick(seq, buf[z]...))
		buf[z] = nil
	}
	for _, r := range GameLog(n, seed) {
		buf[r.Zone] = append(buf[r.Zone], r.Event)
		if len(buf[r.Zone]) == per {
			flush(r.Zone)
		}
	}
	for _, z := range []string{"z0_0", "z1_1", "z2_1"} {
		flush(z)
	}
	return out
}

func flat(msgs [][]store.Record) []store.Record {
	var out []store.Record
	for _, m := range msgs {
		out = append(out, m...)
	}
	return out
}

// Run runs the conformance suite; open returns a fresh, empty store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	write := func(t *testing.T, s store.Store, recs []store.Record) store.WriteResult {
		t.Helper()
		res, err := s.Write(ctx, recs)
		if err != nil {
			t.Fatalf("write: %v", err)
		}
		return res
	}

	t.Run("ZoneEventsOrderAndFilters", func(t *testing.T) {
		s := open(t)
		var recs []store.Record
		for i := 1; i <= 30; i++ {
			zone := []string{"z0_0", "z1_1", "z2_2"}[i%3]
			recs = append(recs, Rec(uint64(i), Moved(fmt.Sprintf("e%d", i), zone, "p1", Base.Add(time.Duration(i)*time.Second), float32(i), 0)))
		}
		if res := write(t, s, recs); res.Inserted != 30 {
			t.Fatalf("inserted %d, want 30", res.Inserted)
		}
		got, err := s.ZoneEvents(ctx, store.ZoneEventsQuery{Zone: "z1_1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 10 {
			t.Fatalf("z1_1 has %d events, want 10", len(got))
		}
		for i, e := range got {
			want := recs[3*i] // seq 1,4,7,...
			if e.Seq != want.Seq || e.TSNs != want.TSNs || e.EventID != want.EventID || e.Type != "player_moved" ||
				e.PlayerID != "p1" || e.Fence != 1 || string(e.Payload) != string(want.Payload) {
				t.Fatalf("event %d = %+v, want seq %d id %s", i, e, want.Seq, want.EventID)
			}
		}
		got, _ = s.ZoneEvents(ctx, store.ZoneEventsQuery{Zone: "z1_1", FromNs: Base.Add(10 * time.Second).UnixNano(),
			ToNs: Base.Add(20 * time.Second).UnixNano()})
		if len(got) != 4 || got[0].Seq != 10 || got[3].Seq != 19 {
			t.Fatalf("time range: %v", seqs(got))
		}
		got, _ = s.ZoneEvents(ctx, store.ZoneEventsQuery{Zone: "z1_1", AfterSeq: 22, Limit: 2})
		if len(got) != 2 || got[0].Seq != 25 || got[1].Seq != 28 {
			t.Fatalf("after_seq/limit: %v", seqs(got))
		}
		if _, err := s.ZoneEvents(ctx, store.ZoneEventsQuery{Zone: "bad zone"}); err == nil {
			t.Fatal("bad zone accepted")
		}
	})

	t.Run("RedeliveryInsertsNothingTwice", func(t *testing.T) {
		s := open(t)
		var recs []store.Record
		for i := 1; i <= 20; i++ {
			recs = append(recs, Rec(uint64(i), Moved(fmt.Sprintf("e%d", i), "z0_0", fmt.Sprintf("p%d", i%4), Base.Add(time.Duration(i)*time.Millisecond), float32(i), 1)))
		}
		write(t, s, recs[:10])
		z1, _, _ := s.Zone(ctx, "z0_0")
		p1, _, _ := s.Player(ctx, "p1")
		// Redelivery of the whole first batch: nothing new.
		if res := write(t, s, recs[:10]); res.Inserted != 0 || res.Skipped != 10 {
			t.Fatalf("redelivered batch: %+v, want 0 inserted 10 skipped", res)
		}
		z2, _, _ := s.Zone(ctx, "z0_0")
		p2, _, _ := s.Player(ctx, "p1")
		if z1 != z2 || p1 != p2 {
			t.Fatalf("read models changed by a redelivery: %+v -> %+v, %+v -> %+v", z1, z2, p1, p2)
		}
		// Overlapping batch (5 old + 10 new), and a late lower seq alone.
		if res := write(t, s, recs[5:20]); res.Inserted != 10 || res.Skipped != 5 {
			t.Fatalf("overlapping batch: %+v", res)
		}
		got, _ := s.ZoneEvents(ctx, store.ZoneEventsQuery{Zone: "z0_0"})
		if len(got) != 20 {
			t.Fatalf("stored %d events, want 20", len(got))
		}
		z, _, _ := s.Zone(ctx, "z0_0")
		if z.Events != 20 || z.LastSeq != 20 || z.LastTSNs != recs[19].TSNs {
			t.Fatalf("zone summary %+v", z)
		}
	})

	t.Run("ReadModels", func(t *testing.T) {
		s := open(t)
		ts := func(i int) time.Time { return Base.Add(time.Duration(i) * time.Second) }
		recs := []store.Record{
			Rec(1, Joined("a1", "z0_0", "alice", ts(1), 100)),
			Rec(2, Joined("b1", "z0_0", "bob", ts(2), 80)),
			Rec(3, Moved("a2", "z0_0", "alice", ts(3), 10, 20)),
			Rec(4, Hit("a3", "z0_0", "alice", "bob", ts(4), 30)),
			Rec(5, Died("b2", "z0_0", "bob", "alice", ts(5))),
		}
		write(t, s, recs)
		// Second batch: a redelivery of the death plus new events.
		write(t, s, []store.Record{recs[4], Rec(6, Moved("a4", "z1_1", "alice", ts(6), 5, 6)), Rec(7, Died("a5", "z1_1", "alice", "bob", ts(7)))})
		a, ok, err := s.Player(ctx, "alice")
		if err != nil || !ok {
			t.Fatalf("alice: %v %v", ok, err)
		}
		if a.Zone != "z1_1" || a.X != 5 || a.Y != 6 || a.HP != 0 || a.Kills != 1 || a.Deaths != 1 || a.Name != "name-alice" || !a.Online || a.LastSeq != 7 {
			t.Fatalf("alice = %+v", a)
		}
		b, _, _ := s.Player(ctx, "bob")
		if b.HP != 0 || b.Kills != 1 || b.Deaths != 1 || b.Zone != "z0_0" || b.LastSeq != 5 {
			t.Fatalf("bob = %+v", b)
		}
		z, ok, _ := s.Zone(ctx, "z0_0")
		if !ok || z.Events != 5 || z.Players != 2 || z.Deaths != 1 || z.LastSeq != 5 {
			t.Fatalf("z0_0 = %+v", z)
		}
		if _, ok, _ := s.Player(ctx, "nobody"); ok {
			t.Fatal("unknown player found")
		}
		if _, ok, _ := s.Zone(ctx, "z9_9"); ok {
			t.Fatal("unknown zone found")
		}
	})

	// KillsFromAttackHit: the world reports a kill as AttackHit.killed (no
	// PlayerDied): the attacker gets the kill, the target the death, the
	// zone a death; a redelivered batch counts nothing twice.
	t.Run("KillsFromAttackHit", func(t *testing.T) {
		s := open(t)
		ts := func(i int) time.Time { return Base.Add(time.Duration(i) * time.Second) }
		b1 := []store.Record{
			Rec(1, Joined("j1", "z0_0", "ann", ts(1), 10)),
			Rec(2, Joined("j2", "z0_0", "ben", ts(2), 10)),
			Rec(3, Hit("h1", "z0_0", "ann", "ben", ts(3), 5)),
			Rec(4, Kill("h2", "z0_0", "ann", "ben", ts(4))),
		}
		b2 := []store.Record{
			b1[3], // redelivered kill
			Rec(5, Kill("h3", "z0_0", "ben", "ann", ts(5))),
			Rec(6, Kill("h4", "z1_1", "ann", "cid", ts(6))),
		}
		write(t, s, b1)
		write(t, s, b2)
		write(t, s, b2) // whole batch redelivered
		write(t, s, b1)
		for _, c := range []struct {
			id            string
			kills, deaths int64
		}{{"ann", 2, 1}, {"ben", 1, 1}, {"cid", 0, 1}} {
			p, ok, err := s.Player(ctx, c.id)
			if err != nil || !ok {
				t.Fatalf("%s: %v %v", c.id, ok, err)
			}
			if p.Kills != c.kills || p.Deaths != c.deaths {
				t.Errorf("%s kills/deaths %d/%d, want %d/%d", c.id, p.Kills, p.Deaths, c.kills, c.deaths)
			}
		}
		for zone, want := range map[string]int64{"z0_0": 2, "z1_1": 1} {
			z, ok, err := s.Zone(ctx, zone)
			if err != nil || !ok {
				t.Fatalf("%s: %v %v", zone, ok, err)
			}
			if z.Deaths != want {
				t.Errorf("zone %s deaths %d, want %d", zone, z.Deaths, want)
			}
		}
		if b, _, _ := s.Player(ctx, "ben"); b.HP != 0 {
			t.Errorf("ben hp %d, want 0", b.HP)
		}
	})

	// BatchOrderDoesNotMatter: two replicas share the consumer, so batches
	// commit in any order (and are redelivered). Applying the batches of a
	// game log later-first, shuffled and with repeats must give the same
	// read models as applying them in order: each field of a player takes
	// the value of the highest event that set it, counters count each kill
	// once.
	t.Run("BatchOrderDoesNotMatter", func(t *testing.T) {
		recs := GameLog(400, 7)
		var batches [][]store.Record
		for i := 0; i < len(recs); i += 25 {
			batches = append(batches, recs[i:min(i+25, len(recs))])
		}
		inOrder := open(t)
		for _, b := range batches {
			write(t, inOrder, b)
		}
		reversed := open(t)
		for i := len(batches) - 1; i >= 0; i-- {
			write(t, reversed, batches[i])
		}
		shuffled := open(t)
		rng := rand.New(rand.NewPCG(1, 2))
		var again []int
		for _, i := range rng.Perm(len(batches)) {
			write(t, shuffled, batches[i])
			if i%3 == 0 {
				again = append(again, i)
			}
		}
		for _, i := range again { // redeliveries, later
			write(t, shuffled, batches[i])
		}
		players, zones := map[string]bool{}, map[string]bool{}
		for _, r := range recs {
			players[r.PlayerID] = true
			zones[r.Zone] = true
		}
		compare := func(name string, got store.Store) {
			for id := range players {
				w, wok, err := inOrder.Player(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				g, gok, err := got.Player(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if w != g || wok != gok {
					t.Errorf("%s: player %s = %+v, in order %+v", name, id, g, w)
				}
			}
			for z := range zones {
				w, _, _ := inOrder.Zone(ctx, z)
				g, _, err := got.Zone(ctx, z)
				if err != nil {
					t.Fatal(err)
				}
				if w != g {
					t.Errorf("%s: zone %s = %+v, in order %+v", name, z, g, w)
				}
			}
		}
		compare("reversed", reversed)
		compare("shuffled", shuffled)
		var kills int64
		for id := range players {
			p, _, _ := inOrder.Player(ctx, id)
			kills += p.Kills
			if p.Name == "" {
				t.Errorf("in order: player %s has no name: %+v", id, p)
			}
		}
		if kills == 0 {
			t.Fatal("the game log has no kills: the test proves nothing about counters")
		}
	})

	// TickRecordsOneRowPerEvent: a tick record is stored as one row per
	// event at (seq, index), payload the event's bytes; redelivering the
	// records (whole, overlapping, or a message twice in one batch) stores
	// nothing twice; both queries return the rows in log order.
	t.Run("TickRecordsOneRowPerEvent", func(t *testing.T) {
		s := open(t)
		var msgs [][]store.Record
		for seq := uint64(1); seq <= 6; seq++ {
			zone := []string{"z0_0", "z1_1"}[seq%2]
			var evs []*schema.Event
			for i := 0; i < 5; i++ {
				n := int(seq)*10 + i
				evs = append(evs, Moved(fmt.Sprintf("r%d", n), zone, fmt.Sprintf("p%d", i), Base.Add(time.Duration(n)*time.Millisecond), float32(n), 0))
			}
			msgs = append(msgs, Tick(seq, evs...))
		}
		if res := write(t, s, flat(msgs[:3])); res.Inserted != 15 || res.Skipped != 0 {
			t.Fatalf("first write: %+v", res)
		}
		if res := write(t, s, flat(msgs[:3])); res.Inserted != 0 || res.Skipped != 15 {
			t.Fatalf("redelivery: %+v", res)
		}
		batch := flat(append(append([][]store.Record{}, msgs[2:]...), msgs[4])) // overlap + a message twice
		if res := write(t, s, batch); res.Inserted != 15 || res.Skipped != 10 {
			t.Fatalf("overlap: %+v", res)
		}
		for _, zone := range []string{"z0_0", "z1_1"} {
			var want []store.Record
			for _, m := range msgs {
				if m[0].Zone == zone {
					want = append(want, m...)
				}
			}
			byTime, err := s.ZoneEvents(ctx, store.ZoneEventsQuery{Zone: zone})
			if err != nil {
				t.Fatal(err)
			}
			bySeq, err := s.EventsBySeq(ctx, store.SeqRangeQuery{Zone: zone})
			if err != nil {
				t.Fatal(err)
			}
			if len(byTime) != len(want) || len(bySeq) != len(want) {
				t.Fatalf("%s: %d by time, %d by seq, want %d", zone, len(byTime), len(bySeq), len(want))
			}
			for i, w := range want {
				for _, g := range []store.EventRow{byTime[i], bySeq[i]} {
					if g.Seq != w.Seq || g.Index != w.Index || g.EventID != w.EventID || g.TSNs != w.TSNs ||
						g.Type != "player_moved" || string(g.Payload) != string(w.Payload) {
						t.Fatalf("%s row %d = %+v, want (%d, %d) %s", zone, i, g, w.Seq, w.Index, w.EventID)
					}
				}
			}
			z, _, _ := s.Zone(ctx, zone)
			if z.Events != int64(len(want)) || z.LastSeq != want[len(want)-1].Seq {
				t.Fatalf("%s summary %+v", zone, z)
			}
		}
	})

	// EventsBySeqRangeAndPaging: [from, to] by stream sequence, pages that
	// split a record continue after (seq, index), bounded by Limit.
	t.Run("EventsBySeqRangeAndPaging", func(t *testing.T) {
		s := open(t)
		var all []store.Record
		for seq := uint64(1); seq <= 10; seq++ {
			zone := "z0_0"
			if seq%3 == 0 {
				zone = "z2_2"
			}
			var evs []*schema.Event
			for i := 0; i < 4; i++ {
				evs = append(evs, Moved(fmt.Sprintf("q%d.%d", seq, i), zone, "p", Base.Add(time.Duration(seq)*time.Second), 1, 1))
			}
			recs := Tick(seq, evs...)
			all = append(all, recs...)
		}
		write(t, s, all)
		got, err := s.EventsBySeq(ctx, store.SeqRangeQuery{Zone: "z0_0", FromSeq: 2, ToSeq: 5})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 12 || got[0].Seq != 2 || got[0].Index != 0 || got[11].Seq != 5 || got[11].Index != 3 {
			t.Fatalf("range [2,5]: %v", positions(got))
		}
		var paged []store.EventRow
		q := store.SeqRangeQuery{Zone: "z0_0", FromSeq: 1, Limit: 3}
		for page := 0; ; page++ {
			if page > 20 {
				t.Fatal("paging does not end")
			}
			rows, err := s.EventsBySeq(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) > 3 {
				t.Fatalf("page of %d rows, limit 3", len(rows))
			}
			if len(rows) == 0 {
				break
			}
			paged = append(paged, rows...)
			last := rows[len(rows)-1]
			q.AfterSeq, q.AfterIndex, q.HasAfter = last.Seq, last.Index, true
		}
		if len(paged) != 28 {
			t.Fatalf("paged %d rows, want 28: %v", len(paged), positions(paged))
		}
		for i := 1; i < len(paged); i++ {
			a, b := paged[i-1], paged[i]
			if !(a.Seq < b.Seq || (a.Seq == b.Seq && a.Index+1 == b.Index)) {
				t.Fatalf("paged rows out of order at %d: %v", i, positions(paged))
			}
		}
		if _, err := s.EventsBySeq(ctx, store.SeqRangeQuery{Zone: "z0_0", FromSeq: 5, ToSeq: 4}); err == nil {
			t.Fatal("to < from accepted")
		}
	})

	// TwoKillsInOneRecord: two kills by one player in one tick are two
	// kills; a redelivered record counts neither twice.
	t.Run("TwoKillsInOneRecord", func(t *testing.T) {
		s := open(t)
		recs := Tick(1, Joined("j1", "z0_0", "ann", Base, 10), Joined("j2", "z0_0", "ben", Base, 10),
			Joined("j3", "z0_0", "cid", Base, 10), Kill("k1", "z0_0", "ann", "ben", Base), Kill("k2", "z0_0", "ann", "cid", Base))
		write(t, s, recs)
		write(t, s, recs)
		a, _, _ := s.Player(ctx, "ann")
		if a.Kills != 2 {
			t.Fatalf("ann kills %d, want 2", a.Kills)
		}
		z, _, _ := s.Zone(ctx, "z0_0")
		if z.Deaths != 2 || z.Events != 5 || z.Players != 3 {
			t.Fatalf("zone %+v", z)
		}
	})

	// ZonePlayersRejoinLeaveTransfer (issue 10 #10): the zone summary's
	// players is the number of players in the zone: a re-join of a player
	// already present does not count twice, a leave or a transfer out of a
	// player counts once, in any batch order and with redeliveries.
	t.Run("ZonePlayersRejoinLeaveTransfer", func(t *testing.T) {
		ts := func(i int) time.Time { return Base.Add(time.Duration(i) * time.Second) }
		left := func(id, zone, player string, t time.Time) *schema.Event {
			e := NewEvent(id, zone, player, t)
			e.Body = &schema.Event_PlayerLeft{PlayerLeft: &schema.PlayerLeft{Reason: "leave"}}
			return e
		}
		out := func(id, zone, player, to string, t time.Time) *schema.Event {
			e := NewEvent(id, zone, player, t)
			e.Body = &schema.Event_TransferOut{TransferOut: &schema.TransferOut{TransferId: id, ToZone: to}}
			return e
		}
		in := func(id, zone, player, from string, t time.Time) *schema.Event {
			e := NewEvent(id, zone, player, t)
			e.Body = &schema.Event_TransferAccepted{TransferAccepted: &schema.TransferAccepted{TransferId: id, FromZone: from,
				Player: &schema.PlayerState{PlayerId: player, Hp: 10}}}
			return e
		}
		batches := [][]store.Record{
			Tick(1, Joined("a1", "z0_0", "amy", ts(1), 10), Joined("b1", "z0_0", "bo", ts(1), 10)),
			{Rec(2, Joined("a2", "z0_0", "amy", ts(2), 10))}, // re-join (new session) while present: legacy message
			Tick(3, Joined("a3", "z0_0", "amy", ts(3), 10), Joined("c1", "z0_0", "cy", ts(3), 10)),
			Tick(4, left("b2", "z0_0", "bo", ts(4)), left("b3", "z0_0", "bo", ts(4))), // leave twice: counts once
			Tick(5, out("c2", "z0_0", "cy", "z1_1", ts(5))),
			Tick(6, in("c2", "z1_1", "cy", "z0_0", ts(6))),
			Tick(7, Joined("b4", "z0_0", "bo", ts(7), 10), left("a4", "z0_0", "amy", ts(7)), Joined("a5", "z0_0", "amy", ts(7), 10)),
		}
		want := map[string]int64{"z0_0": 2, "z1_1": 1} // amy, bo in z0_0; cy in z1_1
		check := func(name string, s store.Store) {
			for z, n := range want {
				got, ok, err := s.Zone(ctx, z)
				if err != nil || !ok {
					t.Fatalf("%s: zone %s: %v %v", name, z, ok, err)
				}
				if got.Players != n {
					t.Errorf("%s: zone %s players %d, want %d", name, z, got.Players, n)
				}
			}
		}
		inOrder := open(t)
		for _, b := range batches {
			write(t, inOrder, b)
		}
		check("in order", inOrder)
		shuffled := open(t)
		rng := rand.New(rand.NewPCG(3, 4))
		for _, i := range rng.Perm(len(batches)) {
			write(t, shuffled, batches[i])
			write(t, shuffled, batches[rng.IntN(len(batches))]) // a redelivery
		}
		check("shuffled", shuffled)
	})

	// RecordsBatchOrderDoesNotMatter: BatchOrderDoesNotMatter for a game
	// log committed as tick records (several events of a player, kills and
	// re-joins in one record).
	t.Run("RecordsBatchOrderDoesNotMatter", func(t *testing.T) {
		msgs := GameRecords(600, 11, 8)
		var batches [][]store.Record
		for i := 0; i < len(msgs); i += 5 {
			batches = append(batches, flat(msgs[i:min(i+5, len(msgs))]))
		}
		inOrder := open(t)
		for _, b := range batches {
			write(t, inOrder, b)
		}
		shuffled := open(t)
		rng := rand.New(rand.NewPCG(5, 6))
		for _, i := range rng.Perm(len(batches)) {
			write(t, shuffled, batches[i])
			if i%4 == 0 {
				write(t, shuffled, batches[i])
			}
		}
		players, zones := map[string]bool{}, map[string]bool{}
		var kills int64
		for _, r := range flat(msgs) {
			players[r.PlayerID] = true
			zones[r.Zone] = true
		}
		for id := range players {
			w, _, _ := inOrder.Player(ctx, id)
			g, _, err := shuffled.Player(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if w != g {
				t.Errorf("player %s = %+v, in order %+v", id, g, w)
			}
			kills += w.Kills
		}
		var rows int64
		for z := range zones {
			w, _, _ := inOrder.Zone(ctx, z)
			g, _, _ := shuffled.Zone(ctx, z)
			if w != g {
				t.Errorf("zone %s = %+v, in order %+v", z, g, w)
			}
			rows += w.Events
		}
		if kills == 0 || rows != 600 {
			t.Fatalf("kills %d, rows %d (want > 0, 600)", kills, rows)
		}
	})

	t.Run("UndecodableTickRecordIsKept", func(t *testing.T) {
		s := open(t)
		h, _ := TickMsg(1, 1)
		recs := store.DecodeMessage(1, "evt.z0_0", h, []byte{0x42, 0x05, 0x01}, Base)
		write(t, s, recs)
		got, _ := s.EventsBySeq(ctx, store.SeqRangeQuery{Zone: "z0_0"})
		if len(got) != 1 || got[0].Type != "invalid" || got[0].Index != 0 || string(got[0].Payload) != "\x42\x05\x01" {
			t.Fatalf("got %+v", got)
		}
	})

	t.Run("UndecodablePayloadIsKept", func(t *testing.T) {
		s := open(t)
		r := store.Decode(1, "evt.z0_0", []byte{0xff, 0xff, 0xff}, Base)
		write(t, s, []store.Record{r})
		got, _ := s.ZoneEvents(ctx, store.ZoneEventsQuery{Zone: "z0_0"})
		if len(got) != 1 || got[0].Type != "invalid" || got[0].TSNs != Base.UnixNano() || string(got[0].Payload) != "\xff\xff\xff" {
			t.Fatalf("got %+v", got)
		}
	})
}

func seqs(es []store.EventRow) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func positions(es []store.EventRow) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%d/%d", e.Seq, e.Index))
	}
	return out
}

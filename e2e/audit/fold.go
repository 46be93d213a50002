package audit

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/realmstream/realmstream/libs/schema"
)

// PlayerModel is the player read model as the audit re-folds it from the
// event log, independently of persist's projection code.
type PlayerModel struct {
	ID     string
	Name   string
	Zone   string
	X, Y   float32
	HP     int32
	Online bool
	Kills  int64
	Deaths int64
}

// ZoneModel is the zone summary re-folded from the log.
type ZoneModel struct {
	Zone    string
	Events  int64
	LastSeq uint64
	Players int64
	Deaths  int64
}

// Fold replays every zone log in global stream order into the read models:
//   - a player's zone, position, hp and name come from the latest event that
//     states them (joined, transfer accepted, moved, respawned; hp also from
//     hits on it and deaths);
//   - online after joined/transfer accepted, offline after left;
//   - kills/deaths from every kill (AttackHit.killed or PlayerDied);
//   - per zone: events, last sequence, players present (the set of players
//     whose latest membership event in the zone is joined or transfer
//     accepted, not left or transferred out: a re-join while present counts
//     once), deaths.
func Fold(logs map[string]*ZoneLog) (map[string]*PlayerModel, map[string]*ZoneModel) {
	var all []LoggedEvent
	for _, zl := range logs {
		all = append(all, zl.Events...)
	}
	sort.Slice(all, func(i, j int) bool {
		return all[i].Seq < all[j].Seq || (all[i].Seq == all[j].Seq && all[i].Index < all[j].Index)
	})
	present := map[string]map[string]bool{} // zone -> players in it
	players := map[string]*PlayerModel{}
	zones := map[string]*ZoneModel{}
	get := func(id string) *PlayerModel {
		p := players[id]
		if p == nil {
			p = &PlayerModel{ID: id}
			players[id] = p
		}
		return p
	}
	state := func(p *PlayerModel, s *schema.PlayerState, zone string) {
		if s == nil {
			return
		}
		p.Zone = zone
		if s.Name != "" {
			p.Name = s.Name
		}
		p.X, p.Y, p.HP, p.Online = s.X, s.Y, s.Hp, true
	}
	for _, le := range all {
		ev := le.Event
		z := zones[ev.Zone]
		if z == nil {
			z = &ZoneModel{Zone: ev.Zone}
			zones[ev.Zone] = z
		}
		z.Events++
		z.LastSeq = le.Seq
		pid := ev.PlayerId
		member := func(in bool) {
			if pid == "" {
				return
			}
			if present[ev.Zone] == nil {
				present[ev.Zone] = map[string]bool{}
			}
			if in {
				present[ev.Zone][pid] = true
			} else {
				delete(present[ev.Zone], pid)
			}
			z.Players = int64(len(present[ev.Zone]))
		}
		switch b := ev.Body.(type) {
		case *schema.Event_PlayerJoined:
			state(get(pid), b.PlayerJoined.Player, ev.Zone)
			member(true)
		case *schema.Event_TransferAccepted:
			state(get(pid), b.TransferAccepted.Player, ev.Zone)
			member(true)
		case *schema.Event_TransferOut:
			member(false)
		case *schema.Event_PlayerMoved:
			p := get(pid)
			p.Zone, p.X, p.Y = ev.Zone, b.PlayerMoved.X, b.PlayerMoved.Y
		case *schema.Event_PlayerLeft:
			get(pid).Online = false
			member(false)
		case *schema.Event_AttackHit:
			t := get(b.AttackHit.TargetId)
			t.HP = b.AttackHit.TargetHp
			if b.AttackHit.Killed {
				t.Deaths++
				z.Deaths++
				if pid != "" && pid != t.ID {
					get(pid).Kills++
				}
			}
		case *schema.Event_PlayerDied:
			p := get(pid)
			p.HP = 0
			p.Deaths++
			z.Deaths++
			if k := b.PlayerDied.KillerId; k != "" && k != pid {
				get(k).Kills++
			}
		case *schema.Event_PlayerRespawned:
			p := get(pid)
			p.X, p.Y, p.HP = b.PlayerRespawned.X, b.PlayerRespawned.Y, b.PlayerRespawned.Hp
		}
	}
	return players, zones
}

// ReadModelFindings compares the stored read models with the re-fold.
type ReadModelFindings struct {
	Players         int `json:"players"`
	PlayersStored   int `json:"players_stored"`
	PlayerMismatch  int `json:"player_mismatches"`
	Zones           int `json:"zones"`
	ZoneMismatch    int `json:"zone_mismatches"`
	PlayersOnShards int `json:"players_on_two_shards"`
}

// CheckReadModels reads players and zone_summaries from every shard and
// compares them field by field with Fold.
func CheckReadModels(ctx context.Context, urls []string, logs map[string]*ZoneLog) (ReadModelFindings, []Violation, error) {
	want, wantZones := Fold(logs)
	var f ReadModelFindings
	f.Players, f.Zones = len(want), len(wantZones)
	var vs []Violation
	per := map[string]int{}
	add := func(check, format string, a ...any) {
		per[check]++
		if per[check] <= 25 {
			vs = append(vs, Violation{check, fmt.Sprintf(format, a...)})
		}
	}
	got := map[string]*PlayerModel{}
	gotZones := map[string]*ZoneModel{}
	for i, u := range urls {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			return f, nil, fmt.Errorf("audit: shard %d: %w", i, err)
		}
		rows, err := conn.Query(ctx, `SELECT player_id, coalesce(name, ''), coalesce(zone, ''), coalesce(x, 0), coalesce(y, 0),
			coalesce(hp, 0), coalesce(online, false), kills, deaths FROM players`)
		if err == nil {
			for rows.Next() {
				p := &PlayerModel{}
				if err = rows.Scan(&p.ID, &p.Name, &p.Zone, &p.X, &p.Y, &p.HP, &p.Online, &p.Kills, &p.Deaths); err != nil {
					break
				}
				if _, dup := got[p.ID]; dup {
					f.PlayersOnShards++
					add("read-model-player", "player %s has a row on more than one shard", p.ID)
				}
				got[p.ID] = p
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		if err == nil {
			rows, err = conn.Query(ctx, `SELECT zone, events, last_seq, players, deaths FROM zone_summaries`)
			if err == nil {
				for rows.Next() {
					z := &ZoneModel{}
					var last int64
					if err = rows.Scan(&z.Zone, &z.Events, &last, &z.Players, &z.Deaths); err != nil {
						break
					}
					z.LastSeq = uint64(last)
					if o := gotZones[z.Zone]; o != nil {
						// A zone's summary may be split over shards only
						// during a move: add them up.
						o.Events += z.Events
						o.Players += z.Players
						o.Deaths += z.Deaths
						o.LastSeq = max(o.LastSeq, z.LastSeq)
					} else {
						gotZones[z.Zone] = z
					}
				}
				rows.Close()
				if err == nil {
					err = rows.Err()
				}
			}
		}
		conn.Close(ctx)
		if err != nil {
			return f, nil, fmt.Errorf("audit: shard %d read models: %w", i, err)
		}
	}
	f.PlayersStored = len(got)
	traced := map[string]int{}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		w := want[id]
		g := got[id]
		if g == nil {
			f.PlayerMismatch++
			add("read-model-player", "player %s (zone %s) has no row", id, w.Zone)
			continue
		}
		var diffs []string
		if w.Zone != g.Zone {
			diffs = append(diffs, fmt.Sprintf("zone %q/%q", w.Zone, g.Zone))
		}
		if w.Name != g.Name {
			diffs = append(diffs, fmt.Sprintf("name %q/%q", w.Name, g.Name))
		}
		if math.Abs(float64(w.X-g.X)) > 0.01 || math.Abs(float64(w.Y-g.Y)) > 0.01 {
			diffs = append(diffs, fmt.Sprintf("pos (%.2f,%.2f)/(%.2f,%.2f)", w.X, w.Y, g.X, g.Y))
		}
		if w.HP != g.HP {
			diffs = append(diffs, fmt.Sprintf("hp %d/%d", w.HP, g.HP))
		}
		if w.Online != g.Online {
			diffs = append(diffs, fmt.Sprintf("online %v/%v", w.Online, g.Online))
		}
		if w.Kills != g.Kills || w.Deaths != g.Deaths {
			diffs = append(diffs, fmt.Sprintf("kills/deaths %d/%d vs %d/%d", w.Kills, w.Deaths, g.Kills, g.Deaths))
		}
		if len(diffs) > 0 {
			f.PlayerMismatch++
			detail := fmt.Sprintf("player %s: re-fold/stored differ: %v", id, diffs)
			// Evidence for the first few mismatches of each kind.
			kind := strings.SplitN(diffs[0], " ", 2)[0]
			if traced[kind] < 3 {
				traced[kind]++
				detail += "; its last events: " + playerTrace(logs, id, 8)
			}
			add("read-model-player", "%s", detail)
		}
	}
	for id := range got {
		if want[id] == nil {
			f.PlayerMismatch++
			add("read-model-player", "player %s is stored but in no event", id)
		}
	}
	for z, w := range wantZones {
		g := gotZones[z]
		if g == nil {
			f.ZoneMismatch++
			add("read-model-zone", "zone %s has no summary", z)
			continue
		}
		if *g != *w {
			f.ZoneMismatch++
			add("read-model-zone", "zone %s: re-fold %+v, stored %+v", z, *w, *g)
		}
	}
	for _, c := range []string{"read-model-player", "read-model-zone"} {
		if per[c] > 25 {
			vs = append(vs, Violation{c, fmt.Sprintf("... %d in all", per[c])})
		}
	}
	return f, vs, nil
}

// playerTrace lists the last n events that touch player id (as actor or
// target), in stream order: the evidence for a read-model mismatch.
func playerTrace(logs map[string]*ZoneLog, id string, n int) string {
	var hits []LoggedEvent
	for _, zl := range logs {
		for _, le := range zl.Events {
			ev := le.Event
			if ev.PlayerId == id || ev.GetAttackHit().GetTargetId() == id {
				hits = append(hits, le)
			}
		}
	}
	sort.Slice(hits, func(i, j int) bool {
		return hits[i].Seq < hits[j].Seq || (hits[i].Seq == hits[j].Seq && hits[i].Index < hits[j].Index)
	})
	// The first events (join) and the last ones, skipping the refusals in
	// between: what a projection must have folded.
	var keep []LoggedEvent
	for i, le := range hits {
		if i < 3 || le.Event.GetCommandRejected() == nil {
			keep = append(keep, le)
		}
	}
	hits = keep
	if len(hits) > n {
		hits = append(hits[:3:3], hits[len(hits)-(n-3):]...)
	}
	var b strings.Builder
	for _, le := range hits {
		ev := le.Event
		fmt.Fprintf(&b, "[seq %d/%d %s %s", le.Seq, le.Index, ev.Zone, EventType(ev))
		switch x := ev.Body.(type) {
		case *schema.Event_AttackHit:
			fmt.Fprintf(&b, " by %s on %s hp=%d killed=%v", ev.PlayerId, x.AttackHit.TargetId, x.AttackHit.TargetHp, x.AttackHit.Killed)
		case *schema.Event_PlayerJoined:
			fmt.Fprintf(&b, " hp=%d name=%q", x.PlayerJoined.GetPlayer().GetHp(), x.PlayerJoined.GetPlayer().GetName())
		case *schema.Event_TransferAccepted:
			fmt.Fprintf(&b, " hp=%d", x.TransferAccepted.GetPlayer().GetHp())
		case *schema.Event_PlayerRespawned:
			fmt.Fprintf(&b, " hp=%d", x.PlayerRespawned.Hp)
		}
		b.WriteString("] ")
	}
	return b.String()
}

package zone

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
)

// TestZoneProperty is the model-based test of a zone (issue 10): random
// sequences of join, leave, move, attack (deaths and respawns), chat,
// rejoin with a new session and transfers in, with random redeliveries
// (the same command resent under a new Nats-Msg-Id, as past the duplicate
// window) and owner crashes (kill, new owner from snapshot + log, unacked
// commands redelivered). After each run:
//
//   - the log passes zonelog.Check (linear, fenced, unique ids, no command
//     caused two events);
//   - every distinct command sent caused exactly one event;
//   - the state the zone wrote in its final snapshot equals the fold of its
//     log (rules.Apply), and agrees with a simple reference fold (who is in
//     the zone, with which session, kills and deaths) computed here
//     independently of the rules.
//
// CI runs seeds 1-4 (a few seconds). A longer run:
//
//	REALM_PROPERTY_SEEDS=200 go test -count=1 -run TestZoneProperty ./services/world/internal/zone/
func TestZoneProperty(t *testing.T) {
	seeds := 4
	if v, err := strconv.Atoi(os.Getenv("REALM_PROPERTY_SEEDS")); err == nil && v > 0 {
		seeds = v
	}
	_, nc, js := natstest.StartWithStreams(t)
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			e := envOn(t, nc, js, 1)
			propertyRun(t, e, uint64(seed), fmt.Sprintf("z%d_%d", seed%3, (seed/3)%3)+"_p"+strconv.Itoa(seed))
		})
	}
	t.Logf("%d cases", seeds)
}

func propertyRun(t *testing.T, e *env, seed uint64, z string) {
	rng := rand.New(rand.NewPCG(seed, 99))
	cfg := e.config(z)
	cfg.AckWait = 400 * time.Millisecond
	cfg.SnapshotEvery = 7 // snapshots in the middle of the runs too
	cfg.Rules = e.rules
	r := e.start(cfg)
	players := []string{"a", "b", "c", "d"}
	session := map[string]string{}
	seqs := map[string]uint64{}
	pos := map[string][2]float32{}
	var sent []*schema.Command
	ids := map[string]bool{}
	nsess := 0
	publish := func(cmd *schema.Command, msgID string) {
		b, _ := proto.Marshal(cmd)
		m := nats.NewMsg(wire.CommandSubject(z))
		m.Data = b
		m.Header.Set(wire.HeaderMsgID, msgID)
		if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	cmdOf := func(p string, c *schema.Command) {
		s := session[p]
		if s == "" {
			nsess++
			s = fmt.Sprintf("%s-%d-s%d", p, seed, nsess)
			session[p] = s
		}
		seqs[s]++
		c.CommandId, c.SessionId, c.ClientSeq, c.PlayerId, c.Zone, c.ReceivedAtNs = wire.CommandID(s, seqs[s]), s, seqs[s], p, z, time.Now().UnixNano()
		sent = append(sent, c)
		ids[c.CommandId] = true
		publish(c, c.CommandId)
	}
	ops := 0
	for step := 0; step < 40; step++ {
		p := players[rng.IntN(len(players))]
		switch k := rng.IntN(100); {
		case k < 15: // join (a first join or a rejoin of the same session)
			cmdOf(p, joinCmd(z))
		case k < 22: // rejoin with a new session
			session[p] = ""
			cmdOf(p, joinCmd(z))
		case k < 30:
			cmdOf(p, leaveCmd())
		case k < 50:
			q := pos[p]
			cmdOf(p, moveCmd(q[0]+float32(rng.IntN(5)), q[1]))
		case k < 68:
			cmdOf(p, attackCmd(players[rng.IntN(len(players))]))
		case k < 75:
			cmdOf(p, chatCmd("hi"))
		case k < 82: // a transfer in: the player arrives next to the others
			tid := fmt.Sprintf("t%d-%d", seed, step)
			nsess++
			s := fmt.Sprintf("%s-%d-x%d", p, seed, nsess)
			session[p] = s
			pos[p] = [2]float32{150, 850}
			c := &schema.Command{CommandId: tid, Zone: z, Body: &schema.Command_TransferIn{TransferIn: &schema.TransferIn{TransferId: tid, FromZone: "elsewhere",
				Player: &schema.PlayerState{PlayerId: p, Name: p, SessionId: s, X: 150, Y: 850, Hp: 100, MaxHp: 100}}}}
			sent = append(sent, c)
			ids[tid] = true
			publish(c, tid)
		case k < 92 && len(sent) > 0: // redelivery past the duplicate window
			c := sent[rng.IntN(len(sent))]
			publish(c, fmt.Sprintf("again-%d-%s", step, c.CommandId))
		case k < 96: // owner crash; a new owner takes over at once
			r.crash(t)
			e.locks = freshLocks(t)
			r = e.start(cfg)
		default: // let respawns and ticks happen
			time.Sleep(120 * time.Millisecond)
		}
		ops++
	}
	var all []string
	for id := range ids {
		all = append(all, id)
	}
	sort.Strings(all)
	l := e.waitApplied(z, all...)
	r.stop(t) // graceful: a final snapshot of the state
	l = e.log(z)
	rep, vs := zonelog.Check(map[string][]zonelog.Entry{z: l})
	if len(vs) > 0 {
		t.Fatalf("seed %d: %v", seed, vs)
	}
	if len(rep.Applied) != len(ids) {
		t.Fatalf("seed %d: %d commands caused events, %d distinct commands sent", seed, len(rep.Applied), len(ids))
	}
	kv, err := e.snaps.Get(context.Background(), z)
	if err != nil {
		t.Fatal(err)
	}
	snap := &schema.ZoneSnapshot{}
	if err := proto.Unmarshal(kv.Value(), snap); err != nil {
		t.Fatal(err)
	}
	fold := foldLog(e.rules, z, l)
	if !proto.Equal(snap, fold) {
		t.Fatalf("seed %d: the zone's final state differs from the fold of its log:\nzone %v\nfold %v", seed, snap, fold)
	}
	ref := referenceFold(l)
	if got := summarise(snap); got != ref {
		t.Fatalf("seed %d: zone state %s, reference fold %s", seed, got, ref)
	}
}

func freshLocks(t *testing.T) *lock.Locker {
	l, err := lock.New(lock.NewTable(), lock.Options{TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// referenceFold is the model: a fold of the log's events that knows only
// presence, sessions, kills and deaths, written without the rules.
func referenceFold(l []zonelog.Entry) string {
	type body struct {
		session       string
		kills, deaths int64
	}
	in := map[string]*body{}
	for _, e := range l {
		ev := e.Event
		switch b := ev.Body.(type) {
		case *schema.Event_PlayerJoined:
			p := b.PlayerJoined.Player
			in[p.PlayerId] = &body{session: p.SessionId, kills: p.Kills, deaths: p.Deaths}
		case *schema.Event_TransferAccepted:
			p := b.TransferAccepted.Player
			in[p.PlayerId] = &body{session: p.SessionId, kills: p.Kills, deaths: p.Deaths}
		case *schema.Event_PlayerLeft, *schema.Event_TransferOut:
			delete(in, ev.PlayerId)
		case *schema.Event_AttackHit:
			if b.AttackHit.Killed {
				if a := in[ev.PlayerId]; a != nil {
					a.kills++
				}
				if v := in[b.AttackHit.TargetId]; v != nil {
					v.deaths++
				}
			}
		}
	}
	ps := map[string]*schema.PlayerState{}
	for id, b := range in {
		ps[id] = &schema.PlayerState{SessionId: b.session, Kills: b.kills, Deaths: b.deaths}
	}
	return summarise(&schema.ZoneSnapshot{Players: ps})
}

func summarise(s *schema.ZoneSnapshot) string {
	var ids []string
	for id := range s.Players {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := ""
	for _, id := range ids {
		p := s.Players[id]
		out += fmt.Sprintf("%s(%s k%d d%d) ", id, p.SessionId, p.Kills, p.Deaths)
	}
	return out
}

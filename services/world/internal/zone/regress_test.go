package zone

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
	"github.com/realmstream/realmstream/services/world/internal/rules"
)

// TestDuplicateBehindPositionIsFenced (issue 10 #1): JetStream answers
// Duplicate with the sequence of an older message carrying the same id and
// this owner's fence. Before the fix the appender took that older sequence
// as its position (the log position moved back); now it is refused.
func TestDuplicateBehindPositionIsFenced(t *testing.T) {
	_, _, js := natstest.StartWithStreams(t)
	ctx := context.Background()
	a := testAppender(t, js, "z", 1)
	if _, err := one(ctx, a, 1, claimEv("z/claim/1", 1)); err != nil {
		t.Fatal(err)
	}
	old, err := one(ctx, a, 2, chatEv("z/c/s:1", "s:1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one(ctx, a, 3, chatEv("z/c/s:2", "s:2")); err != nil {
		t.Fatal(err)
	}
	pos := a.lastSeq
	// The same record id as tick 2 (a counter that restarted would do this).
	_, err = one(ctx, a, 2, chatEv("z/c/s:3", "s:3"))
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("duplicate of seq %d behind position %d: %v, want ErrFenced", old, pos, err)
	}
	if a.lastSeq != pos {
		t.Fatalf("position moved from %d to %d", pos, a.lastSeq)
	}
}

// TestSnapshotRefusesPositionBack (issue 10 #1): the snapshot arithmetic
// refuses a position before the last snapshot's instead of wrapping around.
func TestSnapshotRefusesPositionBack(t *testing.T) {
	if _, err := snapshotDue(10, 5, 8, 9, 100, 0, 0, false); !errors.Is(err, ErrSnapshotBehind) {
		t.Fatalf("position 5 after a snapshot at 9: %v, want ErrSnapshotBehind", err)
	}
	if due, err := snapshotDue(20, 50, 10, 9, 10, 0, 0, false); err != nil || !due {
		t.Fatalf("10 events since the snapshot, every 10: due %v, %v", due, err)
	}
	if due, err := snapshotDue(12, 5000, 10, 9, 10, 0, 0, false); err != nil || due {
		t.Fatalf("2 events since the snapshot (stream moved 4991): due %v, %v", due, err)
	}
}

// TestRespawnIDsUniqueAfterRejoin (issue 10 #1): die, respawn, leave,
// rejoin, die, respawn: the second respawn has its own id (the old one
// came from the death count, which restarts at a rejoin), the log passes
// Check, and the folded kills are the kills of the log.
func TestRespawnIDsUniqueAfterRejoin(t *testing.T) {
	e := newEnv(t)
	const z = "z1_1"
	e.start(e.config(z))
	now := time.Now()
	e.send(z, "sa", 1, "a", joinCmd(z), now)
	// The victim joins where the attacker can reach: put both by transfer.
	put := func(id, player, session string, x float32) {
		in := &schema.Command{CommandId: id, Body: &schema.Command_TransferIn{TransferIn: &schema.TransferIn{TransferId: id, FromZone: "none",
			Player: &schema.PlayerState{PlayerId: player, Name: player, SessionId: session, X: x, Y: 500, Hp: 100, MaxHp: 100}}}}
		b, _ := proto.Marshal(in)
		m := nats.NewMsg(wire.CommandSubject(z))
		m.Data = b
		m.Header.Set(wire.HeaderMsgID, id)
		if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	put("t-a", "a", "sa2", 500)
	put("t-v", "v", "sv", 510)
	e.waitApplied(z, "t-a", "t-v")
	seq := uint64(0)
	kill := func() {
		for i := 0; i < 4; i++ {
			seq++
			e.send(z, "sa2", seq, "a", attackCmd("v"), time.Now())
			e.waitApplied(z, wire.CommandID("sa2", seq))
		}
	}
	respawns := func() int {
		n := 0
		for _, en := range e.log(z) {
			if en.Event.GetPlayerRespawned() != nil {
				n++
			}
		}
		return n
	}
	kill()
	waitfor.True(t, 5*time.Second, func() error {
		if respawns() < 1 {
			return errors.New("no respawn yet")
		}
		return nil
	})
	e.send(z, "sv", 1, "v", leaveCmd(), time.Now())
	e.waitApplied(z, "sv:1")
	put("t-v2", "v", "sv2", 510) // rejoin next to the attacker: deaths start again at 0
	e.waitApplied(z, "t-v2")
	kill()
	waitfor.True(t, 5*time.Second, func() error {
		if respawns() < 2 {
			return errors.New("no second respawn yet")
		}
		return nil
	})
	l := e.log(z) // Check fails on a repeated event id
	st := foldLog(e.rules, z, l)
	if k := st.Players["a"].GetKills(); k != 2 {
		t.Fatalf("attacker kills %d, want 2", k)
	}
}

// TestSnapshotEveryCountsZoneEvents (issue 10 #11): --snapshot-every counts
// the zone's own events. Other zones' events between ours move the shared
// stream's sequence far ahead; before the fix they triggered snapshots.
func TestSnapshotEveryCountsZoneEvents(t *testing.T) {
	e := newEnv(t)
	const z = "z1_1"
	cfg := e.config(z)
	cfg.SnapshotEvery = 20
	r := e.start(cfg)
	now := time.Now()
	e.send(z, "s", 1, "p", joinCmd(z), now)
	for i := 0; i < 5; i++ {
		for k := 0; k < 30; k++ { // another zone's log grows meanwhile
			if _, err := e.js.Publish(context.Background(), wire.EventSubject("z0_0"), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		e.send(z, "s", uint64(2+i), "p", chatCmd("x"), now)
		e.waitApplied(z, wire.CommandID("s", uint64(2+i)))
	}
	if n := metric(t, r.m.Snapshots); n != 0 {
		t.Fatalf("%v snapshots after 7 zone events with --snapshot-every 20", n)
	}
	for i := 0; i < 20; i++ {
		e.send(z, "s", uint64(7+i), "p", chatCmd("y"), now)
	}
	e.waitApplied(z, wire.CommandID("s", 26))
	waitfor.True(t, 5*time.Second, func() error {
		if n := metric(t, r.m.Snapshots); n != 1 {
			return fmt.Errorf("%v snapshots after 27 events, want 1", n)
		}
		return nil
	})
}

// TestUndecodableRecordQuarantined (issue 10 #14): a zone log holding a
// message that cannot be decoded is still recovered: the message is
// skipped with an alarm (metric, Alert on alerts.critical) and the zone
// claims after it and plays on.
func TestUndecodableRecordQuarantined(t *testing.T) {
	e := newEnv(t)
	const z = "z1_1"
	a := e.start(e.config(z))
	e.send(z, "s", 1, "p", joinCmd(z), time.Now())
	e.waitApplied(z, "s:1")
	a.stop(t)
	// A corrupt record at the end of the log (e.g. written by a broken tool).
	st := foldLog(e.rules, z, e.log(z))
	m := nats.NewMsg(wire.EventSubject(z))
	m.Data = []byte{0xff, 0xff, 0xff, 0x01, 0x02}
	m.Header.Set(wire.HeaderSchema, wire.SchemaTickRecord)
	m.Header.Set(wire.HeaderMsgID, "corrupt")
	m.Header.Set(wire.HeaderExpectedLastSubjSeq, strconv.FormatUint(st.LastSeq, 10))
	ack, err := e.js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	alerts := make(chan *nats.Msg, 4)
	if _, err := e.nc.ChanSubscribe(wire.AlertSubject("critical"), alerts); err != nil {
		t.Fatal(err)
	}
	if err := e.snaps.Purge(context.Background(), z); err != nil { // recover from the log, through the bad message
		t.Fatal(err)
	}
	b := e.start(e.config(z))
	if n := metric(t, b.m.Quarantined); n != 1 {
		t.Fatalf("quarantined %v messages, want 1", n)
	}
	select {
	case am := <-alerts:
		var al schema.Alert
		if err := proto.Unmarshal(am.Data, &al); err != nil || al.Labels["seq"] != strconv.FormatUint(ack.Sequence, 10) || al.Labels["zone"] != z {
			t.Fatalf("alert %v (%v)", &al, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no alert on " + wire.AlertSubject("critical"))
	}
	e.send(z, "s", 2, "p", chatCmd("after"), time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitfor.True(t, 10*time.Second, func() error {
		n := 0
		err := scanLog(ctx, e.js, z, ack.Sequence+1, func(seq uint64, h nats.Header, data []byte) {
			es, _ := zonelog.Decode(seq, h, data)
			for _, en := range es {
				if en.Event.CommandId == "s:2" {
					n++
				}
			}
		})
		if err != nil || n != 1 {
			return fmt.Errorf("s:2 applied %d times after the quarantined message (%v)", n, err)
		}
		return nil
	})
	if p := b.status().Players; p != 1 {
		t.Fatalf("%d players after recovery, want 1", p)
	}
}

// TestDisconnectGrace (issue 10 #13): a Disconnect keeps the body for the
// grace period, then removes it (PlayerLeft "disconnect"); a later command
// of the session within the grace cancels the removal.
func TestDisconnectGrace(t *testing.T) {
	e := newEnv(t)
	const z = "z1_1"
	cfg := e.config(z)
	r := e.start(cfg)
	now := time.Now()
	e.send(z, "s1", 1, "p1", joinCmd(z), now)
	e.send(z, "s2", 1, "p2", joinCmd(z), now)
	e.waitApplied(z, "s1:1", "s2:1")
	sent := time.Now()
	e.send(z, "s1", 2, "p1", disconnectCmd(), sent)
	e.send(z, "s2", 2, "p2", disconnectCmd(), sent)
	time.Sleep(cfg.DisconnectGrace / 3)
	e.send(z, "s2", 3, "p2", chatCmd("I am back"), time.Now()) // resumed: cancels p2's removal
	l := e.waitApplied(z, "s1:2", "s2:3")
	var left *zonelog.Entry
	for i, en := range l {
		if en.Event.GetPlayerLeft() != nil {
			left = &l[i]
		}
	}
	if left == nil || left.Event.PlayerId != "p1" || left.Event.GetPlayerLeft().Reason != "disconnect" {
		t.Fatalf("removal %+v", left)
	}
	if d := time.Duration(left.Event.TimestampNs - sent.UnixNano()); d < cfg.DisconnectGrace {
		t.Fatalf("removed %v after the disconnect, grace %v", d, cfg.DisconnectGrace)
	}
	time.Sleep(2 * cfg.DisconnectGrace)
	st := foldLog(e.rules, z, e.log(z))
	if st.Players["p1"] != nil || st.Players["p2"] == nil {
		t.Fatalf("players after the grace: %v", st.Players)
	}
	if r.status().Players != 1 {
		t.Fatalf("zone reports %d players", r.status().Players)
	}
	e.waitAcked(z, 5*time.Second)
}

// TestJoinWhileInAnotherZone (issue 10 #5): a player is in exactly one
// zone. A Join in z0_0 of a player in z1_1 is refused (before the fix both
// zones held the body); after leaving z1_1 the join is accepted; a player
// who crosses a border is recorded in the target zone.
func TestJoinWhileInAnotherZone(t *testing.T) {
	e := newEnv(t)
	kv, err := e.js.CreateOrUpdateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "world_players", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range []string{"z1_1", "z0_0"} {
		cfg := e.config(z)
		cfg.Players = kv
		e.start(cfg)
	}
	now := time.Now()
	e.send("z1_1", "s1", 1, "p", joinCmd("z1_1"), now)
	e.waitApplied("z1_1", "s1:1")
	e.send("z0_0", "s1", 2, "p", joinCmd("z0_0"), now) // same session
	e.send("z0_0", "s2", 1, "p", joinCmd("z0_0"), now) // a new session
	e.send("z1_1", "s3", 1, "p", joinCmd("z1_1"), now) // a rejoin where it is: fine
	l := e.waitApplied("z0_0", "s1:2", "s2:1")
	for _, en := range l {
		if en.Event.CommandId != "" && en.Event.GetCommandRejected() == nil {
			t.Fatalf("z0_0 accepted %s while p is in z1_1", rules.FormatEvent(en.Event))
		}
	}
	e.waitApplied("z1_1", "s3:1")
	e.send("z1_1", "s3", 2, "p", leaveCmd(), now)
	e.waitApplied("z1_1", "s3:2")
	waitfor.True(t, 5*time.Second, func() error {
		if _, err := kv.Get(context.Background(), "p"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("entry of p after its leave: %v", err)
		}
		return nil
	})
	e.send("z0_0", "s4", 1, "p", joinCmd("z0_0"), now)
	l = e.waitApplied("z0_0", "s4:1")
	if last := l[len(l)-1].Event; last.GetPlayerJoined() == nil {
		t.Fatalf("join after the leave: %s", rules.FormatEvent(last))
	}
	st0 := foldLog(e.rules, "z0_0", l)
	st1 := foldLog(e.rules, "z1_1", e.log("z1_1"))
	if st0.Players["p"] == nil || st1.Players["p"] != nil {
		t.Fatalf("p in z0_0: %v, in z1_1: %v", st0.Players["p"] != nil, st1.Players["p"] != nil)
	}
}

// TestRedeliveryAfterRoundTrip (issue 10, the e2e flake "command-not-applied"
// after a world crash): a command delivered to an owner that dies comes back
// after the ack wait, behind newer commands of its session. When those newer
// ones took the player across the border and a transfer brought it back
// (TransferIn with a later client seq), the returning command must still be
// decided. Before the fix the TransferAccepted marked every seq of the
// session up to the transfer's as applied, so the redelivery was taken for a
// duplicate and acked without an event: lost.
func TestRedeliveryAfterRoundTrip(t *testing.T) {
	e := newEnv(t)
	const z, west = "z1_1", "z0_1"
	// Leases and the ack wait long enough that a loaded machine does not
	// end them: the test is about the order of the redelivery.
	e.longLeases()
	cfg := e.config(z)
	cfg.AckWait = 3 * time.Second
	a := e.start(cfg)
	// The player stands at the west border of z1_1 (arrived by transfer).
	in := &schema.Command{CommandId: "t-1", Body: &schema.Command_TransferIn{TransferIn: &schema.TransferIn{TransferId: "t-1", FromZone: "none",
		Player: &schema.PlayerState{PlayerId: "p", Name: "p", SessionId: "s", LastInputSeq: 1, X: 5, Y: 500, Hp: 100, MaxHp: 100}}}}
	publishCmd(t, e.js, z, in)
	e.waitApplied(z, "t-1")
	a.stop(t)

	// Seq 2 was delivered to an owner that died (this test plays it):
	// fetched from the zone's durable and never acked, kept in progress
	// until the round trip is done, so that it comes back only after it.
	e.send(z, "s", 2, "p", chatCmd("sent before the crash"), time.Now())
	release := e.holdDelivery(z, "s:2")

	// The next owner takes the newer commands first: seq 3 walks west
	// across the border (TransferOut), and the player comes back from z0_1
	// at seq 5 (the neighbour's TransferIn).
	e.start(cfg)
	e.send(z, "s", 3, "p", moveCmd(-3, 500), time.Now())
	e.waitApplied(z, "s:3")
	back := rules.TransferID(west, z, "s:5")
	in = &schema.Command{CommandId: back, Body: &schema.Command_TransferIn{TransferIn: &schema.TransferIn{TransferId: back, FromZone: west,
		Player: &schema.PlayerState{PlayerId: "p", Name: "p", SessionId: "s", LastInputSeq: 5, X: 3, Y: 500, Hp: 100, MaxHp: 100}}}}
	publishCmd(t, e.js, z, in)
	e.waitApplied(z, back)
	release()

	// Seq 2 comes back after the ack wait and is acked: it must have caused
	// its event.
	e.waitAcked(z, 15*time.Second)
	ev := e.eventOf(z, "s:2")
	if ev == nil {
		t.Fatal("s:2, redelivered after the round trip, was acked without an event (taken for a duplicate)")
	}
	if ev.GetChatSent() == nil {
		t.Fatalf("s:2 caused %s, want its chat", rules.FormatEvent(ev))
	}
	// And a resend of a command the player sent in z0_1 (seq 4) is still a
	// duplicate here: the seqs between the zone's own and the transfer's
	// belong to the source zone.
	e.send(z, "s", 4, "p", chatCmd("sent in z0_1, resent here"), time.Now())
	e.send(z, "s", 6, "p", chatCmd("after"), time.Now())
	l := e.waitApplied(z, "s:6")
	for _, en := range l {
		if en.Event.CommandId == "s:4" {
			t.Fatalf("s:4 (a seq of the source zone) decided again here: %s", rules.FormatEvent(en.Event))
		}
	}
}

// publishCmd publishes cmd to cmd.<zone> under its command id.
func publishCmd(t *testing.T, js jetstream.JetStream, z string, cmd *schema.Command) {
	t.Helper()
	b, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(wire.CommandSubject(z))
	m.Data = b
	m.Header.Set(wire.HeaderMsgID, cmd.CommandId)
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// sharedLease is a lease both test owners hold at once (what two instances
// that took a zone over at the same time believe): a fence of the lock
// store's at or below the log's, valid until the test ends.
type sharedLease struct {
	fence uint64
	ctx   context.Context
}

func (l sharedLease) Fence() uint64            { return l.fence }
func (l sharedLease) Valid() bool              { return l.ctx.Err() == nil }
func (l sharedLease) Context() context.Context { return l.ctx }

// gatedClaim holds a zone's first append (its claim) until gate says go,
// and then either sends it or loses it (as a publish lost in a reconnect).
type gatedClaim struct {
	jetstream.JetStream
	subject string
	once    sync.Once
	reached chan struct{} // closed when the claim is about to be sent
	gate    chan struct{} // closed to let it go
	lose    bool
	sent    chan struct{} // closed after it was sent (or lost)
}

func (g *gatedClaim) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	first := false
	if m.Subject == g.subject {
		g.once.Do(func() { first = true })
	}
	if !first {
		return g.JetStream.PublishMsg(ctx, m, opts...)
	}
	close(g.reached)
	<-g.gate
	defer close(g.sent)
	if g.lose {
		return nil, nats.ErrTimeout
	}
	return g.JetStream.PublishMsg(ctx, m, opts...)
}

// TestTwoOwnersClaimTheSameFence (e2e loop run 3): two instances take the
// zone over at once with lock-store fences at or below the log's (Redis lost
// its counter), so both claim max(lease fence, previous + 1) = 2 from the
// same log end: the same record id. world-1's claim is stored; world-2's is
// lost and resolved from the log's last message. Before the fix world-2
// took world-1's claim for its own and both ran the zone with fence 2; now
// world-2's claim is refused, it claims again with fence 3, world-1 steps
// down at its next commit, and every command is applied once.
func TestTwoOwnersClaimTheSameFence(t *testing.T) {
	e := newEnv(t)
	const z = "z1_1"
	first := e.start(e.config(z))
	e.send(z, "s", 1, "p", joinCmd(z), time.Now())
	e.waitApplied(z, "s:1")
	first.stop(t) // the log's last claim has fence 1

	lctx, lcancel := context.WithCancel(context.Background())
	defer lcancel()
	run := func(instance string, g *gatedClaim) *running {
		cfg := e.config(z)
		cfg.Instance, cfg.JS = instance, g
		ctx, cancel := context.WithCancelCause(context.Background())
		r := &running{cancel: cancel, done: make(chan error, 1), m: NewMetrics(nil)}
		cfg.Lease, cfg.Metrics = sharedLease{fence: 1, ctx: lctx}, r.m
		cfg.OnStatus = func(s Status) { r.mu.Lock(); r.st = s; r.mu.Unlock() }
		go func() { r.done <- Run(ctx, cfg) }()
		t.Cleanup(func() { r.stop(t) })
		return r
	}
	newGate := func(lose bool) *gatedClaim {
		return &gatedClaim{JetStream: e.js, subject: wire.EventSubject(z), reached: make(chan struct{}), gate: make(chan struct{}), lose: lose, sent: make(chan struct{})}
	}
	g1, g2 := newGate(false), newGate(true)
	w1 := run("world-1", g1)
	w2 := run("world-2", g2)
	// Both have read the log's end and are about to claim; world-1's claim
	// goes first, then world-2's is lost.
	for _, g := range []*gatedClaim{g1, g2} {
		select {
		case <-g.reached:
		case <-time.After(15 * time.Second):
			t.Fatal("an owner never reached its claim")
		}
	}
	close(g1.gate)
	<-g1.sent
	close(g2.gate)

	waitfor.True(t, 10*time.Second, func() error {
		if f := w2.status().Fence; f != 3 {
			return fmt.Errorf("world-2 runs with fence %d (world-1 %d): want 3, a claim after world-1's", f, w1.status().Fence)
		}
		return nil
	})
	// Commands go to whichever owner pulls them; world-1 steps down at its
	// first commit and hands back what it took.
	var ids []string
	for q := uint64(2); q <= 21; q++ {
		e.send(z, "s", q, "p", chatCmd("after the double claim"), time.Now())
		ids = append(ids, wire.CommandID("s", q))
	}
	e.waitApplied(z, ids...)
	e.waitAcked(z, 15*time.Second)
	var fences []uint64
	for _, en := range e.log(z) { // Check: linear, fences grow, no command twice
		if c := en.Event.GetOwnershipClaimed(); c != nil {
			fences = append(fences, c.Fence)
		}
	}
	if fmt.Sprint(fences) != "[1 2 3]" {
		t.Fatalf("claims with fences %v, want [1 2 3]", fences)
	}
}

// TestRedeliveryAfterSeqJump (e2e run 32): a session resumed from a crashed
// gateway's record continues up to 1024 seqs higher (the gateway's
// session.ReserveAhead). A command of it delivered to an owner that died
// comes back after the ack wait behind that jump and must still cause its
// event; with the 1024-deep dedupe window it was taken for applied.
func TestRedeliveryAfterSeqJump(t *testing.T) {
	e := newEnv(t)
	const z = "z1_1"
	e.longLeases()
	cfg := e.config(z)
	cfg.AckWait = 3 * time.Second
	a := e.start(cfg)
	e.send(z, "s", 1, "p", joinCmd(z), time.Now())
	e.waitApplied(z, "s:1")
	a.stop(t)

	// Seq 2 was delivered to an owner that died (this test plays it).
	e.send(z, "s", 2, "p", chatCmd("sent before the crash"), time.Now())
	release := e.holdDelivery(z, "s:2")
	// The session resumes through a crashed gateway's record: its next
	// seqs are above the reserved bound.
	e.start(cfg)
	var ids []string
	for q := uint64(1030); q <= 1040; q++ {
		e.send(z, "s", q, "p", chatCmd("after the resume"), time.Now())
		ids = append(ids, wire.CommandID("s", q))
	}
	e.waitApplied(z, ids...)
	release()

	e.waitAcked(z, 15*time.Second)
	ev := e.eventOf(z, "s:2")
	if ev == nil {
		t.Fatal("s:2, redelivered after the session's seqs jumped 1028, was acked without an event (taken for applied)")
	}
}

// longLeases gives the env's owners 10 s leases: long enough that a loaded
// machine does not end them in a test about the order of redeliveries.
func (e *env) longLeases() {
	e.t.Helper()
	locks, err := lock.New(lock.NewTable(), lock.Options{TTL: 10 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	e.locks = locks
}

// holdDelivery plays an owner that died holding a command: it fetches the
// next delivery of zone z's durable (it must be msgID) and keeps it in
// progress, never acked, until release is called; after the ack wait it is
// delivered again.
func (e *env) holdDelivery(z, msgID string) (release func()) {
	e.t.Helper()
	cons, err := e.js.Consumer(context.Background(), wire.StreamCommands, wire.DurableWorldZone(z))
	if err != nil {
		e.t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	var held jetstream.Msg
	for m := range batch.Messages() {
		held = m
	}
	if held == nil || held.Headers().Get(wire.HeaderMsgID) != msgID {
		e.t.Fatalf("the dead owner's delivery of %s not reproduced: %v (%v)", msgID, held, batch.Error())
	}
	stopHold, holding := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(holding)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopHold:
				return
			case <-tk.C:
				_ = held.InProgress()
			}
		}
	}()
	return func() {
		close(stopHold)
		<-holding
	}
}

// waitAcked waits up to within until zone z's durable has no command
// delivered and not acked.
func (e *env) waitAcked(z string, within time.Duration) {
	e.t.Helper()
	waitfor.True(e.t, within, func() error {
		if n := e.pendingAcks(z); n != 0 {
			return fmt.Errorf("%d commands not acked", n)
		}
		return nil
	})
}

// eventOf is the last event of zone z's log caused by commandID (nil: none).
func (e *env) eventOf(z, commandID string) *schema.Event {
	var ev *schema.Event
	for _, en := range e.log(z) {
		if en.Event.CommandId == commandID {
			ev = en.Event
		}
	}
	return ev
}

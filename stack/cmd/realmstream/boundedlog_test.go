package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
	"github.com/realmstream/realmstream/services/persist/persist"
	"github.com/realmstream/realmstream/services/world/world"
)

// svcRun is one service of the test, stoppable on its own.
type svcRun struct {
	cancel context.CancelCauseFunc
	done   chan error
}

func startSvc(t *testing.T, name string, run func(context.Context) error, ready <-chan struct{}) *svcRun {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &svcRun{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx) }()
	select {
	case <-ready:
	case err := <-r.done:
		t.Fatalf("%s stopped before ready: %v", name, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready in 60s", name)
	}
	t.Cleanup(func() { r.stop(t, nil) })
	return r
}

func (r *svcRun) stop(t *testing.T, cause error) {
	if r.done == nil {
		return
	}
	r.cancel(cause)
	select {
	case <-r.done:
	case <-time.After(60 * time.Second):
		t.Error("service did not stop in 60s")
	}
	r.done = nil
}

// TestBoundedEventLog runs world and persist (Pebble) against one embedded
// NATS server with aggressive trimming, and checks the issue-16 promises:
// the zone log is trimmed in JetStream; with persist down trimming stops at
// persist's floor and the world reports it blocked; after persist returns
// every event is in the store; time travel below the JetStream floor answers
// from the store and equals the fold of the whole history; and a new owner
// after a crash recovers from snapshot + tail to the fold of the whole history.
func TestBoundedEventLog(t *testing.T) {
	srv := natstest.Start(t)
	nc, js := natstest.Connect(t, srv.URL)
	ctx := context.Background()
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const zoneID = "z1_1"

	// An independent tap of the zone log from its first message: the whole
	// history, whatever JetStream trims later.
	var tapMu sync.Mutex
	var tap []zonelog.Entry
	st, _ := js.Stream(ctx, wire.StreamEvents)
	oc, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{wire.EventSubject(zoneID)}})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := oc.Consume(func(m jetstream.Msg) {
		md, _ := m.Metadata()
		es, err := zonelog.Decode(md.Sequence.Stream, m.Headers(), m.Data())
		if err != nil {
			t.Errorf("tap: %v", err)
			return
		}
		tapMu.Lock()
		tap = append(tap, es...)
		tapMu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	history := func() []zonelog.Entry {
		tapMu.Lock()
		defer tapMu.Unlock()
		return append([]zonelog.Entry(nil), tap...)
	}

	pcfg := persist.DefaultConfig()
	pcfg.NATSURL, pcfg.HTTPAddr, pcfg.InstanceID, pcfg.PGURLs, pcfg.PebbleDir = srv.URL, "127.0.0.1:0", "persist-t", nil, t.TempDir()
	startPersist := func() *svcRun {
		p, err := persist.New(pcfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		return startSvc(t, "persist", p.Run, p.Ready())
	}
	pr := startPersist()
	wcfg := world.DefaultConfig()
	wcfg.NATSURL, wcfg.HTTPAddr, wcfg.RedisAddr = srv.URL, "127.0.0.1:0", ""
	wcfg.SnapshotEvery, wcfg.SnapshotInterval = 20, 300*time.Millisecond
	wcfg.TrimInterval, wcfg.TrimKeepAge, wcfg.TrimKeepRecords = 200*time.Millisecond, time.Nanosecond, 10
	wcfg.Heartbeat = 300 * time.Millisecond
	startWorld := func(id string) *svcRun {
		c := wcfg
		c.InstanceID = id
		w, err := world.New(c, quiet)
		if err != nil {
			t.Fatal(err)
		}
		r := startSvc(t, id, w.Run, w.Ready())
		waitfor.True(t, 30*time.Second, func() error {
			if _, ok := w.Owned()[zoneID]; !ok {
				return fmt.Errorf("%s does not own %s yet", id, zoneID)
			}
			return nil
		})
		return r
	}
	wa := startWorld("world-a")

	// Players join and walk: commands as the gateway publishes them.
	seqs := map[string]uint64{}
	send := func(player string, body func(*schema.Command)) {
		t.Helper()
		session := "s-" + player
		seqs[session]++
		cmd := &schema.Command{CommandId: wire.CommandID(session, seqs[session]), SessionId: session, PlayerId: player, PlayerName: player,
			Zone: zoneID, ClientSeq: seqs[session], ReceivedAtNs: time.Now().UnixNano()}
		body(cmd)
		b, _ := proto.Marshal(cmd)
		m := nats.NewMsg(wire.CommandSubject(zoneID))
		m.Data = b
		m.Header.Set(wire.HeaderMsgID, cmd.CommandId)
		m.Header.Set(wire.HeaderZone, zoneID)
		m.Header.Set(wire.HeaderSession, session)
		m.Header.Set(wire.HeaderPlayer, player)
		m.Header.Set(wire.HeaderSchema, wire.SchemaVersion)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	players := []string{"ann", "bob", "cat", "dan"}
	pos := map[string]float32{}
	for _, p := range players {
		send(p, func(c *schema.Command) { c.Body = &schema.Command_Join{Join: &schema.Join{Zone: zoneID}} })
	}
	walk := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
			for i, p := range players {
				pos[p] += 3
				x, y := 100+pos[p], float32(100+100*i)
				send(p, func(c *schema.Command) { c.Body = &schema.Command_Move{Move: &schema.Move{X: x, Y: y}} })
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	firstInJS := func() uint64 {
		m, err := st.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(wire.EventSubject(zoneID)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return math.MaxUint64
		}
		if err != nil {
			t.Fatal(err)
		}
		return m.Sequence
	}
	ackFloor := func() uint64 {
		c, err := js.Consumer(ctx, wire.StreamEvents, wire.DurablePersist)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.AckFloor.Stream
	}
	walk(2 * time.Second)
	waitfor.True(t, 30*time.Second, func() error {
		if f := firstInJS(); f <= 5 {
			return fmt.Errorf("zone log not trimmed yet (first message %d)", f)
		}
		return nil
	})

	// Persist goes down: trimming stops at its floor and says it is blocked.
	pr.stop(t, nil)
	floor := ackFloor()
	walk(2 * time.Second)
	blocked := 0.0
	waitfor.True(t, 30*time.Second, func() error {
		sub, err := nc.SubscribeSync(wire.HeartbeatSubject("world", "world-a"))
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		msg, err := sub.NextMsg(2 * time.Second)
		if err != nil {
			return err
		}
		hb := &schema.Heartbeat{}
		_ = proto.Unmarshal(msg.Data, hb)
		blocked = hb.Figures["trim_blocked_seconds"]
		if blocked < 1 {
			return fmt.Errorf("trim_blocked_seconds %.1f while persist is down", blocked)
		}
		return nil
	})
	if f := firstInJS(); f > floor+1 {
		t.Fatalf("with persist down (ack floor %d) the zone log was trimmed up to %d: unpersisted events removed", floor, f)
	}
	t.Logf("persist down: JetStream keeps the zone from seq %d, persist's floor %d; trim blocked %.1fs", firstInJS(), floor, blocked)

	// Persist returns: every event of the whole history is in the store.
	pr = startPersist()
	walk(time.Second)
	end := history()
	lastSeq := end[len(end)-1].Seq
	waitfor.True(t, 60*time.Second, func() error {
		if f := ackFloor(); f < lastSeq {
			return fmt.Errorf("persist acked up to %d of %d", f, lastSeq)
		}
		return nil
	})
	stored := map[string]bool{}
	req := map[string]any{"zone": zoneID, "from_seq": 1, "to_seq": lastSeq, "limit": 1000}
	for {
		b, _ := json.Marshal(req)
		m, err := nc.Request(wire.QueryZoneRange, b, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Events []struct {
				Seq     uint64 `json:"seq"`
				Index   uint32 `json:"index"`
				EventID string `json:"event_id"`
			} `json:"events"`
			More  bool   `json:"more"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &rep); err != nil || rep.Error != "" {
			t.Fatalf("zone_range: %s %v", m.Data, err)
		}
		for _, e := range rep.Events {
			stored[fmt.Sprintf("%d/%d/%s", e.Seq, e.Index, e.EventID)] = true
		}
		if !rep.More || len(rep.Events) == 0 {
			break
		}
		l := rep.Events[len(rep.Events)-1]
		req["after_seq"], req["after_index"], req["has_after"] = l.Seq, l.Index, true
	}
	for _, e := range end {
		if !stored[fmt.Sprintf("%d/%d/%s", e.Seq, e.Index, e.Event.EventId)] {
			t.Fatalf("event %d/%d %s of the log is not in the store", e.Seq, e.Index, e.Event.EventId)
		}
	}
	waitfor.True(t, 30*time.Second, func() error {
		if f := firstInJS(); f <= floor+1 {
			return fmt.Errorf("trimming did not resume after persist returned (first %d, old floor %d)", f, floor)
		}
		return nil
	})

	// Time travel below the JetStream floor answers from the store.
	jsFirst := firstInJS()
	var below uint64
	for _, e := range end {
		if e.Seq < jsFirst/2 && e.Last() {
			below = e.Seq
		}
	}
	if below == 0 {
		t.Fatalf("no record below half the JetStream floor %d", jsFirst)
	}
	compare := func(what string, at uint64) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"zone": zoneID, "at_seq": at})
		m, err := nc.Request(wire.QueryZoneState, b, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			AtSeq   uint64 `json:"at_seq"`
			Events  uint64 `json:"events"`
			Players []struct {
				PlayerID string  `json:"player_id"`
				X        float32 `json:"x"`
				Y        float32 `json:"y"`
				HP       int32   `json:"hp"`
			} `json:"players"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &rep); err != nil || rep.Error != "" {
			t.Fatalf("%s: state at %d: %s %v", what, at, m.Data, err)
		}
		var upTo []zonelog.Entry
		for _, e := range end {
			if e.Seq <= at {
				upTo = append(upTo, e)
			}
		}
		want := world.Fold(zoneID, upTo)
		if rep.Events != want.Events || len(rep.Players) != len(want.Players) {
			t.Fatalf("%s: state at %d folds %d events and %d players, the whole history %d and %d", what, at, rep.Events, len(rep.Players), want.Events, len(want.Players))
		}
		for _, p := range rep.Players {
			w := want.Players[p.PlayerID]
			if w == nil || w.X != p.X || w.Y != p.Y || w.Hp != p.HP {
				t.Fatalf("%s: player %s at seq %d: %+v, the fold says %+v", what, p.PlayerID, at, p, w)
			}
		}
	}
	compare("below the JetStream floor", below)

	// The owner crashes; a new instance recovers from snapshot + tail. Its
	// own state (its next snapshot, taken by the new owner) equals the fold
	// of the whole history up to the sequence it covers.
	wa.stop(t, world.ErrCrash)
	oldFence := world.Fold(zoneID, end).Fence
	startWorld("world-b")
	kv, err := js.KeyValue(ctx, world.BucketSnapshots)
	if err != nil {
		t.Fatal(err)
	}
	var snap *schema.ZoneSnapshot
	waitfor.True(t, 30*time.Second, func() error {
		walk(200 * time.Millisecond)
		e, err := kv.Get(ctx, zoneID)
		if err != nil {
			return err
		}
		snap = &schema.ZoneSnapshot{}
		if err := proto.Unmarshal(e.Value(), snap); err != nil {
			return err
		}
		if snap.Fence <= oldFence {
			return fmt.Errorf("no snapshot of the new owner yet (fence %d, old %d)", snap.Fence, oldFence)
		}
		if h := history(); h[len(h)-1].Seq < snap.LastSeq {
			return fmt.Errorf("tap behind the snapshot")
		}
		return nil
	})
	end = history()
	var upTo []zonelog.Entry
	for _, e := range end {
		if e.Seq <= snap.LastSeq {
			upTo = append(upTo, e)
		}
	}
	if want := world.Fold(zoneID, upTo); !proto.Equal(snap, want) {
		t.Fatalf("the new owner's state at seq %d differs from the fold of the whole history:\n got %v\nwant %v", snap.LastSeq, snap, want)
	}
	compare("at the end, after the takeover", end[len(end)-1].Seq)
	t.Logf("%d events in the whole history, JetStream holds the zone from seq %d; time travel at %d answered from the store", len(end), firstInJS(), below)
}

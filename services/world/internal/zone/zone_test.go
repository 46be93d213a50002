package zone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
	"github.com/realmstream/realmstream/services/world/internal/rules"
)

// env is one JetStream server with the contract's streams, a snapshot
// bucket and an in-process lock table: what a zone runs against.
type env struct {
	t     *testing.T
	nc    *nats.Conn
	js    jetstream.JetStream
	snaps jetstream.KeyValue
	locks *lock.Locker
	rules *rules.Config
}

func newEnv(t *testing.T) *env {
	srv, nc, js := natstest.StartWithStreams(t)
	_ = srv
	return envOn(t, nc, js, 1)
}

func envOn(t *testing.T, nc *nats.Conn, js jetstream.JetStream, replicas int) *env {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "world_snapshots", History: 1, Replicas: replicas})
	if err != nil {
		t.Fatal(err)
	}
	l, err := lock.New(lock.NewTable(), lock.Options{TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rules.New(rules.Config{RespawnDelay: 100 * time.Millisecond, AttackCooldown: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, nc: nc, js: js, snaps: kv, locks: l, rules: rc}
}

// running is one zone run.
type running struct {
	cancel context.CancelCauseFunc
	done   chan error
	lease  *lock.Lease
	m      *Metrics
	mu     sync.Mutex
	st     Status
	once   sync.Once
}

func (r *running) status() Status { r.mu.Lock(); defer r.mu.Unlock(); return r.st }

func (e *env) config(z string) Config {
	lvl := slog.LevelWarn
	if os.Getenv("WORLD_TEST_LOG") != "" {
		lvl = slog.LevelDebug
	}
	return Config{Zone: z, Instance: "w", NC: e.nc, JS: e.js, Snapshots: e.snaps, Rules: e.rules, Tick: 20 * time.Millisecond,
		SnapshotEvery: 1000, AckWait: time.Second, MaxBatch: 64, PublishTimeout: time.Second, DisconnectGrace: 300 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))}
}

// start runs the zone with cfg (from config) once it holds the zone's lease.
func (e *env) start(cfg Config) *running {
	e.t.Helper()
	var lease *lock.Lease
	waitfor.True(e.t, 10*time.Second, func() error {
		l, err := e.locks.TryAcquire(context.Background(), "zone:"+cfg.Zone)
		lease = l
		return err
	})
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), lease: lease, m: NewMetrics(nil)}
	cfg.Lease, cfg.Metrics = lease, r.m
	cfg.OnStatus = func(s Status) { r.mu.Lock(); r.st = s; r.mu.Unlock() }
	go func() {
		err := Run(ctx, cfg)
		if errors.Is(err, ErrCrash) {
			lease.Abandon()
		} else {
			_ = lease.Release(context.Background())
		}
		r.done <- err
	}()
	waitfor.True(e.t, 10*time.Second, func() error {
		if r.status().Fence == 0 {
			return errors.New("zone not claimed yet")
		}
		return nil
	})
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

func (r *running) stop(t *testing.T) {
	r.cancel(context.Canceled)
	r.once.Do(func() {
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			t.Error("zone did not stop")
		}
	})
}

// crash stops the zone as if its process died and frees its lease.
func (r *running) crash(t *testing.T) {
	r.cancel(ErrCrash)
	r.stop(t)
}

// send publishes a client command to cmd.<zone>.
func (e *env) send(z, session string, seq uint64, player string, cmd *schema.Command, recv time.Time) {
	e.t.Helper()
	cmd.CommandId = wire.CommandID(session, seq)
	cmd.SessionId, cmd.ClientSeq, cmd.PlayerId, cmd.Zone = session, seq, player, z
	cmd.ReceivedAtNs = recv.UnixNano()
	b, _ := proto.Marshal(cmd)
	m := nats.NewMsg(wire.CommandSubject(z))
	m.Data = b
	m.Header.Set(wire.HeaderMsgID, cmd.CommandId)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		e.t.Fatalf("send %s: %v", cmd.CommandId, err)
	}
}

func joinCmd(z string) *schema.Command {
	return &schema.Command{Body: &schema.Command_Join{Join: &schema.Join{Zone: z}}}
}
func chatCmd(text string) *schema.Command {
	return &schema.Command{Body: &schema.Command_Chat{Chat: &schema.Chat{Text: text}}}
}
func moveCmd(x, y float32) *schema.Command {
	return &schema.Command{Body: &schema.Command_Move{Move: &schema.Move{X: x, Y: y}}}
}
func leaveCmd() *schema.Command {
	return &schema.Command{Body: &schema.Command_Leave{Leave: &schema.Leave{}}}
}
func attackCmd(target string) *schema.Command {
	return &schema.Command{Body: &schema.Command_Attack{Attack: &schema.Attack{TargetId: target}}}
}
func disconnectCmd() *schema.Command {
	return &schema.Command{Body: &schema.Command_Disconnect{Disconnect: &schema.Disconnect{Reason: "closed"}}}
}

// log reads and checks the zone's log.
func (e *env) log(z string) []zonelog.Entry {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := zonelog.Read(ctx, e.js, z)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, vs := zonelog.Check(map[string][]zonelog.Entry{z: l}); len(vs) > 0 {
		e.t.Errorf("log invariants: %v", vs)
	}
	return l
}

// waitApplied waits until every command id caused an event in zone z.
func (e *env) waitApplied(z string, ids ...string) []zonelog.Entry {
	e.t.Helper()
	var l []zonelog.Entry
	waitfor.True(e.t, 15*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if l, err = zonelog.Read(ctx, e.js, z); err != nil {
			return err
		}
		r, _ := zonelog.Check(map[string][]zonelog.Entry{z: l})
		for _, id := range ids {
			if _, ok := r.Applied[id]; !ok {
				return fmt.Errorf("command %s not applied yet", id)
			}
		}
		return nil
	})
	return l
}

func foldLog(c *rules.Config, z string, l []zonelog.Entry) *schema.ZoneSnapshot {
	s := rules.NewState(z)
	for _, e := range l {
		c.Apply(s, e.Event, e.Seq)
	}
	return s
}

func metric(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// pendingAcks is the number of commands delivered and not acked on the
// zone's durable consumer.
func (e *env) pendingAcks(z string) int {
	e.t.Helper()
	c, err := e.js.Consumer(context.Background(), wire.StreamCommands, wire.DurableWorldZone(z))
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.NumAckPending
}

// TestTickIsOneRecord: the commands of a burst are decided in a few ticks,
// each tick committed as one record holding all its events, and every
// command is acked after its record is stored.
func TestTickIsOneRecord(t *testing.T) {
	e := newEnv(t)
	const z = "z1_1"
	e.start(e.config(z))
	now := time.Now()
	var ids []string
	for i := 0; i < 20; i++ {
		s := fmt.Sprintf("s%d", i)
		e.send(z, s, 1, "p"+s, joinCmd(z), now)
		e.send(z, s, 2, "p"+s, chatCmd("hi"), now)
		ids = append(ids, s+":1", s+":2")
	}
	l := e.waitApplied(z, ids...)
	records := map[uint64]int{}
	for _, en := range l {
		if en.Record == nil {
			t.Fatalf("event %s not in a tick record", en.Event.EventId)
		}
		if en.Record.Tick != en.Event.Tick || en.Record.Parts != 1 {
			t.Fatalf("record %s tick %d parts %d holds an event of tick %d", en.RecordID, en.Record.Tick, en.Record.Parts, en.Event.Tick)
		}
		records[en.Seq]++
	}
	if len(records) >= len(ids) {
		t.Fatalf("%d records for %d events: no tick held more than one event", len(records), len(ids)+1)
	}
	waitfor.True(t, 5*time.Second, func() error {
		if n := e.pendingAcks(z); n != 0 {
			return fmt.Errorf("%d commands not acked", n)
		}
		return nil
	})
	t.Logf("%d events in %d records", len(l), len(records))
}

// TestTickAllOrNothing kills the owner in the middle of a tick's commit
// (after it decided the tick, while it writes the record): the log holds
// none of that tick's events, and the next owner applies every command of
// it exactly once (they were not acked).
func TestTickAllOrNothing(t *testing.T) {
	e := newEnv(t)
	const z = "z1_1"
	cfg := e.config(z)
	var mu sync.Mutex
	armed, hit := false, make(chan struct{}, 1)
	cfg.BeforeAppend = func(_, id string) error {
		mu.Lock()
		defer mu.Unlock()
		if armed && strings.HasSuffix(id, "/c/s3:2") { // the middle of the tick's events
			armed = false
			hit <- struct{}{}
			return ErrCrash
		}
		return nil
	}
	a0 := e.start(e.config(z))
	now := time.Now()
	for i := 0; i < 6; i++ {
		s := fmt.Sprintf("s%d", i)
		e.send(z, s, 1, "p"+s, joinCmd(z), now)
	}
	e.waitApplied(z, "s0:1", "s5:1")
	a0.stop(t)
	before := len(e.log(z))
	// Queued while the zone has no owner: the next owner's first tick takes
	// them all, and is killed while it writes them.
	var ids []string
	for i := 0; i < 6; i++ {
		s := fmt.Sprintf("s%d", i)
		e.send(z, s, 2, "p"+s, chatCmd("in the killed tick"), now)
		ids = append(ids, s+":2")
	}
	mu.Lock()
	armed = true
	mu.Unlock()
	a := e.start(cfg)
	select {
	case <-hit:
	case <-time.After(10 * time.Second):
		t.Fatal("the commit never reached the kill point")
	}
	a.crash(t)
	l := e.log(z)
	if len(l) != before+1 || l[before].Event.GetOwnershipClaimed() == nil { // + the killed owner's claim
		for _, en := range l[before:] {
			t.Errorf("after the kill: %s", rules.FormatEvent(en.Event))
		}
		t.Fatalf("%d events in the log after a kill mid-commit, want %d (its claim, no part of the tick)", len(l), before+1)
	}
	b := e.start(e.config(z))
	l = e.waitApplied(z, ids...)
	r, _ := zonelog.Check(map[string][]zonelog.Entry{z: l})
	for _, id := range ids {
		if !strings.HasPrefix(r.Applied[id], z) {
			t.Errorf("%s: %q", id, r.Applied[id])
		}
	}
	_ = b
}

// crashAtAck makes cfg's owner crash at the first ack hook whose id matches,
// once arm has been called; reached waits (10 s) until it did.
func crashAtAck(cfg *Config, match func(id string) bool) (arm func(), reached func(*testing.T)) {
	var mu sync.Mutex
	armed, hit := false, make(chan struct{}, 1)
	cfg.BeforeAppend = func(_, id string) error {
		mu.Lock()
		defer mu.Unlock()
		if armed && match(id) {
			armed = false
			hit <- struct{}{}
			return ErrCrash
		}
		return nil
	}
	arm = func() { mu.Lock(); armed = true; mu.Unlock() }
	reached = func(t *testing.T) {
		t.Helper()
		select {
		case <-hit:
		case <-time.After(10 * time.Second):
			t.Fatal("never reached the ack")
		}
	}
	return arm, reached
}

// TestAckedOnlyAfterCommit kills the owner after its tick is committed and
// before the acks: the commands come back to the next owner, which
// recognises them (duplicates: no second event) and acks them.
func TestAckedOnlyAfterCommit(t *testing.T) {
	e := newEnv(t)
	const z = "z1_1"
	cfg := e.config(z)
	arm, reached := crashAtAck(&cfg, func(id string) bool { return strings.HasPrefix(id, "ack:") })
	a := e.start(cfg)
	now := time.Now()
	e.send(z, "s", 1, "p", joinCmd(z), now)
	e.waitApplied(z, "s:1")
	arm()
	var ids []string
	for q := uint64(2); q < 8; q++ {
		e.send(z, "s", q, "p", chatCmd("x"), now)
		ids = append(ids, wire.CommandID("s", q))
	}
	reached(t)
	a.crash(t)
	if n := e.pendingAcks(z); n == 0 {
		t.Fatal("no command left unacked by the killed owner")
	}
	b := e.start(e.config(z))
	e.waitApplied(z, ids...)
	waitfor.True(t, 10*time.Second, func() error {
		if n := e.pendingAcks(z); n != 0 {
			return fmt.Errorf("%d commands not acked by the new owner", n)
		}
		return nil
	})
	if d := metric(t, b.m.Commands.WithLabelValues("duplicate")); d == 0 {
		t.Error("the new owner recognised no redelivered command as a duplicate")
	}
	l := e.log(z) // Check: no command applied twice
	st := foldLog(e.rules, z, l)
	if p := st.Players["p"]; p == nil || p.LastInputSeq != 7 {
		t.Fatalf("player state %v", p)
	}
}

package world

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
	"github.com/realmstream/realmstream/services/world/internal/ownership"
	"github.com/realmstream/realmstream/services/world/internal/rules"
	"github.com/realmstream/realmstream/services/world/internal/zone"
)

// testConfig is a fast configuration: 1s leases, 20ms ticks.
func testConfig(t *testing.T, natsURL, redisAddr, id string) Config {
	c := DefaultConfig()
	c.NATSURL = natsURL
	c.RedisAddr = redisAddr
	c.InstanceID = id
	c.HTTPAddr = "127.0.0.1:0"
	c.LogFormat = "text"
	c.LockPrefix = fmt.Sprintf("realmtest:%s:%d:", t.Name(), time.Now().UnixNano())
	c.LeaseTTL = time.Second
	c.Rebalance = 50 * time.Millisecond
	c.Tick = 20 * time.Millisecond
	c.AckWait = time.Second
	c.PublishTimeout = time.Second
	c.Heartbeat = 200 * time.Millisecond
	c.SnapshotEvery = 25
	c.ShutdownTimeout = 5 * time.Second
	return c
}

type inst struct {
	t       *testing.T
	svc     *Service
	run     *svcmain.Running
	paused  atomic.Bool
	stopped bool
}

func testLogger(id string) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("WORLD_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("test_instance", id)
}

func startInst(t *testing.T, cfg Config, setup ...func(*Service, *inst)) *inst {
	t.Helper()
	svc, err := New(cfg, testLogger(cfg.InstanceID))
	if err != nil {
		t.Fatal(err)
	}
	in := &inst{t: t, svc: svc}
	svc.hooks.paused = &in.paused
	for _, f := range setup {
		f(svc, in)
	}
	// Started as the stack starts a service (svcmain.Start).
	if in.run, err = svcmain.Start(context.Background(), "instance "+cfg.InstanceID, svc, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.stop() })
	return in
}

// stop shuts the instance down gracefully.
func (in *inst) stop() {
	if in.stopped {
		return
	}
	in.stopped = true
	if err := in.run.StopCause(context.Canceled, 15*time.Second); err != nil {
		in.t.Errorf("instance %s: %v", in.svc.cfg.InstanceID, err)
	}
}

// crash stops the instance as if the process died: no release, no snapshot.
func (in *inst) crash() {
	in.stopped = true
	_ = in.run.StopCause(zone.ErrCrash, 15*time.Second)
	select {
	case <-in.run.Done():
	default:
		in.t.Errorf("instance %s did not crash", in.svc.cfg.InstanceID)
	}
}

// owners returns zone -> instance id for zones claimed (fence known) by insts.
func owners(insts ...*inst) map[string]string {
	out := map[string]string{}
	for _, in := range insts {
		if in.stopped {
			continue
		}
		for z, st := range in.svc.Owned() {
			if st.Fence != 0 {
				if other, dup := out[z]; dup {
					out[z] = other + "+" + in.svc.cfg.InstanceID
				} else {
					out[z] = in.svc.cfg.InstanceID
				}
			}
		}
	}
	return out
}

// waitAllOwned waits until every zone is claimed by exactly one of insts.
func waitAllOwned(t *testing.T, timeout time.Duration, insts ...*inst) map[string]string {
	t.Helper()
	var got map[string]string
	zones := insts[0].svc.cfg.Map.Zones()
	waitfor.True(t, timeout, func() error {
		got = owners(insts...)
		for _, z := range zones {
			o, ok := got[z]
			if !ok || strings.Contains(o, "+") {
				return fmt.Errorf("zone %s owned by %q (all: %v)", z, o, got)
			}
		}
		return nil
	})
	return got
}

// send publishes one client command to cmd.<zone> with the usual msg id.
func send(t *testing.T, js jetstream.JetStream, zoneID, session string, seq uint64, player string, cmd *schema.Command) {
	t.Helper()
	sendID(t, js, zoneID, wire.CommandID(session, seq), session, seq, player, cmd)
}

// sendID publishes with an explicit Nats-Msg-Id (a resend past the
// duplicate window uses a different one).
func sendID(t *testing.T, js jetstream.JetStream, zoneID, msgID, session string, seq uint64, player string, cmd *schema.Command) {
	t.Helper()
	cmd.CommandId = wire.CommandID(session, seq)
	cmd.SessionId, cmd.ClientSeq, cmd.PlayerId, cmd.Zone = session, seq, player, zoneID
	cmd.ReceivedAtNs = time.Now().UnixNano()
	b, _ := proto.Marshal(cmd)
	m := nats.NewMsg(wire.CommandSubject(zoneID))
	m.Data = b
	m.Header.Set(wire.HeaderMsgID, msgID)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatalf("send %s: %v", msgID, err)
	}
}

func join(z string) *schema.Command {
	return &schema.Command{Body: &schema.Command_Join{Join: &schema.Join{Zone: z}}}
}
func move(x, y float32) *schema.Command {
	return &schema.Command{Body: &schema.Command_Move{Move: &schema.Move{X: x, Y: y}}}
}
func chat(text string) *schema.Command {
	return &schema.Command{Body: &schema.Command_Chat{Chat: &schema.Chat{Text: text}}}
}

// checkLogs reads every zone log, checks the invariants and returns the logs.
func checkLogs(t *testing.T, js jetstream.JetStream, zones []string) (map[string][]zonelog.Entry, zonelog.Report) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logs, err := zonelog.ReadAll(ctx, js, zones)
	if err != nil {
		t.Fatal(err)
	}
	r, vs := zonelog.Check(logs)
	for _, v := range vs {
		t.Errorf("log invariant: %v", v)
	}
	return logs, r
}

// fold rebuilds every zone's state from its log.
func fold(logs map[string][]zonelog.Entry) map[string]*schema.ZoneSnapshot {
	out := map[string]*schema.ZoneSnapshot{}
	for z, l := range logs {
		s := rules.NewState(z)
		for _, e := range l {
			rules.Apply(s, e.Event, e.Seq, 4096)
		}
		out[z] = s
	}
	return out
}

// whereIs lists the zones whose folded state holds player.
func whereIs(states map[string]*schema.ZoneSnapshot, player string) []string {
	var zs []string
	for z, s := range states {
		if s.Players[player] != nil {
			zs = append(zs, z)
		}
	}
	sort.Strings(zs)
	return zs
}

// commandIDs reads every command id stored in the CMD stream.
func commandIDs(t *testing.T, js jetstream.JetStream) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, wire.StreamCommands)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	if info.State.Msgs == 0 {
		return ids
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for n := uint64(0); n < info.State.Msgs; {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n++
		var c schema.Command
		if err := proto.Unmarshal(m.Data(), &c); err != nil {
			t.Fatal(err)
		}
		ids[c.CommandId] = true
	}
	return ids
}

// applied reports the command ids that caused an event.
func waitApplied(t *testing.T, js jetstream.JetStream, zones []string, ids []string, timeout time.Duration) {
	t.Helper()
	waitfor.True(t, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		logs, err := zonelog.ReadAll(ctx, js, zones)
		if err != nil {
			return err
		}
		r, _ := zonelog.Check(logs)
		var missing []string
		for _, id := range ids {
			if _, ok := r.Applied[id]; !ok {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d commands not applied yet, e.g. %v", len(missing), missing[:min(3, len(missing))])
		}
		return nil
	})
}

var errCrashHook = errors.New("test: crash here")

func counter(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// waitBalanced waits until every zone is claimed by its rendezvous owner
// among the running insts.
func waitBalanced(t *testing.T, timeout time.Duration, insts ...*inst) map[string]string {
	t.Helper()
	var ids []string
	for _, in := range insts {
		if !in.stopped {
			ids = append(ids, in.svc.cfg.InstanceID)
		}
	}
	var got map[string]string
	waitfor.True(t, timeout, func() error {
		got = owners(insts...)
		for _, z := range insts[0].svc.cfg.Map.Zones() {
			if want := ownership.Owner(z, ids); got[z] != want {
				return fmt.Errorf("zone %s owned by %q, want %s", z, got[z], want)
			}
		}
		return nil
	})
	return got
}

// sendRaw publishes cmd as is with msg id id.
func sendRaw(t *testing.T, js jetstream.JetStream, zoneID, id string, cmd *schema.Command) {
	t.Helper()
	b, _ := proto.Marshal(cmd)
	m := nats.NewMsg(wire.CommandSubject(zoneID))
	m.Data = b
	m.Header.Set(wire.HeaderMsgID, id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatalf("send %s: %v", id, err)
	}
}

// joinEach joins one player (session s<i>, player ps<i>) into each zone and
// waits until every join is applied; it returns the joins' command ids.
func joinEach(t *testing.T, js jetstream.JetStream, zones []string) []string {
	t.Helper()
	var ids []string
	for i, z := range zones {
		s := fmt.Sprintf("s%d", i)
		send(t, js, z, s, 1, "p"+s, join(z))
		ids = append(ids, s+":1")
	}
	waitApplied(t, js, zones, ids, 10*time.Second)
	return ids
}

package world

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
)

// TestEmbeddedSingleInstance runs the world as the one-machine stack does:
// embedded NATS, no Redis (in-process lock table). It plays a few commands,
// checks events, updates, notices, heartbeats and metrics, then restarts the
// instance: the zones come back from snapshot + replay with a higher fence.
func TestEmbeddedSingleInstance(t *testing.T) {
	srv, nc, js := natstest.StartWithStreams(t)
	cfg := testConfig(t, srv.URL, "", "solo")
	cfg.UpdateShape = "tick"
	zones := cfg.Map.Zones()

	updates := make(chan *nats.Msg, 4096)
	updSub, err := nc.ChanSubscribe(wire.UpdateTickSubject("z1_1"), updates)
	if err != nil {
		t.Fatal(err)
	}
	notices := make(chan *nats.Msg, 16)
	if _, err := nc.ChanSubscribe(wire.SessionSubject("s1"), notices); err != nil {
		t.Fatal(err)
	}
	hbs := make(chan *nats.Msg, 16)
	hbSub, err := nc.ChanSubscribe(wire.HeartbeatSubject("world", "solo"), hbs)
	if err != nil {
		t.Fatal(err)
	}

	a := startInst(t, cfg)
	waitAllOwned(t, 10*time.Second, a)

	send(t, js, "z1_1", "s1", 1, "alice", join("z1_1"))
	send(t, js, "z1_1", "s1", 2, "alice", chat("hello"))
	send(t, js, "z1_1", "s1", 3, "alice", move(-1e6, 0)) // too fast: rejected with a notice
	waitApplied(t, js, zones, []string{"s1:1", "s1:2", "s1:3"}, 10*time.Second)

	// Trace context: the event continues the span of the command's sender.
	// The world traces with a real SDK provider here (restored afterwards).
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	tc := &schema.Command{CommandId: "s2:1", SessionId: "s2", ClientSeq: 1, PlayerId: "bob", Zone: "z1_1", Body: join("z1_1").Body}
	tb, _ := proto.Marshal(tc)
	tm := nats.NewMsg(wire.CommandSubject("z1_1"))
	tm.Data = tb
	tm.Header.Set(wire.HeaderMsgID, "s2:1")
	tm.Header.Set(wire.HeaderTraceParent, "00-"+traceID+"-00f067aa0ba902b7-01")
	if _, err := js.PublishMsg(context.Background(), tm); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, js, zones, []string{"s2:1"}, 10*time.Second)
	evStream, err := js.Stream(context.Background(), wire.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	last, err := evStream.GetLastMsgForSubject(context.Background(), wire.EventSubject("z1_1"))
	if err != nil {
		t.Fatal(err)
	}
	// The event of the traced command carries the span context of its
	// world.decide span, in the command's trace (the record itself is the
	// tick's commit, which only links to its commands).
	ents, err := zonelog.Decode(last.Sequence, last.Header, last.Data)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ents {
		if e.Event.GetCommandId() == "s2:1" {
			found = true
			if sc := telemetry.DecodeSpanContext(e.Event.GetTraceContext()); sc.TraceID().String() != traceID {
				t.Fatalf("event of s2:1 has trace context %v, not in trace %s", sc, traceID)
			}
		}
	}
	if !found {
		t.Fatalf("the last record of z1_1 has no event of s2:1: %d events", len(ents))
	}

	// The player shows up in the update of its cell, with its last input seq.
	waitfor.True(t, 5*time.Second, func() error {
		for {
			select {
			case m := <-updates:
				var zt schema.ZoneTick
				if err := proto.Unmarshal(m.Data, &zt); err != nil {
					return err
				}
				for _, u := range zt.Cells {
					for _, e := range u.Entities {
						if e.Id == "alice" && e.LastInputSeq == 3 && zt.Zone == "z1_1" && u.Zone == "z1_1" {
							return nil
						}
					}
				}
			default:
				return errString("no update with alice at input 3 yet")
			}
		}
	})
	select {
	case m := <-notices:
		var n schema.SessionNotice
		if err := proto.Unmarshal(m.Data, &n); err != nil || n.GetRejected().GetClientSeq() != 3 {
			t.Fatalf("notice %v %v", &n, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no rejection notice")
	}
	waitfor.True(t, 5*time.Second, func() error {
		select {
		case m := <-hbs:
			var hb schema.Heartbeat
			if err := proto.Unmarshal(m.Data, &hb); err != nil {
				return err
			}
			if hb.Service != "world" || len(hb.Zones) != len(zones) || hb.Players != 2 {
				return errString("heartbeat without all zones and the player: " + hb.String())
			}
			return nil
		default:
			return errString("no heartbeat yet")
		}
	})
	_ = updSub.Unsubscribe()
	_ = hbSub.Unsubscribe()
	resp, err := http.Get("http://" + a.svc.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"realm_world_zones_owned 9", "realm_world_tick_seconds", "realm_world_apply_seconds", "realm_world_lock_renew_failures_total", "realm_world_takeovers_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Graceful stop: every zone ends with OwnershipReleased; a restart recovers.
	a.stop()
	logs, _ := checkLogs(t, js, zones)
	for _, z := range zones {
		l := logs[z]
		if len(l) == 0 || l[len(l)-1].Event.GetOwnershipReleased() == nil {
			t.Fatalf("zone %s does not end with a release", z)
		}
	}
	b := startInst(t, testConfig(t, srv.URL, "", "solo2"))
	waitAllOwned(t, 10*time.Second, b)
	send(t, js, "z1_1", "s1", 4, "alice", chat("back"))
	waitApplied(t, js, zones, []string{"s1:4"}, 10*time.Second)
	logs, _ = checkLogs(t, js, zones)
	st := fold(logs)["z1_1"]
	if p := st.Players["alice"]; p == nil || p.LastInputSeq != 4 {
		t.Fatalf("alice after restart: %v", p)
	}
	if got := b.svc.Owned()["z1_1"]; got.Fence != 2 || got.LastSeq != st.LastSeq {
		t.Fatalf("restarted owner status %+v, log end %d", got, st.LastSeq)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestSharedTableInstances: several instances in one process share one
// in-process lock table (Config.LockStore): zones are spread and a crashed
// instance's zones move, with no Redis at all.
func TestSharedTableInstances(t *testing.T) {
	srv, _, js := natstest.StartWithStreams(t)
	table := lock.NewTable()
	mk := func(id string) Config { c := testConfig(t, srv.URL, "", id); c.LockStore = table; return c }
	a, b := startInst(t, mk("a")), startInst(t, mk("b"))
	waitBalanced(t, 10*time.Second, a, b)
	a.crash()
	waitAllOwned(t, 5*time.Second, b)
	checkLogs(t, js, mk("x").Map.Zones())
}

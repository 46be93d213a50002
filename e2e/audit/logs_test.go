package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// appender writes a zone log the way a world owner must: expected last
// subject sequence and fence on every append.
type appender struct {
	t    *testing.T
	js   jetstream.JetStream
	last map[string]uint64
	n    int
}

func (a *appender) append(zone string, ev *schema.Event, expected *uint64) {
	a.t.Helper()
	a.n++
	ev.Zone = zone
	ev.EventId = fmt.Sprintf("%s-e%d", zone, a.n)
	b, err := proto.Marshal(ev)
	if err != nil {
		a.t.Fatal(err)
	}
	m := nats.NewMsg(wire.EventSubject(zone))
	m.Data = b
	m.Header.Set(wire.HeaderMsgID, ev.EventId)
	m.Header.Set(wire.HeaderFence, strconv.FormatUint(ev.Fence, 10))
	exp := a.last[zone]
	if expected != nil {
		exp = *expected
	}
	m.Header.Set(wire.HeaderExpectedLastSubjSeq, strconv.FormatUint(exp, 10))
	ack, err := a.js.PublishMsg(context.Background(), m)
	if err != nil {
		a.t.Fatalf("append %s: %v", ev.EventId, err)
	}
	a.last[zone] = ack.Sequence
}

// appendRecord commits events as one tick record (Realm-Schema 2), as the
// world does since tick records.
func (a *appender) appendRecord(zone string, fence, tick uint64, evs ...*schema.Event) {
	a.t.Helper()
	for _, ev := range evs {
		a.n++
		ev.Zone = zone
		ev.EventId = fmt.Sprintf("%s-e%d", zone, a.n)
	}
	id := wire.TickRecordID(zone, fence, tick, 0)
	b, err := proto.Marshal(&schema.TickRecord{RecordId: id, Zone: zone, Fence: fence, Tick: tick, Parts: 1, Events: evs})
	if err != nil {
		a.t.Fatal(err)
	}
	m := nats.NewMsg(wire.EventSubject(zone))
	m.Data = b
	m.Header.Set(wire.HeaderMsgID, id)
	m.Header.Set(wire.HeaderSchema, wire.SchemaTickRecord)
	m.Header.Set(wire.HeaderFence, strconv.FormatUint(fence, 10))
	m.Header.Set(wire.HeaderExpectedLastSubjSeq, strconv.FormatUint(a.last[zone], 10))
	ack, err := a.js.PublishMsg(context.Background(), m)
	if err != nil {
		a.t.Fatalf("append record %s: %v", id, err)
	}
	a.last[zone] = ack.Sequence
}

func claim(fence uint64) *schema.Event {
	return &schema.Event{Fence: fence, Body: &schema.Event_OwnershipClaimed{OwnershipClaimed: &schema.OwnershipClaimed{InstanceId: "w", Fence: fence}}}
}

func moved(fence uint64, cmd string) *schema.Event {
	return &schema.Event{Fence: fence, CommandId: cmd, Body: &schema.Event_PlayerMoved{PlayerMoved: &schema.PlayerMoved{X: 1, Y: 2}}}
}

func command(t *testing.T, js jetstream.JetStream, zone, id string) uint64 {
	t.Helper()
	b, _ := proto.Marshal(&schema.Command{CommandId: id, Zone: zone, Body: &schema.Command_Move{Move: &schema.Move{X: 1}}})
	ack, err := js.Publish(context.Background(), wire.CommandSubject(zone), b, jetstream.WithMsgID(id))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func TestAuditDetectsEveryViolation(t *testing.T) {
	_, _, js := natstest.StartWithStreams(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s1 := command(t, js, "z0_0", "s1:1")
	command(t, js, "z0_0", "s1:2")
	command(t, js, "z0_0", "s1:3") // never applied
	command(t, js, "z1_0", "s2:1")

	a := &appender{t: t, js: js, last: map[string]uint64{}}
	// A clean zone: claim, two commands, takeover, one more.
	a.append("z0_0", claim(1), nil)
	a.append("z0_0", moved(1, "s1:1"), nil)
	a.append("z0_0", moved(1, "s1:2"), nil)
	a.append("z0_0", claim(2), nil)
	a.append("z0_0", moved(2, ""), nil)
	// A broken zone: stale fence after a claim, a command applied twice, a
	// claim that goes backwards.
	a.append("z1_0", claim(5), nil)
	a.append("z1_0", moved(5, "s2:1"), nil)
	a.append("z1_0", moved(4, ""), nil)
	a.append("z1_0", moved(5, "s2:1"), nil)
	a.append("z1_0", claim(3), nil)

	cl, vs, err := ReadCommands(ctx, js)
	if err != nil || len(vs) != 0 {
		t.Fatalf("read commands: %v %v", err, vs)
	}
	acked := []AckedCommand{{ID: "s1:1", StreamSeq: s1}, {ID: "s1:2", StreamSeq: 99}, {ID: "lost:1", StreamSeq: 7}}
	cf, vs := CheckAcked(acked, cl)
	if cf.Missing != 1 || cf.SeqMismatch != 1 || len(vs) != 2 {
		t.Fatalf("acked findings %+v %v", cf, vs)
	}

	logs, n, vs, err := ReadEvents(ctx, js)
	if err != nil || len(vs) != 0 || n != 10 {
		t.Fatalf("read events: n=%d %v %v", n, err, vs)
	}
	lf, applied, vs := CheckLogs(logs)
	want := map[string]int{"fence": 2, "applied-twice": 1}
	got := map[string]int{}
	for _, v := range vs {
		got[v.Check]++
		if !strings.HasPrefix(v.Detail, "z1_0") && !strings.Contains(v.Detail, "z1_0") {
			t.Errorf("violation outside the broken zone: %v", v)
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s violations: got %d want %d (%v)", k, got[k], w, vs)
		}
	}
	if lf.Claims != 4 || lf.AppliedTwice != 1 || lf.Events != 10 {
		t.Errorf("log findings %+v", lf)
	}
	missing, vs := CheckApplied(cl, applied)
	if missing["z0_0"] != 1 || len(vs) != 1 || !strings.Contains(vs[0].Detail, "s1:3") {
		t.Errorf("unapplied: %v %v", missing, vs)
	}
}

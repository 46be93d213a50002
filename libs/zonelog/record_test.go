package zonelog_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
)

// TestTickRecords reads a log that starts with a legacy single-event message
// and goes on with tick records from real JetStream, checks it clean, then
// checks that the record invariants are enforced.
func TestTickRecords(t *testing.T) {
	_, _, js := natstest.StartWithStreams(t)
	ctx := context.Background()
	var last uint64
	publish := func(h map[string]string, payload proto.Message) {
		t.Helper()
		b, _ := proto.Marshal(payload)
		m := nats.NewMsg(wire.EventSubject("z"))
		m.Data = b
		for k, v := range h {
			m.Header.Set(k, v)
		}
		m.Header.Set(wire.HeaderExpectedLastSubjSeq, strconv.FormatUint(last, 10))
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	legacy := claim("z/claim/1", 1)
	publish(map[string]string{wire.HeaderMsgID: legacy.EventId, wire.HeaderFence: "1", wire.HeaderSchema: wire.SchemaEventV1}, legacy)
	rec := func(fence, tick uint64, evs ...*schema.Event) {
		r := &schema.TickRecord{RecordId: wire.TickRecordID("z", fence, tick, 0), Zone: "z", Fence: fence, Tick: tick, Parts: 1, Events: evs}
		publish(map[string]string{wire.HeaderMsgID: r.RecordId, wire.HeaderFence: strconv.FormatUint(fence, 10),
			wire.HeaderSchema: wire.SchemaTickRecord, wire.HeaderEventType: wire.EventTypeTick}, r)
	}
	rec(1, 5, move("z/c/s:1", "s:1", 1), move("z/c/s:2", "s:2", 1), move("z/c/s:3", "s:3", 1))
	rec(2, 6, claim("z/claim/2", 2))
	rec(2, 7, move("z/c/s:4", "s:4", 2))

	log, err := zonelog.Read(ctx, js, "z")
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 6 {
		t.Fatalf("read %d events, want 6", len(log))
	}
	if e := log[3]; e.Seq != 2 || e.Index != 2 || e.Count != 3 || !e.Last() || e.Event.CommandId != "s:3" || e.Record == nil {
		t.Fatalf("entry 3 = seq %d index %d count %d cmd %s", e.Seq, e.Index, e.Count, e.Event.CommandId)
	}
	if log[1].Last() {
		t.Fatal("first event of a 3-event record reported as last")
	}
	rep, vs := zonelog.Check(map[string][]zonelog.Entry{"z": log})
	if len(vs) != 0 || rep.Events != 6 || rep.Claims != 2 || len(rep.Applied) != 4 {
		t.Fatalf("clean log: report %+v, violations %v", rep, vs)
	}

	bad := func(name, want string, edit func(l []zonelog.Entry) []zonelog.Entry) {
		t.Helper()
		l := edit(append([]zonelog.Entry(nil), log...))
		_, vs := zonelog.Check(map[string][]zonelog.Entry{"z": l})
		for _, v := range vs {
			if strings.Contains(v.String(), want) {
				return
			}
		}
		t.Errorf("%s: violations %v, want one containing %q", name, vs, want)
	}
	bad("duplicate event id inside a record", "already at", func(l []zonelog.Entry) []zonelog.Entry {
		ev := proto.Clone(l[2].Event).(*schema.Event)
		ev.EventId = l[1].Event.EventId
		ev.CommandId = "s:99"
		l[2].Event = ev
		return l
	})
	bad("record id differs from msg id", "record_id", func(l []zonelog.Entry) []zonelog.Entry {
		l[4].MsgID = "other"
		return l
	})
	bad("event fence differs from record fence", "record fence", func(l []zonelog.Entry) []zonelog.Entry {
		ev := proto.Clone(l[5].Event).(*schema.Event)
		ev.Fence = 1
		l[5].Event = ev
		return l
	})
}

package store

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// FuzzDecode: Decode never fails or panics; the zone always comes from the
// subject, and a valid schema.Event keeps its id, player and timestamp.
func FuzzDecode(f *testing.F) {
	ev := &schema.Event{EventId: "e1", Zone: "z0_0", PlayerId: "p", TimestampNs: 42,
		Body: &schema.Event_PlayerMoved{PlayerMoved: &schema.PlayerMoved{X: 1}}}
	b, _ := proto.Marshal(ev)
	f.Add("evt.z0_0", b)
	f.Add("evt.z1_1", []byte{0xff})
	f.Add("evt.", []byte{})
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		r := Decode(7, subject, data, time.Unix(0, 99))
		if r.Seq != 7 || string(r.Payload) != string(data) {
			t.Fatalf("record %+v", r)
		}
		if r.Event == nil && (r.Type != "invalid" || r.TSNs != 99) {
			t.Fatalf("undecodable payload: %+v", r)
		}
		if r.Event != nil && r.EventID != r.Event.GetEventId() {
			t.Fatalf("event id %q vs %q", r.EventID, r.Event.GetEventId())
		}
		Project([]Record{r})
		ZoneDeltas([]Record{r})
	})
}

// TestTypeIsWireEventType: the type of a row is wire.EventType, the same
// name the world writes in Realm-Event-Type of a legacy message.
func TestTypeIsWireEventType(t *testing.T) {
	for _, ev := range []*schema.Event{
		{Body: &schema.Event_PlayerDied{PlayerDied: &schema.PlayerDied{}}},
		{Body: &schema.Event_OwnershipClaimed{OwnershipClaimed: &schema.OwnershipClaimed{}}},
		{},
	} {
		b, _ := proto.Marshal(ev)
		h := nats.Header{}
		h.Set(wire.HeaderEventType, wire.EventType(ev))
		rs := DecodeMessage(1, "evt.z0_0", h, b, time.Unix(0, 1))
		if len(rs) != 1 || rs[0].Type != h.Get(wire.HeaderEventType) {
			t.Fatalf("type %q, header %q", rs[0].Type, h.Get(wire.HeaderEventType))
		}
	}
}

func tickMsg(t testing.TB, rec *schema.TickRecord) (nats.Header, []byte) {
	b, err := proto.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	h := nats.Header{}
	h.Set(wire.HeaderSchema, wire.SchemaTickRecord)
	h.Set(wire.HeaderEventType, wire.EventTypeTick)
	return h, b
}

// TestDecodeTickRecord: a record becomes one Record per event, in order, at
// (seq, index), each payload the event's own bytes; an event without a
// timestamp takes the record's commit time; a broken record is kept raw.
func TestDecodeTickRecord(t *testing.T) {
	evs := []*schema.Event{
		{EventId: "a", Zone: "z0_0", PlayerId: "p1", TimestampNs: 10, Fence: 3, Body: &schema.Event_PlayerMoved{PlayerMoved: &schema.PlayerMoved{X: 1}}},
		{EventId: "b", Zone: "z0_0", PlayerId: "p2", Fence: 3, Body: &schema.Event_PlayerJoined{PlayerJoined: &schema.PlayerJoined{}}},
		{EventId: "c", Zone: "z0_0", PlayerId: "p1", TimestampNs: 12, Fence: 3},
	}
	h, b := tickMsg(t, &schema.TickRecord{RecordId: "z0_0/t/3/9/0", Zone: "z0_0", Fence: 3, Tick: 9, Parts: 1, CommittedAtNs: 99, Events: evs})
	rs := DecodeMessage(42, "evt.z0_0", h, b, time.Unix(0, 7))
	if len(rs) != 3 {
		t.Fatalf("%d records", len(rs))
	}
	for i, r := range rs {
		want, _ := proto.Marshal(evs[i])
		if r.Seq != 42 || r.Index != uint32(i) || r.Zone != "z0_0" || r.EventID != evs[i].EventId || r.Fence != 3 ||
			r.Type != wire.EventType(evs[i]) || string(r.Payload) != string(want) {
			t.Fatalf("record %d = %+v", i, r)
		}
	}
	if rs[0].TSNs != 10 || rs[1].TSNs != 99 || rs[2].TSNs != 12 {
		t.Fatalf("timestamps %d %d %d", rs[0].TSNs, rs[1].TSNs, rs[2].TSNs)
	}
	bad := append(append([]byte(nil), b...), 0x42) // truncated trailing field
	rs = DecodeMessage(43, "evt.z0_0", h, bad, time.Unix(0, 7))
	if len(rs) != 1 || rs[0].Type != "invalid" || rs[0].Index != 0 || string(rs[0].Payload) != string(bad) || rs[0].TSNs != 7 {
		t.Fatalf("broken record: %+v", rs)
	}
	h, b = tickMsg(t, &schema.TickRecord{RecordId: "r", Zone: "z0_0"})
	if rs := DecodeMessage(44, "evt.z0_0", h, b, time.Unix(0, 7)); len(rs) != 0 {
		t.Fatalf("empty record: %+v", rs)
	}
}

// FuzzDecodeMessage: any tick-record payload gives records at one seq with
// increasing indexes, or one raw invalid record; never a panic.
func FuzzDecodeMessage(f *testing.F) {
	h, b := tickMsg(f, &schema.TickRecord{RecordId: "r", Events: []*schema.Event{{EventId: "a"}, {EventId: "b"}}})
	f.Add(b)
	f.Add([]byte{0x42, 0x02, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		rs := DecodeMessage(5, "evt.z0_0", h, data, time.Unix(0, 1))
		for i, r := range rs {
			if r.Seq != 5 || r.Index != uint32(i) || r.Zone != "z0_0" {
				t.Fatalf("record %d: %+v", i, r)
			}
			if r.Type == "invalid" && (len(rs) != 1 || string(r.Payload) != string(data)) {
				t.Fatalf("invalid record not raw: %+v", rs)
			}
		}
		Project(rs)
		ZoneDeltas(rs)
		Memberships(rs)
	})
}

// TestMembershipsLastWins: within a batch the last membership change of a
// (zone, player) wins, in (seq, index) order, whatever the slice order.
func TestMembershipsLastWins(t *testing.T) {
	ev := func(body any) *schema.Event {
		e := &schema.Event{PlayerId: "p", Zone: "z0_0"}
		switch b := body.(type) {
		case *schema.Event_PlayerJoined:
			e.Body = b
		case *schema.Event_PlayerLeft:
			e.Body = b
		}
		return e
	}
	j := ev(&schema.Event_PlayerJoined{PlayerJoined: &schema.PlayerJoined{}})
	l := ev(&schema.Event_PlayerLeft{PlayerLeft: &schema.PlayerLeft{}})
	recs := []Record{
		{Seq: 2, Index: 1, Zone: "z0_0", PlayerID: "p", Event: l},
		{Seq: 2, Index: 0, Zone: "z0_0", PlayerID: "p", Event: j},
		{Seq: 1, Index: 0, Zone: "z0_0", PlayerID: "p", Event: j},
	}
	ms := Memberships(recs)
	if len(ms) != 1 || ms[0].Present || ms[0].Seq != 2 {
		t.Fatalf("memberships %+v", ms)
	}
}

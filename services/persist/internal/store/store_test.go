package store

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
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

func TestEventType(t *testing.T) {
	if got := EventType(&schema.Event{Body: &schema.Event_PlayerDied{PlayerDied: &schema.PlayerDied{}}}); got != "player_died" {
		t.Fatalf("type %q", got)
	}
	if got := EventType(&schema.Event{}); got != "unknown" {
		t.Fatalf("empty body type %q", got)
	}
}

package zonelog

import (
	"bytes"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

func TestEventBytesAreTheCommittedBytes(t *testing.T) {
	evs := []*schema.Event{{EventId: "e1", Zone: "z"}, {EventId: "e2", Zone: "z", PlayerId: "p"}}
	rec := &schema.TickRecord{RecordId: "z/t/1/1/0", Events: evs, CommittedAtNs: 42}
	data, err := proto.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	h := nats.Header{}
	wire.TickRecordHeaders{MsgID: rec.RecordId, Zone: "z"}.Set(h)
	got, err := EventBytes(h, data)
	if err != nil || len(got) != 2 {
		t.Fatalf("EventBytes: %d, %v", len(got), err)
	}
	for i, ev := range evs {
		want, _ := proto.Marshal(ev)
		if !bytes.Equal(got[i], want) {
			t.Errorf("event %d: bytes differ", i)
		}
	}
	if _, at, _ := RecordEvents(data); at != 42 {
		t.Errorf("committed_at_ns %d", at)
	}
	legacy, _ := proto.Marshal(evs[0])
	if got, err := EventBytes(nats.Header{}, legacy); err != nil || len(got) != 1 || !bytes.Equal(got[0], legacy) {
		t.Errorf("legacy: %v %v", got, err)
	}
	if _, err := EventBytes(h, []byte{0xff}); err == nil {
		t.Error("garbage accepted")
	}
}

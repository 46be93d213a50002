package zonelog_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
)

func claim(id string, fence uint64) *schema.Event {
	return &schema.Event{EventId: id, Fence: fence, Body: &schema.Event_OwnershipClaimed{OwnershipClaimed: &schema.OwnershipClaimed{InstanceId: "w", Fence: fence}}}
}

func move(id, cmd string, fence uint64) *schema.Event {
	return &schema.Event{EventId: id, Fence: fence, CommandId: cmd, Body: &schema.Event_PlayerMoved{PlayerMoved: &schema.PlayerMoved{X: 1}}}
}

func entries(evs ...*schema.Event) []zonelog.Entry {
	var out []zonelog.Entry
	for i, ev := range evs {
		out = append(out, zonelog.Entry{Seq: uint64(i + 1), ExpectedSeq: uint64(i), HasExpected: true, MsgID: ev.EventId, HeaderFence: ev.Fence, HasFence: true, Event: ev})
	}
	return out
}

func TestCheck(t *testing.T) {
	good := entries(claim("c1", 1), move("e1", "s:1", 1), claim("c2", 5), move("e2", "s:2", 5))
	if _, vs := zonelog.Check(map[string][]zonelog.Entry{"z": good}); len(vs) != 0 {
		t.Fatalf("good log: %v", vs)
	}
	for name, tc := range map[string]struct {
		log  []zonelog.Entry
		want string
	}{
		"stale owner":     {entries(claim("c1", 1), claim("c2", 2), move("e1", "s:1", 1)), "stale owner"},
		"fence backwards": {entries(claim("c1", 3), claim("c2", 2)), "backwards"},
		"no claim":        {entries(move("e1", "s:1", 1)), "before any ownership claim"},
		"applied twice":   {entries(claim("c1", 1), move("e1", "s:1", 1), move("e2", "s:1", 1)), "applied-twice"},
		"duplicate id":    {entries(claim("c1", 1), move("e1", "s:1", 1), move("e1", "s:2", 1)), "already at"},
		"fork": {func() []zonelog.Entry {
			l := entries(claim("c1", 1), move("e1", "s:1", 1))
			l[1].ExpectedSeq = 0
			return l
		}(), "linear"},
		"missing expected":  {func() []zonelog.Entry { l := entries(claim("c1", 1)); l[0].HasExpected = false; return l }(), "linear"},
		"header fence diff": {func() []zonelog.Entry { l := entries(claim("c1", 1)); l[0].HeaderFence = 9; return l }(), "Realm-Fence"},
	} {
		_, vs := zonelog.Check(map[string][]zonelog.Entry{"z": tc.log})
		found := false
		for _, v := range vs {
			found = found || strings.Contains(v.String(), tc.want)
		}
		if !found {
			t.Errorf("%s: violations %v, want one containing %q", name, vs, tc.want)
		}
	}
}

func TestReadFromJetStream(t *testing.T) {
	_, _, js := natstest.StartWithStreams(t)
	ctx := context.Background()
	var last uint64
	for i, ev := range []*schema.Event{claim("z/claim/1", 1), move("z/c/s:1", "s:1", 1), move("z/c/s:2", "s:2", 1)} {
		b, _ := proto.Marshal(ev)
		m := nats.NewMsg(wire.EventSubject("z"))
		m.Data = b
		m.Header.Set(wire.HeaderMsgID, ev.EventId)
		m.Header.Set(wire.HeaderFence, strconv.FormatUint(ev.Fence, 10))
		m.Header.Set(wire.HeaderExpectedLastSubjSeq, strconv.FormatUint(last, 10))
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		last = ack.Sequence
		// An unrelated zone interleaves in the stream.
		if _, err := js.Publish(ctx, wire.EventSubject("other"), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// A stale append is refused by JetStream itself.
	m := nats.NewMsg(wire.EventSubject("z"))
	m.Header.Set(wire.HeaderExpectedLastSubjSeq, "1")
	if _, err := js.PublishMsg(ctx, m); err == nil {
		t.Fatal("stale append accepted")
	} else if !isWrongLastSeq(err) {
		t.Fatalf("stale append: %v, want wrong last sequence", err)
	}
	logs, err := zonelog.ReadAll(ctx, js, []string{"z", "empty"})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs["z"]) != 3 || len(logs["empty"]) != 0 {
		t.Fatalf("read %d and %d events", len(logs["z"]), len(logs["empty"]))
	}
	r, vs := zonelog.Check(logs)
	if len(vs) != 0 || len(r.Applied) != 2 || r.Claims != 1 {
		t.Fatalf("report %+v, violations %v", r, vs)
	}
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errorsAs(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

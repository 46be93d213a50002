package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/zonelog"
)

// TestExplainNamesTheRoundTrip: the explanation of an unapplied command
// shows its session's neighbouring events, the player's transfers (with the
// last input seq the way back carried) and its zone's claims near it: what
// it takes to tell from one CI failure how a command was lost.
func TestExplainNamesTheRoundTrip(t *testing.T) {
	at := time.Unix(1000, 0)
	ns := func(d time.Duration) int64 { return at.Add(d).UnixNano() }
	ev := func(seq uint64, e *schema.Event) LoggedEvent {
		return LoggedEvent{Entry: zonelog.Entry{Seq: seq, Event: e}}
	}
	p := &schema.PlayerState{PlayerId: "p", SessionId: "s", LastInputSeq: 5}
	logs := map[string]*ZoneLog{
		"z1": {Zone: "z1", Events: []LoggedEvent{
			ev(1, &schema.Event{CommandId: "s:1", TimestampNs: ns(-time.Second), Body: &schema.Event_PlayerJoined{PlayerJoined: &schema.PlayerJoined{Player: p}}}),
			ev(2, &schema.Event{TimestampNs: ns(2 * time.Second), Body: &schema.Event_OwnershipClaimed{OwnershipClaimed: &schema.OwnershipClaimed{InstanceId: "world-2", Fence: 7}}}),
			ev(3, &schema.Event{CommandId: "s:3", TimestampNs: ns(3 * time.Second), Body: &schema.Event_TransferOut{TransferOut: &schema.TransferOut{ToZone: "z2", Player: p}}}),
			ev(5, &schema.Event{CommandId: "z2>z1/s:5", TimestampNs: ns(4 * time.Second), Body: &schema.Event_TransferAccepted{TransferAccepted: &schema.TransferAccepted{Player: p}}}),
		}},
		"z2": {Zone: "z2", Events: []LoggedEvent{
			ev(4, &schema.Event{CommandId: "s:4", TimestampNs: ns(3500 * time.Millisecond), Body: &schema.Event_PlayerMoved{PlayerMoved: &schema.PlayerMoved{}}}),
		}},
	}
	cl := &CommandLog{ByID: map[string][]uint64{"s:2": {9}}, Zone: map[string]string{"s:2": "z1"},
		Meta: map[string]CommandMeta{"s:2": {Kind: "chat", Player: "p", At: at}}}
	got := Explain(cl, logs, "s:2")
	for _, want := range []string{"s:2: chat of player p in cmd.z1", "player_joined s:1", "claimed by world-2, fence 7", "transfer_out s:3 to z2",
		"z2 EVT 4: player_moved s:4", "transfer_accepted z2>z1/s:5, last_input_seq 5"} {
		if !strings.Contains(got, want) {
			t.Errorf("explanation lacks %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "transfer_out") > strings.Index(got, "transfer_accepted") {
		t.Errorf("not in time order:\n%s", got)
	}
}

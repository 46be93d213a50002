package wire

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/realmstream/realmstream/libs/schema"
)

func TestCommandHeaders(t *testing.T) {
	c := CommandHeaders{MsgID: "s:1", Session: "s", Player: "p", Zone: "z0_0", Digest: "ff"}
	m := CommandMsg(c, []byte("x"))
	// Session, player and zone live in the Command body only (issue 12 #4).
	want := map[string]string{HeaderMsgID: "s:1", HeaderSchema: SchemaVersion, HeaderCmdDigest: "ff"}
	if m.Subject != CommandSubject("z0_0") || len(m.Header) != len(want) {
		t.Fatalf("msg %q %v", m.Subject, m.Header)
	}
	for k, v := range want {
		if got := m.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	c.Digest = ""
	if m := CommandMsg(c, nil); m.Header.Get(HeaderCmdDigest) != "" || len(m.Header) != 2 {
		t.Errorf("no digest: %v", m.Header)
	}
	// The gateway's publisher reuses one map and one buffer per pooled
	// message: Fill must not allocate.
	var buf CommandHeaderBuf
	h := make(nats.Header, 8)
	// A reused map that held a message of the old shape keeps none of it.
	h[HeaderSession], h[HeaderPlayer], h[HeaderZone] = []string{"old"}, []string{"old"}, []string{"old"}
	buf.Fill(h, c)
	if len(h) != 2 || h.Get(HeaderSession) != "" || h.Get(HeaderZone) != "" {
		t.Errorf("Fill over an old-shape map: %v", h)
	}
	if n := testing.AllocsPerRun(100, func() { buf.Fill(h, c) }); n != 0 {
		t.Errorf("Fill: %v allocs", n)
	}
	// Refilled in place: with a digest, then without (the digest goes), and
	// over a traceparent left by a traced command (it goes too).
	c.Digest = "aa"
	buf.Fill(h, c)
	if len(h) != 3 || h.Get(HeaderCmdDigest) != "aa" || h.Get(HeaderMsgID) != "s:1" {
		t.Errorf("refill with digest: %v", h)
	}
	c.Digest, c.MsgID = "", "s:2"
	buf.Fill(h, c)
	if len(h) != 2 || h.Get(HeaderCmdDigest) != "" || h.Get(HeaderMsgID) != "s:2" {
		t.Errorf("refill without digest: %v", h)
	}
	h.Set("traceparent", "00-x")
	c.Digest = "bb"
	buf.Fill(h, c)
	if len(h) != 3 || h.Get("traceparent") != "" || h.Get(HeaderCmdDigest) != "bb" {
		t.Errorf("refill over a traceparent: %v", h)
	}
	if n := testing.AllocsPerRun(100, func() { buf.Fill(h, c) }); n != 0 {
		t.Errorf("refill: %v allocs", n)
	}
}

func TestTickRecordHeaders(t *testing.T) {
	h := nats.Header{}
	TickRecordHeaders{MsgID: TickRecordID("z", 3, 9, 0), LastSeq: 41, Fence: 3, Zone: "z", Instance: "w-1"}.Set(h)
	want := map[string]string{HeaderMsgID: "z/t/3/9/0", HeaderExpectedLastSubjSeq: "41", HeaderFence: "3", HeaderZone: "z",
		HeaderEventType: EventTypeTick, HeaderSchema: SchemaTickRecord, HeaderInstance: "w-1"}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	SetExpectedLastSeq(h, 7)
	SetMsgID(h, "id")
	if h.Get(HeaderExpectedLastSubjSeq) != "7" || h.Get(HeaderMsgID) != "id" {
		t.Errorf("setters: %v", h)
	}
}

// TestCommandType: every command body has its field name, an empty one
// "unknown" (the gateway's spans and the audit share the names).
func TestCommandType(t *testing.T) {
	for want, cmd := range map[string]*schema.Command{
		"join":        {Body: &schema.Command_Join{Join: &schema.Join{}}},
		"leave":       {Body: &schema.Command_Leave{Leave: &schema.Leave{}}},
		"move":        {Body: &schema.Command_Move{Move: &schema.Move{}}},
		"chat":        {Body: &schema.Command_Chat{Chat: &schema.Chat{}}},
		"attack":      {Body: &schema.Command_Attack{Attack: &schema.Attack{}}},
		"transfer_in": {Body: &schema.Command_TransferIn{TransferIn: &schema.TransferIn{}}},
		"disconnect":  {Body: &schema.Command_Disconnect{Disconnect: &schema.Disconnect{}}},
		"unknown":     {},
	} {
		if got := CommandType(cmd); got != want {
			t.Errorf("CommandType(%v) = %q, want %q", cmd, got, want)
		}
	}
	if got := CommandType(nil); got != "unknown" {
		t.Errorf("CommandType(nil) = %q", got)
	}
}

package wire

import (
	"testing"

	"github.com/nats-io/nats.go"
)

func TestCommandHeaders(t *testing.T) {
	c := CommandHeaders{MsgID: "s:1", Session: "s", Player: "p", Zone: "z0_0", Digest: "ff"}
	m := CommandMsg(c, []byte("x"))
	want := map[string]string{HeaderMsgID: "s:1", HeaderSession: "s", HeaderPlayer: "p", HeaderZone: "z0_0", HeaderSchema: SchemaVersion, HeaderCmdDigest: "ff"}
	if m.Subject != CommandSubject("z0_0") || len(m.Header) != len(want) {
		t.Fatalf("msg %q %v", m.Subject, m.Header)
	}
	for k, v := range want {
		if got := m.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	c.Digest = ""
	if m := CommandMsg(c, nil); m.Header.Get(HeaderCmdDigest) != "" || len(m.Header) != 5 {
		t.Errorf("no digest: %v", m.Header)
	}
	// The gateway's publisher reuses one map and one buffer per pooled
	// message: Fill must not allocate.
	var buf CommandHeaderBuf
	h := make(nats.Header, 8)
	if n := testing.AllocsPerRun(100, func() { buf.Fill(h, c) }); n != 0 {
		t.Errorf("Fill: %v allocs", n)
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

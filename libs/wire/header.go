package wire

import (
	"strconv"

	"github.com/nats-io/nats.go"
)

// The builders below are the only code that sets Realm-* and Nats-* headers
// (TestOnlyWireSetsContractHeaders fails on any other): what a message on
// cmd.<zone> or evt.<zone> carries is decided here, once.

// CommandHeaders describe a command on cmd.<zone>: a client's command
// (gateway), a Disconnect (gateway) or a TransferIn (world).
//
// A command message carries only Nats-Msg-Id, Realm-Schema and (client
// commands) Realm-Cmd-Digest (issue 12 #4). Session, player and zone are
// fields of the schema.Command body, which every reader decodes; as headers
// they were three quarters of the header bytes (about three times the
// payload) and ~15% of the gateway's CPU with no reader. Messages written
// before that still carry Realm-Session, Realm-Player and Realm-Zone; no
// reader needs them, so old and new messages read alike.
type CommandHeaders struct {
	MsgID   string // Nats-Msg-Id: <session>:<seq>, or the disconnect / transfer id
	Session string // in the body only (no header)
	Player  string // in the body only (no header)
	Zone    string // the subject's zone (cmd.<zone>); in the body, no header
	Digest  string // Realm-Cmd-Digest (client commands: the digest of the command); "" = none
}

// CommandHeaderBuf is reusable storage of a command's header values: Fill
// writes the headers into a reused map without allocating (the gateway's
// publisher keeps one per pooled message).
type CommandHeaderBuf struct{ vals [3]string }

// Fill replaces the contents of h with the headers of c; h's value slices
// point into b until the next Fill.
func (b *CommandHeaderBuf) Fill(h nats.Header, c CommandHeaders) {
	b.vals = [3]string{c.MsgID, SchemaVersion, c.Digest}
	// A reused map usually holds exactly these keys: overwrite them, and
	// clear it only when something else is left (a traceparent, a batch's
	// headers), which makes it longer than ours.
	if n := b.set(h); len(h) != n {
		clear(h)
		b.set(h)
	}
}

// set writes b's headers into h (removing a digest when b has none) and
// returns how many they are.
func (b *CommandHeaderBuf) set(h nats.Header) int {
	h[HeaderMsgID] = b.vals[0:1:1]
	h[HeaderSchema] = b.vals[1:2:2]
	if b.vals[2] == "" {
		delete(h, HeaderCmdDigest)
		return 2
	}
	h[HeaderCmdDigest] = b.vals[2:3:3]
	return 3
}

// CommandMsg returns a message to cmd.<zone of c> with c's headers and data.
func CommandMsg(c CommandHeaders, data []byte) *nats.Msg {
	m := &nats.Msg{Subject: CommandSubject(c.Zone), Data: data, Header: make(nats.Header, 3)}
	new(CommandHeaderBuf).Fill(m.Header, c)
	return m
}

// TickRecordHeaders are the headers of one tick record on evt.<zone>.
type TickRecordHeaders struct {
	MsgID    string // Nats-Msg-Id: TickRecordID
	LastSeq  uint64 // Nats-Expected-Last-Subject-Sequence: the log's end the owner appends at
	Fence    uint64 // Realm-Fence: the owner's fencing token
	Zone     string // Realm-Zone
	Instance string // Realm-Instance: the owner instance
}

// Set writes the headers of a tick record (Realm-Event-Type tick,
// Realm-Schema SchemaTickRecord) into h.
func (t TickRecordHeaders) Set(h nats.Header) {
	h[HeaderMsgID] = []string{t.MsgID}
	h[HeaderExpectedLastSubjSeq] = []string{strconv.FormatUint(t.LastSeq, 10)}
	h[HeaderFence] = []string{strconv.FormatUint(t.Fence, 10)}
	h[HeaderZone] = []string{t.Zone}
	h[HeaderEventType] = []string{EventTypeTick}
	h[HeaderSchema] = []string{SchemaTickRecord}
	h[HeaderInstance] = []string{t.Instance}
}

// SetMsgID sets only Nats-Msg-Id: a message deduplicated by JetStream that
// belongs to no stream of the contract (benchmarks' bare pipelines).
func SetMsgID(h nats.Header, id string) { h[HeaderMsgID] = []string{id} }

// SetExpectedLastSeq sets Nats-Expected-Last-Subject-Sequence alone (tests
// and tools that forge a log's shape).
func SetExpectedLastSeq(h nats.Header, seq uint64) {
	h[HeaderExpectedLastSubjSeq] = []string{strconv.FormatUint(seq, 10)}
}

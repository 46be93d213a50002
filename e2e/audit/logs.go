package audit

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
)

// AckedCommand is a command a client saw acknowledged by the gateway (an Ack
// packet: JetStream stored it).
type AckedCommand struct {
	ID        string // wire.CommandID(session, seq)
	StreamSeq uint64 // CMD stream sequence the Ack carried (0 if unknown)
	Duplicate bool
}

// Violation is one broken promise, with enough detail to find it in the logs.
type Violation struct {
	Check  string `json:"check"`
	Detail string `json:"detail"`
}

func (v Violation) String() string { return v.Check + ": " + v.Detail }

// CommandLog is what the CMD stream holds.
type CommandLog struct {
	// Messages are CMD's messages; Commands the commands they hold (a
	// command batch holds several).
	Messages, Commands int
	// ByID maps a command id to the stream sequences holding it.
	ByID map[string][]uint64
	// Zone of each command id.
	Zone map[string]string
	// Optional are the commands that cause an event only sometimes: a
	// gateway's Disconnect leads to PlayerLeft only when its grace period
	// ends with the session's player still in the zone (any later command of
	// the session, a resume elsewhere, cancels it).
	Optional map[string]bool
	// Meta of each command id (its first copy): what Explain prints.
	Meta map[string]CommandMeta
}

// CommandMeta is what the audit keeps of a stored command besides its id.
type CommandMeta struct {
	Kind   string // join, move, chat, ...
	Player string
	At     time.Time // stored at
}

// ReadCommands reads the whole CMD stream.
func ReadCommands(ctx context.Context, js jetstream.JetStream) (*CommandLog, []Violation, error) {
	cl := &CommandLog{ByID: map[string][]uint64{}, Zone: map[string]string{}, Optional: map[string]bool{}, Meta: map[string]CommandMeta{}}
	var vs []Violation
	n, err := ReadStream(ctx, js, wire.StreamCommands, func(m StreamMsg) error {
		zone := strings.TrimPrefix(m.Subject, wire.CommandPrefix)
		batch := wire.IsCommandBatch(m.Header)
		berr := wire.ForEachCommand(m.Header, m.Data, func(data []byte) error {
			cl.command(m, zone, batch, data, &vs)
			return nil
		})
		if berr != nil {
			vs = append(vs, Violation{"cmd-decode", fmt.Sprintf("CMD seq %d: %v", m.Seq, berr)})
		}
		return nil
	})
	cl.Messages = n
	return cl, vs, err
}

// command notes one stored command: the message's payload, or one entry of
// the command batch it holds (then the command id is the entry's own: the
// batch's Nats-Msg-Id names the batch). A command id stored in a batch and
// again alone (a resend after a gateway crash: JetStream cannot deduplicate
// it against the batch) counts as stored twice, which the world must apply
// once, like a resend past the duplicate window.
func (cl *CommandLog) command(m StreamMsg, zone string, batch bool, data []byte, vs *[]Violation) {
	id := ""
	if !batch {
		id = m.Header.Get(wire.HeaderMsgID)
	}
	var c schema.Command
	if err := proto.Unmarshal(data, &c); err != nil {
		*vs = append(*vs, Violation{"cmd-decode", fmt.Sprintf("CMD seq %d: %v", m.Seq, err)})
	} else {
		if id == "" {
			id = c.CommandId
		}
		if c.CommandId != id {
			*vs = append(*vs, Violation{"cmd-id", fmt.Sprintf("CMD seq %d: Nats-Msg-Id %q but command_id %q", m.Seq, id, c.CommandId)})
		}
		if c.GetDisconnect() != nil {
			cl.Optional[id] = true
		}
		if _, ok := cl.Meta[id]; !ok && id != "" {
			cl.Meta[id] = CommandMeta{Kind: wire.CommandType(&c), Player: c.PlayerId, At: m.Time}
		}
		if c.Zone != "" && c.Zone != zone {
			*vs = append(*vs, Violation{"cmd-zone", fmt.Sprintf("CMD seq %d: subject zone %q, body zone %q", m.Seq, zone, c.Zone)})
		}
	}
	if id == "" {
		*vs = append(*vs, Violation{"cmd-id", fmt.Sprintf("CMD seq %d has no command id", m.Seq)})
		return
	}
	cl.Commands++
	cl.ByID[id] = append(cl.ByID[id], m.Seq)
	cl.Zone[id] = zone
}

// CommandFindings compares acknowledged commands with the CMD stream.
type CommandFindings struct {
	Acked          int `json:"acked"`
	InStream       int `json:"in_stream"`
	UniqueInStream int `json:"unique_in_stream"`
	// Missing: acknowledged but not in CMD (lost).
	Missing int `json:"missing"`
	// SeqMismatch: the Ack's stream sequence is not where the id is stored.
	SeqMismatch int `json:"seq_mismatch"`
	// StoredTwice: ids stored more than once in CMD (a resend past the
	// duplicate window; the world must still apply them once).
	StoredTwice int `json:"stored_twice"`
}

// CheckAcked verifies that every acknowledged command is in the CMD stream
// at the sequence its Ack named.
func CheckAcked(acked []AckedCommand, cl *CommandLog) (CommandFindings, []Violation) {
	f := CommandFindings{Acked: len(acked), InStream: cl.Commands, UniqueInStream: len(cl.ByID)}
	var vs []Violation
	for _, a := range acked {
		seqs, ok := cl.ByID[a.ID]
		if !ok {
			f.Missing++
			if f.Missing <= 20 {
				vs = append(vs, Violation{"acked-command-missing", fmt.Sprintf("%s acked at CMD seq %d is not in CMD", a.ID, a.StreamSeq)})
			}
			continue
		}
		if a.StreamSeq != 0 && !containsSeq(seqs, a.StreamSeq) {
			f.SeqMismatch++
			if f.SeqMismatch <= 20 {
				vs = append(vs, Violation{"ack-seq", fmt.Sprintf("%s acked at CMD seq %d but stored at %v", a.ID, a.StreamSeq, seqs)})
			}
		}
	}
	for _, seqs := range cl.ByID {
		if len(seqs) > 1 {
			f.StoredTwice++
		}
	}
	if f.Missing > 20 {
		vs = append(vs, Violation{"acked-command-missing", fmt.Sprintf("... %d acked commands missing in all", f.Missing)})
	}
	return f, vs
}

func containsSeq(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// ZoneLog is one zone's event log as read from EVT: its events in log
// order, (seq, index).
type ZoneLog struct {
	Zone   string
	Events []LoggedEvent
}

// LoggedEvent is one event of the log: zonelog's Entry (stream position of
// its message, index in the record, headers, the record) and the event's
// bytes exactly as committed.
type LoggedEvent struct {
	zonelog.Entry
	Raw []byte // the event's schema.Event bytes (a legacy message: the message data)
}

// ReadEvents reads the EVT stream into per-zone logs: tick records
// (Realm-Schema 2) unpacked into their events with zonelog.Decode, legacy
// single-event messages as one event at index 0.
func ReadEvents(ctx context.Context, js jetstream.JetStream) (map[string]*ZoneLog, int, []Violation, error) {
	logs := map[string]*ZoneLog{}
	var vs []Violation
	n, err := ReadStream(ctx, js, wire.StreamEvents, func(m StreamMsg) error {
		zone := strings.TrimPrefix(m.Subject, wire.EventPrefix)
		zl := logs[zone]
		if zl == nil {
			zl = &ZoneLog{Zone: zone}
			logs[zone] = zl
		}
		es, err := zonelog.Decode(m.Seq, m.Header, m.Data)
		var raws [][]byte
		if err == nil {
			raws, err = zonelog.EventBytes(m.Header, m.Data)
		}
		if err == nil && len(raws) != len(es) {
			err = fmt.Errorf("%d events decoded, %d event payloads", len(es), len(raws))
		}
		if err != nil {
			vs = append(vs, Violation{"evt-decode", fmt.Sprintf("EVT seq %d (%s): %v", m.Seq, zone, err)})
			return nil
		}
		if hz := m.Header.Get(wire.HeaderZone); hz != "" && hz != zone {
			vs = append(vs, Violation{"evt-zone", fmt.Sprintf("EVT seq %d on %s has Realm-Zone %q", m.Seq, m.Subject, hz)})
		}
		for i, e := range es {
			zl.Events = append(zl.Events, LoggedEvent{Entry: e, Raw: append([]byte(nil), raws[i]...)})
		}
		return nil
	})
	return logs, n, vs, err
}

// EventType names the body of an event ("player_moved", ...): wire.EventType.
func EventType(ev *schema.Event) string { return wire.EventType(ev) }

// LogFindings summarises the event logs.
type LogFindings struct {
	Zones  int `json:"zones"`
	Events int `json:"events"`
	// Messages are the EVT messages holding the events; Records the tick
	// records among them (the others are legacy single events).
	Messages int            `json:"messages"`
	Records  int            `json:"records"`
	Claims   int            `json:"claims"`
	ByType   map[string]int `json:"by_type"`
	// Applied is the number of distinct command ids that caused events.
	Applied int `json:"applied_commands"`
	// AppliedTwice counts commands that caused more than one event.
	AppliedTwice int `json:"applied_twice"`
	// MissingExpected counts appends without Nats-Expected-Last-Subject-Sequence.
	MissingExpected int `json:"appends_without_expected_seq"`
}

// CheckLogs checks the invariants of every zone log with the world's own
// checker (libs/zonelog.Check: linear appends, fences that never go back
// after a claim, unique event ids, no command id causing two events in any
// zone), and counts events by type. It returns the set of command ids that
// caused an event.
func CheckLogs(logs map[string]*ZoneLog) (LogFindings, map[string]bool, []Violation) {
	f := LogFindings{Zones: len(logs), ByType: map[string]int{}}
	in := make(map[string][]zonelog.Entry, len(logs))
	for z, zl := range logs {
		es := make([]zonelog.Entry, len(zl.Events))
		for i, le := range zl.Events {
			es[i] = le.Entry
			f.ByType[EventType(le.Event)]++
			if le.Index == 0 {
				f.Messages++
				if le.Record != nil {
					f.Records++
				}
				if !le.HasExpected {
					f.MissingExpected++
				}
			}
		}
		in[z] = es
	}
	rep, zvs := zonelog.Check(in)
	f.Events, f.Claims = rep.Events, rep.Claims
	applied := make(map[string]bool, len(rep.Applied))
	for id := range rep.Applied {
		applied[id] = true
	}
	f.Applied = len(applied)
	vs := make([]Violation, 0, len(zvs))
	for _, v := range zvs {
		if v.Check == "applied-twice" {
			f.AppliedTwice++
		}
		vs = append(vs, Violation{Check: v.Check, Detail: v.Detail})
	}
	return f, applied, vs
}

// CheckApplied verifies that every command stored in CMD caused at least one
// event (an effect or a CommandRejected): nothing accepted was dropped by the
// world. It returns the number of unapplied commands per zone.
func CheckApplied(cl *CommandLog, applied map[string]bool) (map[string]int, []Violation) {
	missing := map[string]int{}
	var vs []Violation
	ids := Unapplied(cl, applied)
	for n, id := range ids {
		missing[cl.Zone[id]]++
		if n < 20 {
			vs = append(vs, Violation{"command-not-applied", fmt.Sprintf("%s (%s, cmd.%s, CMD seq %v) caused no event", id, cl.Meta[id].Kind, cl.Zone[id], cl.ByID[id])})
		}
	}
	if len(ids) > 20 {
		vs = append(vs, Violation{"command-not-applied", fmt.Sprintf("... %d commands in CMD caused no event in all", len(ids))})
	}
	return missing, vs
}

// Unapplied returns the ids of the commands stored in CMD that caused no
// event (and need one: a Disconnect may end without), sorted.
func Unapplied(cl *CommandLog, applied map[string]bool) []string {
	var ids []string
	for id := range cl.ByID {
		if !applied[id] && !cl.Optional[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Explain describes, for a command that caused no event, what the logs hold
// around it: the command (kind, player, zone, when it was stored), every
// event of its session in any zone whose client seq is within 10 of its own,
// every transfer of the session's player (out and in, with the last input
// seq a TransferAccepted carries), and the claims of its zone within 15 s of
// it, in time order. The fault run prints it with a command-not-applied, so
// that one failure in CI names the path that lost the command.
func Explain(cl *CommandLog, logs map[string]*ZoneLog, id string) string {
	var b strings.Builder
	meta := cl.Meta[id]
	zone := cl.Zone[id]
	fmt.Fprintf(&b, "%s: %s of player %s in cmd.%s at CMD seq %v, stored %s", id, meta.Kind, meta.Player, zone, cl.ByID[id], meta.At.UTC().Format("15:04:05.000"))
	session, seq, err := wire.ParseCommandID(id)
	if err != nil {
		return b.String()
	}
	type line struct {
		at   int64
		text string
	}
	var lines []line
	for z, zl := range logs {
		for _, le := range zl.Events {
			ev := le.Event
			var note string
			switch {
			case ev.GetOwnershipClaimed() != nil && z == zone && !meta.At.IsZero() &&
				time.Duration(abs(ev.TimestampNs-meta.At.UnixNano())) < 15*time.Second:
				note = fmt.Sprintf("claimed by %s, fence %d", ev.GetOwnershipClaimed().InstanceId, ev.GetOwnershipClaimed().Fence)
			case ev.GetTransferAccepted().GetPlayer().GetSessionId() == session:
				note = fmt.Sprintf("transfer_accepted %s, last_input_seq %d", ev.CommandId, ev.GetTransferAccepted().GetPlayer().GetLastInputSeq())
			case ev.GetTransferOut() != nil && ev.GetTransferOut().GetPlayer().GetSessionId() == session:
				note = fmt.Sprintf("transfer_out %s to %s", ev.CommandId, ev.GetTransferOut().ToZone)
			default:
				s, q, err := wire.ParseCommandID(ev.CommandId)
				if err != nil || s != session || q+10 < seq || q > seq+10 {
					continue
				}
				note = fmt.Sprintf("%s %s", EventType(ev), ev.CommandId)
			}
			lines = append(lines, line{ev.TimestampNs, fmt.Sprintf("%s %s EVT %d: %s", time.Unix(0, ev.TimestampNs).UTC().Format("15:04:05.000"), z, le.Seq, note)})
		}
	}
	if at := meta.At.UnixNano(); len(lines) > 60 && !meta.At.IsZero() {
		// The 60 nearest in time to the command.
		sort.Slice(lines, func(i, j int) bool { return abs(lines[i].at-at) < abs(lines[j].at-at) })
		lines = lines[:60]
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].at < lines[j].at })
	for _, l := range lines {
		b.WriteString("\n    ")
		b.WriteString(l.text)
	}
	return b.String()
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

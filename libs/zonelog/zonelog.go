// Package zonelog reads zone event logs (evt.<zone> in the EVT stream) and
// checks the invariants that make them a single linear history even when two
// world instances briefly both believed they owned a zone:
//
//   - linear: every message (a tick record of events, or a legacy single
//     event) carries Nats-Expected-Last-Subject-Sequence equal to the stream
//     sequence of the zone's previous message (0 for the first);
//   - fenced: the first event is an OwnershipClaimed; claim fences strictly
//     grow; every other event carries the fence of the latest claim (so no
//     stale owner appended after a newer claim) and the Realm-Fence header
//     equals the body's fence;
//   - ids: Nats-Msg-Id equals the record_id (or a legacy event's event_id)
//     and is unique; every event_id is unique;
//   - exactly once: no command id caused two events, in any zone.
//
// The world's fault tests and the end-to-end audit use it.
package zonelog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// Entry is one stored event with the position and headers of the message
// that holds it. Since tick records (wire.SchemaTickRecord) a message holds
// the events of one zone tick: every event of a record has the same Seq and
// headers and its own Index; a legacy message (wire.SchemaEventV1) holds one
// event at Index 0. (Seq, Index) addresses an event.
type Entry struct {
	Seq         uint64 // stream sequence of the message
	Index       int    // position of the event in its record
	Count       int    // events in the record
	RecordID    string // record_id of a tick record ("" for a legacy message)
	ExpectedSeq uint64 // Nats-Expected-Last-Subject-Sequence of the message
	HasExpected bool
	MsgID       string // Nats-Msg-Id of the message
	HeaderFence uint64
	HasFence    bool
	Event       *schema.Event
	Record      *schema.TickRecord // the whole record (nil for a legacy message)
}

// Last reports whether e is the last event of its message: the zone's state
// covers stream sequence Seq once this event is applied.
func (e Entry) Last() bool { return e.Index == e.Count-1 }

// Violation is one broken invariant.
type Violation struct {
	Check  string // linear, fence, event-id, applied-twice, decode
	Detail string
}

func (v Violation) String() string { return v.Check + ": " + v.Detail }

// Read returns the whole log of zone in order.
func Read(ctx context.Context, js jetstream.JetStream, zone string) ([]Entry, error) {
	return ReadFrom(ctx, js, zone, 1)
}

// ReadFrom returns the log of zone from stream sequence start on.
func ReadFrom(ctx context.Context, js jetstream.JetStream, zone string, start uint64) ([]Entry, error) {
	var out []Entry
	err := Scan(ctx, js, zone, start, func(e Entry) error { out = append(out, e); return nil })
	return out, err
}

// Scan calls fn for every event of zone from stream sequence start on, in
// order, up to the last event stored when Scan began.
func Scan(ctx context.Context, js jetstream.JetStream, zone string, start uint64, fn func(Entry) error) error {
	subj := wire.EventSubject(zone)
	st, err := js.Stream(ctx, wire.StreamEvents)
	if err != nil {
		return fmt.Errorf("zonelog: stream %s: %w", wire.StreamEvents, err)
	}
	last, err := st.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("zonelog: last event of %s: %w", zone, err)
	}
	if last.Sequence < start {
		return nil
	}
	if start == 0 {
		start = 1
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
	})
	if err != nil {
		return fmt.Errorf("zonelog: consumer on %s: %w", subj, err)
	}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("zonelog: fetch %s: %w", subj, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("zonelog: metadata: %w", err)
			}
			es, err := Decode(md.Sequence.Stream, m.Headers(), m.Data())
			if err != nil {
				return err
			}
			for _, e := range es {
				if err := fn(e); err != nil {
					return err
				}
			}
			if md.Sequence.Stream >= last.Sequence {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("zonelog: fetch %s: %w", subj, err)
		}
		if n == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("zonelog: %s: no messages before seq %d arrived", subj, last.Sequence)
		}
	}
}

// Decode builds the entries of one stored message: the events of a tick
// record (Realm-Schema wire.SchemaTickRecord) in order, or the one event of a
// legacy message. A record with no events yields no entries.
func Decode(seq uint64, h nats.Header, data []byte) ([]Entry, error) {
	base := Entry{Seq: seq, MsgID: h.Get(wire.HeaderMsgID)}
	base.ExpectedSeq, base.HasExpected = headerUint(h, wire.HeaderExpectedLastSubjSeq)
	base.HeaderFence, base.HasFence = headerUint(h, wire.HeaderFence)
	if h.Get(wire.HeaderSchema) == wire.SchemaTickRecord {
		rec := &schema.TickRecord{}
		if err := proto.Unmarshal(data, rec); err != nil {
			return nil, fmt.Errorf("zonelog: tick record at seq %d: %w", seq, err)
		}
		out := make([]Entry, len(rec.Events))
		for i, ev := range rec.Events {
			e := base
			e.Index, e.Count, e.RecordID, e.Event, e.Record = i, len(rec.Events), rec.RecordId, ev, rec
			out[i] = e
		}
		return out, nil
	}
	ev := &schema.Event{}
	if err := proto.Unmarshal(data, ev); err != nil {
		return nil, fmt.Errorf("zonelog: event at seq %d: %w", seq, err)
	}
	base.Count, base.Event = 1, ev
	return []Entry{base}, nil
}

func headerUint(h nats.Header, k string) (uint64, bool) {
	v := h.Get(k)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

// Report summarises checked logs.
type Report struct {
	Events int
	Claims int
	// Applied maps each command id that caused an event to "zone@seq".
	Applied map[string]string
}

// Check verifies the invariants over the logs of several zones (zone -> log).
func Check(logs map[string][]Entry) (Report, []Violation) {
	r := Report{Applied: map[string]string{}}
	var vs []Violation
	add := func(check, format string, a ...any) {
		if len(vs) < 100 {
			vs = append(vs, Violation{check, fmt.Sprintf(format, a...)})
		}
	}
	zones := make([]string, 0, len(logs))
	for z := range logs {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	ids := map[string]string{}
	for _, z := range zones {
		var prev, fence uint64
		claimed := false
		msgIDs := map[string]string{}
		for i, e := range logs[z] {
			ev := e.Event
			r.Events++
			where := fmt.Sprintf("%s #%d (seq %d/%d, %s)", z, i, e.Seq, e.Index, wire.EventType(ev))
			if e.Index == 0 {
				// One message: linear, and its Nats-Msg-Id unique.
				if !e.HasExpected {
					add("linear", "%s has no expected last subject sequence", where)
				} else if e.ExpectedSeq != prev {
					add("linear", "%s expected last subject seq %d, predecessor is %d", where, e.ExpectedSeq, prev)
				}
				if e.Seq <= prev {
					add("linear", "%s stream sequence %d not after %d", where, e.Seq, prev)
				}
				prev = e.Seq
				if other, dup := msgIDs[e.MsgID]; dup && e.Record != nil {
					add("event-id", "%s record id %q already at %s", where, e.MsgID, other)
				} else {
					msgIDs[e.MsgID] = where
				}
			}
			if e.Record != nil {
				if e.MsgID == "" || e.MsgID != e.Record.RecordId {
					add("event-id", "%s Nats-Msg-Id %q, record_id %q", where, e.MsgID, e.Record.RecordId)
				}
				if e.Record.Fence != ev.Fence {
					add("fence", "%s record fence %d, event fence %d", where, e.Record.Fence, ev.Fence)
				}
			} else if e.MsgID == "" || e.MsgID != ev.EventId {
				add("event-id", "%s Nats-Msg-Id %q, event_id %q", where, e.MsgID, ev.EventId)
			}
			if ev.EventId == "" {
				add("event-id", "%s has no event id", where)
			} else if other, dup := ids[ev.EventId]; dup {
				add("event-id", "%s event id %q already at %s", where, ev.EventId, other)
			} else {
				ids[ev.EventId] = where
			}
			if !e.HasFence || e.HeaderFence != ev.Fence {
				add("fence", "%s Realm-Fence header %d (present %v), body fence %d", where, e.HeaderFence, e.HasFence, ev.Fence)
			}
			if c := ev.GetOwnershipClaimed(); c != nil {
				r.Claims++
				if claimed && c.Fence <= fence {
					add("fence", "%s claim with fence %d after fence %d: fences went backwards", where, c.Fence, fence)
				}
				if ev.Fence != c.Fence {
					add("fence", "%s claim fence %d in an event with fence %d", where, c.Fence, ev.Fence)
				}
				fence, claimed = c.Fence, true
				continue
			}
			if !claimed {
				add("fence", "%s appended before any ownership claim", where)
			} else if ev.Fence != fence {
				add("fence", "%s has fence %d after a claim with fence %d (a stale owner appended)", where, ev.Fence, fence)
			}
			if ev.CommandId != "" {
				if other, dup := r.Applied[ev.CommandId]; dup {
					add("applied-twice", "command %s caused %s and %s", ev.CommandId, other, where)
				} else {
					r.Applied[ev.CommandId] = where
				}
			}
		}
	}
	return r, vs
}

// ReadAll reads the logs of zones.
func ReadAll(ctx context.Context, js jetstream.JetStream, zones []string) (map[string][]Entry, error) {
	logs := map[string][]Entry{}
	for _, z := range zones {
		l, err := Read(ctx, js, z)
		if err != nil {
			return nil, err
		}
		if len(l) > 0 {
			logs[z] = l
		}
	}
	return logs, nil
}

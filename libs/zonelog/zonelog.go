// Package zonelog reads zone event logs (evt.<zone> in the EVT stream) and
// checks the invariants that make them a single linear history even when two
// world instances briefly both believed they owned a zone:
//
//   - linear: every append carries Nats-Expected-Last-Subject-Sequence equal to
//     the stream sequence of the zone's previous event (0 for the first);
//   - fenced: the first event is an OwnershipClaimed; claim fences strictly
//     grow; every other event carries the fence of the latest claim (so no
//     stale owner appended after a newer claim) and the Realm-Fence header
//     equals the body's fence;
//   - ids: Nats-Msg-Id equals the body's event_id and is unique;
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
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// Entry is one stored event with its stream position and headers.
type Entry struct {
	Seq         uint64 // stream sequence
	ExpectedSeq uint64 // Nats-Expected-Last-Subject-Sequence
	HasExpected bool
	MsgID       string
	HeaderFence uint64
	HasFence    bool
	Event       *schema.Event
}

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
			e, err := Decode(md.Sequence.Stream, m.Headers(), m.Data())
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
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

// Decode builds an Entry from a stored message.
func Decode(seq uint64, h nats.Header, data []byte) (Entry, error) {
	ev := &schema.Event{}
	if err := proto.Unmarshal(data, ev); err != nil {
		return Entry{}, fmt.Errorf("zonelog: event at seq %d: %w", seq, err)
	}
	e := Entry{Seq: seq, MsgID: h.Get(wire.HeaderMsgID), Event: ev}
	e.ExpectedSeq, e.HasExpected = headerUint(h, wire.HeaderExpectedLastSubjSeq)
	e.HeaderFence, e.HasFence = headerUint(h, wire.HeaderFence)
	return e, nil
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
		for i, e := range logs[z] {
			ev := e.Event
			r.Events++
			where := fmt.Sprintf("%s #%d (seq %d, %s)", z, i, e.Seq, strings.TrimPrefix(fmt.Sprintf("%T", ev.Body), "*schema.Event_"))
			if !e.HasExpected {
				add("linear", "%s has no expected last subject sequence", where)
			} else if e.ExpectedSeq != prev {
				add("linear", "%s expected last subject seq %d, predecessor is %d", where, e.ExpectedSeq, prev)
			}
			prev = e.Seq
			if e.MsgID == "" || e.MsgID != ev.EventId {
				add("event-id", "%s Nats-Msg-Id %q, event_id %q", where, e.MsgID, ev.EventId)
			} else if other, dup := ids[e.MsgID]; dup {
				add("event-id", "%s event id %q already at %s", where, e.MsgID, other)
			} else {
				ids[e.MsgID] = where
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

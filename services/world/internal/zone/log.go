package zone

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
)

// ErrFenced means an append was refused because the zone log moved on
// without us (another owner appended): this instance lost the zone.
var ErrFenced = errors.New("zone: append refused, another owner appended (wrong last sequence)")

// ErrLeaseEnded means the lease ended before an append was attempted.
var ErrLeaseEnded = errors.New("zone: lease ended")

// recordOverhead is the room kept in a message for the TickRecord's own
// fields and the headers, below the server's max payload.
const recordOverhead = 4 << 10

// appender commits one zone's ticks to evt.<zone> with optimistic
// concurrency: one message (a schema.TickRecord) per tick, or a few when the
// tick's events exceed the max payload. It is owned by the zone goroutine.
type appender struct {
	js       jetstream.JetStream
	stream   jetstream.Stream
	zone     string
	subject  string
	instance string
	fence    uint64
	lastSeq  uint64        // stream sequence of the last message of the zone log
	timeout  time.Duration // one publish attempt
	maxBytes int           // largest record payload; 0 = 1 MiB - recordOverhead
	valid    func() bool   // the lease is still valid
	// before is a test hook run with every event id of a record just before
	// the record is published; an error aborts the commit.
	before   func(eventID string) error
	resolved int // ambiguous outcomes resolved by reading the log (tests, logs)
	records  int // records committed
}

// claim makes this owner's fence max(leaseFence, prev + 1), prev being the
// fence of the log's latest claim, and commits OwnershipClaimed{instance,
// fence, prev} as the record of tick at the log's end (lastSeq): the fence
// grows in the log even when the lock store lost its counter (Redis
// restart). The fence is the appender's to set, here only; every record it
// writes after carries it. Two claimants can compute the same fence (lease
// fences at or below the log's, the same end read): only one claim is
// stored, and the other's records are told apart by the instance (ours).
// The claim's event is returned so the caller can apply it.
func (a *appender) claim(ctx context.Context, tick, prev, leaseFence uint64) (*schema.Event, uint64, error) {
	a.fence = max(leaseFence, prev+1)
	ev := &schema.Event{EventId: a.zone + "/claim/" + strconv.FormatUint(a.fence, 10) + "/" + a.instance, TimestampNs: time.Now().UnixNano(), Tick: tick,
		Body: &schema.Event_OwnershipClaimed{OwnershipClaimed: &schema.OwnershipClaimed{InstanceId: a.instance, Fence: a.fence, PreviousFence: prev}}}
	seq, err := a.commit(ctx, tick, []*schema.Event{ev})
	return ev, seq, err
}

// releaseEvent is this owner's OwnershipReleased, the last event of a
// graceful handover (committed with the handover's tick).
func (a *appender) releaseEvent() *schema.Event {
	return &schema.Event{EventId: a.zone + "/release/" + strconv.FormatUint(a.fence, 10) + "/" + a.instance, TimestampNs: time.Now().UnixNano(),
		Body: &schema.Event_OwnershipReleased{OwnershipReleased: &schema.OwnershipReleased{InstanceId: a.instance, Fence: a.fence}}}
}

// wrongLastSeq reports a refused expected sequence: 10071 on a single server,
// 10164 (JSErrCodeStreamWrongLastSequenceConstant) from a replicated stream.
func wrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// split cuts evs into parts whose encoded size stays under max bytes (an
// event larger than max alone is a part of its own; the server refuses it
// and the zone steps down rather than drop it).
func split(evs []*schema.Event, max int) [][]*schema.Event {
	var parts [][]*schema.Event
	start, size := 0, 0
	for i, ev := range evs {
		n := proto.Size(ev) + 8
		if i > start && size+n > max {
			parts = append(parts, evs[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(parts, evs[start:])
}

// commit stores evs as the record(s) of tick: every event gets the zone and
// the fence; the record id is wire.TickRecordID(zone, fence, tick, part). On
// success lastSeq is the stream sequence of the last record and the result.
// Any error means nothing more of this tick may be stored by this owner; a
// refused record (ErrFenced) means another owner appended. A split tick is
// stored part by part; a crash between parts leaves a prefix of the tick,
// which is a consistent state (events are decided in order) whose commands
// were not acked: they are redelivered and recognised by the next owner.
func (a *appender) commit(ctx context.Context, tick uint64, evs []*schema.Event) (uint64, error) {
	max := a.maxBytes
	if max <= 0 {
		max = 1<<20 - recordOverhead
	}
	for _, ev := range evs {
		ev.Zone, ev.Fence = a.zone, a.fence
	}
	parts := split(evs, max)
	now := time.Now().UnixNano()
	for i, part := range parts {
		rec := &schema.TickRecord{RecordId: wire.TickRecordID(a.zone, a.fence, tick, uint32(i)), Zone: a.zone, Fence: a.fence, Tick: tick,
			Part: uint32(i), Parts: uint32(len(parts)), CommittedAtNs: now, Events: part}
		if _, err := a.publish(ctx, rec); err != nil {
			return 0, err
		}
	}
	return a.lastSeq, nil
}

// publish stores one record as the next message of the zone log. An
// ambiguous outcome (timeout, connection lost) is resolved by reading the
// log's last message before anything else is written: if it is ours the
// record is stored; if the log still ends at lastSeq the same message (same
// Nats-Msg-Id, same expected sequence) is sent again; anything else means
// another owner appended: ErrFenced.
func (a *appender) publish(ctx context.Context, rec *schema.TickRecord) (uint64, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("zone: marshal tick record: %w", err)
	}
	id := rec.RecordId
	m := nats.NewMsg(a.subject)
	m.Data = data
	wire.TickRecordHeaders{MsgID: id, LastSeq: a.lastSeq, Fence: a.fence, Zone: a.zone, Instance: a.instance}.Set(m.Header)
	telemetry.Inject(ctx, m.Header)
	if a.valid != nil && !a.valid() {
		return 0, ErrLeaseEnded
	}
	// A pause here (GC, SIGSTOP) can outlast the lease: the expected sequence
	// below is what keeps a stale owner out of the log. Tests pause here.
	if a.before != nil {
		for _, ev := range rec.Events {
			if err := a.before(ev.EventId); err != nil {
				return 0, err
			}
		}
	}
	for {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
		ack, err := a.js.PublishMsg(pctx, m)
		cancel()
		if err == nil {
			if ack.Duplicate {
				// A record with this id is stored at ack.Sequence. Record ids
				// are unique by construction, so it is an earlier attempt of
				// ours, unless the log says otherwise: a position that is not
				// after ours would move the zone backwards (issue 10 #1), and
				// a record without our fence and instance is not ours.
				if ack.Sequence <= a.lastSeq {
					return 0, fmt.Errorf("%w: duplicate answer at seq %d, not after the zone's position %d", ErrFenced, ack.Sequence, a.lastSeq)
				}
				if ours, derr := a.storedIsOurs(ctx, ack.Sequence); derr != nil || !ours {
					return 0, ErrFenced
				}
			}
			return a.stored(ack.Sequence)
		}
		if wrongLastSeq(err) {
			// A retry of a stored record can also come back as "wrong last
			// sequence": check whether the last message is ours.
			seq, ours, rerr := a.resolve(ctx, id)
			if rerr == nil && ours {
				return a.stored(seq)
			}
			if rerr != nil || seq != a.lastSeq {
				return 0, ErrFenced
			}
			// The log has not moved, so nobody else appended: a replicated
			// stream answers 10164 while a proposal is still in flight (our
			// own earlier attempt, around a leader change). Send the same
			// message again; the expected sequence still fences it.
			a.resolved++
			time.Sleep(50 * time.Millisecond)
			if ctx.Err() != nil {
				return 0, fmt.Errorf("zone: append refused while the log had not moved, and ctx ended: %w", context.Cause(ctx))
			}
			if a.valid != nil && !a.valid() {
				return 0, ErrLeaseEnded
			}
			continue
		}
		// Ambiguous: resolve before writing anything else.
		a.resolved++
		for {
			seq, ours, rerr := a.resolve(ctx, id)
			if rerr == nil {
				if ours {
					return a.stored(seq)
				}
				if seq != a.lastSeq {
					return 0, ErrFenced
				}
				break // not stored: send the same message again
			}
			if ctx.Err() != nil || (a.valid != nil && !a.valid()) {
				return 0, fmt.Errorf("zone: append outcome unknown and unresolvable before the lease ended: %w (publish: %v)", rerr, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if a.valid != nil && !a.valid() {
			return 0, ErrLeaseEnded
		}
	}
}

// stored moves the position to seq, which must be after it.
func (a *appender) stored(seq uint64) (uint64, error) {
	if seq <= a.lastSeq {
		return 0, fmt.Errorf("%w: stored at seq %d, not after the zone's position %d", ErrFenced, seq, a.lastSeq)
	}
	a.lastSeq = seq
	a.records++
	return seq, nil
}

// resolve reads the zone log's last message: its sequence and whether it is
// this owner's record id.
//
// Ours means the record id, the fence and the instance. Record ids are
// (zone, fence, tick, part), and two owners can hold the same fence: when
// the lock store lost its counter, concurrent claimants both compute
// max(lease fence, previous + 1) from the same log end, and their ticks
// count from the same log too. Then the other's record carries our id and
// our fence; only the instance tells it apart. Without it, a lost publish
// resolved as stored a record of the other owner, and the commands of that
// tick were acked without events (TestAmbiguousAppendNotOursWithTheSameFence).
func (a *appender) resolve(ctx context.Context, id string) (uint64, bool, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
	defer cancel()
	last, err := a.stream.GetLastMsgForSubject(rctx, a.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return last.Sequence, last.Header.Get(wire.HeaderMsgID) == id && a.ours(last.Header), nil
}

// ours reports whether a stored record's headers carry this owner's fence
// and instance.
func (a *appender) ours(h nats.Header) bool {
	return h.Get(wire.HeaderFence) == strconv.FormatUint(a.fence, 10) && h.Get(wire.HeaderInstance) == a.instance
}

func (a *appender) storedIsOurs(ctx context.Context, seq uint64) (bool, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
	defer cancel()
	m, err := a.stream.GetMsg(rctx, seq)
	if err != nil {
		return false, err
	}
	return a.ours(m.Header), nil
}

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

// appender writes one zone's events with optimistic concurrency. It is owned
// by the zone goroutine.
type appender struct {
	js       jetstream.JetStream
	stream   jetstream.Stream
	zone     string
	subject  string
	instance string
	fence    uint64
	lastSeq  uint64                     // stream sequence of the last event of the zone log
	timeout  time.Duration              // one publish attempt
	valid    func() bool                // the lease is still valid
	before   func(eventID string) error // test hook, runs before each append; an error aborts it
	resolved int                        // ambiguous outcomes resolved by reading the log (tests, logs)
}

func wrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// append stores ev as the next event of the zone. On success lastSeq is the
// event's stream sequence. An ambiguous outcome (timeout, connection lost) is
// resolved by reading the log's last message before anything else is written:
// if it is ours the append succeeded; if the log still ends at lastSeq the
// same message (same Nats-Msg-Id, same expected sequence) is sent again;
// anything else means another owner appended: ErrFenced.
func (a *appender) append(ctx context.Context, ev *schema.Event) (uint64, error) {
	ev.Zone = a.zone
	ev.Fence = a.fence
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
	if err != nil {
		return 0, fmt.Errorf("zone: marshal event: %w", err)
	}
	m := nats.NewMsg(a.subject)
	m.Data = data
	m.Header.Set(wire.HeaderMsgID, ev.EventId)
	m.Header.Set(wire.HeaderExpectedLastSubjSeq, strconv.FormatUint(a.lastSeq, 10))
	m.Header.Set(wire.HeaderFence, strconv.FormatUint(a.fence, 10))
	m.Header.Set(wire.HeaderZone, a.zone)
	m.Header.Set(wire.HeaderEventType, eventType(ev))
	m.Header.Set(wire.HeaderSchema, wire.SchemaVersion)
	m.Header.Set(wire.HeaderInstance, a.instance)
	if ev.PlayerId != "" {
		m.Header.Set(wire.HeaderPlayer, ev.PlayerId)
	}
	telemetry.Inject(ctx, m.Header)
	if a.valid != nil && !a.valid() {
		return 0, ErrLeaseEnded
	}
	// A pause here (GC, SIGSTOP) can outlast the lease: the expected sequence
	// below is what keeps a stale owner out of the log. Tests pause here.
	if a.before != nil {
		if err := a.before(ev.EventId); err != nil {
			return 0, err
		}
	}
	for attempt := 0; ; attempt++ {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
		ack, err := a.js.PublishMsg(pctx, m)
		cancel()
		if err == nil {
			if ack.Duplicate {
				// An event with this id is stored at ack.Sequence: ours (an
				// earlier attempt) only if it carries our fence; another owner
				// may have decided the same command under the same id.
				if ours, derr := a.storedIsOurs(ctx, ack.Sequence); derr != nil || !ours {
					return 0, ErrFenced
				}
			}
			a.lastSeq = ack.Sequence
			return ack.Sequence, nil
		}
		if wrongLastSeq(err) {
			// A retry of a stored append can also come back as "wrong last
			// sequence": check whether the last event is ours.
			if seq, ours, rerr := a.resolve(ctx, ev.EventId); rerr == nil && ours {
				a.lastSeq = seq
				return seq, nil
			}
			return 0, ErrFenced
		}
		// Ambiguous: resolve before writing anything else.
		a.resolved++
		for {
			seq, ours, rerr := a.resolve(ctx, ev.EventId)
			if rerr == nil {
				if ours {
					a.lastSeq = seq
					return seq, nil
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

// resolve reads the zone log's last event: its sequence and whether it has id.
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
	return last.Sequence, last.Header.Get(wire.HeaderMsgID) == id && last.Header.Get(wire.HeaderFence) == strconv.FormatUint(a.fence, 10), nil
}

func (a *appender) storedIsOurs(ctx context.Context, seq uint64) (bool, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
	defer cancel()
	m, err := a.stream.GetMsg(rctx, seq)
	if err != nil {
		return false, err
	}
	return m.Header.Get(wire.HeaderFence) == strconv.FormatUint(a.fence, 10) && m.Header.Get(wire.HeaderInstance) == a.instance, nil
}

func eventType(ev *schema.Event) string {
	switch ev.Body.(type) {
	case *schema.Event_OwnershipClaimed:
		return "ownership_claimed"
	case *schema.Event_OwnershipReleased:
		return "ownership_released"
	case *schema.Event_PlayerJoined:
		return "player_joined"
	case *schema.Event_PlayerLeft:
		return "player_left"
	case *schema.Event_PlayerMoved:
		return "player_moved"
	case *schema.Event_ChatSent:
		return "chat_sent"
	case *schema.Event_AttackHit:
		return "attack_hit"
	case *schema.Event_PlayerDied:
		return "player_died"
	case *schema.Event_PlayerRespawned:
		return "player_respawned"
	case *schema.Event_TransferOut:
		return "transfer_out"
	case *schema.Event_TransferAccepted:
		return "transfer_accepted"
	case *schema.Event_TransferDelivered:
		return "transfer_delivered"
	case *schema.Event_CommandRejected:
		return "command_rejected"
	}
	return "unknown"
}

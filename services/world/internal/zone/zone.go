// Package zone runs one owned zone: recovery (snapshot + replay), the
// ownership claim, the command consumer, the fixed tick, fenced appends,
// transfers, snapshots and the per-cell updates.
//
// One goroutine (the one calling Run) owns the zone state; nothing else reads
// or writes it. Status snapshots for heartbeats leave through Config.OnStatus.
package zone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
	"github.com/realmstream/realmstream/services/world/internal/rules"
)

// ErrCrash is the cancel cause a test uses to stop a zone as if the process
// died: no final snapshot, no release event.
var ErrCrash = errors.New("zone: simulated crash")

// Lease is what the zone needs of its lock lease.
type Lease interface {
	Fence() uint64
	Valid() bool
	Context() context.Context
}

// Status is the zone as reported in heartbeats.
type Status struct {
	Zone    string
	Fence   uint64
	LastSeq uint64
	Players int
	Tick    uint64
}

// Config configures one zone run.
type Config struct {
	Zone     string
	Instance string
	NC       *nats.Conn
	JS       jetstream.JetStream
	// Snapshots is the KV bucket of zone snapshots (key = zone id).
	Snapshots jetstream.KeyValue
	Rules     *rules.Config
	Lease     Lease
	// Tick is the simulation period (20 Hz = 50ms).
	Tick time.Duration
	// SnapshotEvery and SnapshotInterval: snapshot after this many events or
	// this much time with at least one new event.
	SnapshotEvery    int
	SnapshotInterval time.Duration
	// AckWait of the zone's durable command consumer: how long a fetched but
	// unacknowledged command waits before redelivery (to the next owner).
	AckWait        time.Duration
	MaxBatch       int           // commands taken per tick
	PublishTimeout time.Duration // one JetStream publish attempt
	Log            *slog.Logger
	Metrics        *Metrics
	OnStatus       func(Status)
	// BeforeAppend is a test hook run before every append with the event id
	// (e.g. to pause the zone between its lease check and its write, like a GC
	// pause), before each TransferIn publish with "send:<transfer id>" and
	// before each command ack with "ack:<command id>". An error aborts that
	// step and stops the zone with it (ErrCrash: as if the process died there).
	BeforeAppend func(zone, eventID string) error
}

type runner struct {
	c        Config
	log      *slog.Logger
	st       *schema.ZoneSnapshot
	app      *appender
	view     *view
	tracer   trace.Tracer
	tick     uint64
	snapSeq  uint64
	snapAt   time.Time
	retryAt  time.Time // next attempt to deliver pending transfers
	takeover bool
}

// Run owns the zone until ctx is cancelled (graceful handover: a release
// event and a final snapshot, then nil), the lease ends, or the log refuses an
// append (ErrFenced: another owner appended; the zone is dropped, never forked).
func Run(ctx context.Context, c Config) error {
	r := &runner{c: c, log: c.Log.With("zone", c.Zone), view: newView(c.Rules.Map), tracer: otel.Tracer("realmstream/world")}
	stream, err := c.JS.Stream(ctx, wire.StreamEvents)
	if err != nil {
		return fmt.Errorf("zone %s: events stream: %w", c.Zone, err)
	}
	r.app = &appender{js: c.JS, stream: stream, zone: c.Zone, subject: wire.EventSubject(c.Zone), instance: c.Instance,
		timeout: c.PublishTimeout, valid: c.Lease.Valid}
	if c.BeforeAppend != nil {
		r.app.before = func(id string) error { return c.BeforeAppend(c.Zone, id) }
	}
	start := time.Now()
	if err := r.recover(ctx); err != nil {
		return err
	}
	if err := r.claim(ctx); err != nil {
		return err
	}
	c.Metrics.claimed(r.takeover, time.Since(start))
	r.log.Info("zone claimed", "fence", r.app.fence, "last_seq", r.app.lastSeq, "players", len(r.st.Players),
		"takeover", r.takeover, "recovery", time.Since(start))
	cons, err := r.consumer(ctx)
	if err != nil {
		return fmt.Errorf("zone %s: command consumer: %w", c.Zone, err)
	}
	if err := r.deliverPending(ctx); err != nil {
		return err
	}
	r.report()
	t := time.NewTicker(c.Tick)
	defer t.Stop()
	leaseDone := c.Lease.Context().Done()
	for {
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), ErrCrash) {
				return ErrCrash
			}
			return r.handover(ctx)
		case <-leaseDone:
			return fmt.Errorf("zone %s: %w", c.Zone, context.Cause(c.Lease.Context()))
		case <-t.C:
		}
		if err := r.step(ctx, cons); err != nil {
			return err
		}
	}
}

// consumer returns the zone's durable command consumer, creating or updating
// it only when it is missing or its settings differ: the consumer outlives
// owners, and a needless update on every claim is avoided (nats-server 2.15.2
// has a data race between consumer creation and a concurrent stream update).
func (r *runner) consumer(ctx context.Context) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       wire.DurableWorldZone(r.c.Zone),
		FilterSubject: wire.CommandSubject(r.c.Zone),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.c.AckWait,
		MaxAckPending: 4 * r.c.MaxBatch,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	cons, err := r.c.JS.Consumer(ctx, wire.StreamCommands, cfg.Durable)
	if err == nil {
		if have := cons.CachedInfo().Config; have.AckWait == cfg.AckWait && have.MaxAckPending == cfg.MaxAckPending && have.FilterSubject == cfg.FilterSubject {
			return cons, nil
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, err
	}
	return r.c.JS.CreateOrUpdateConsumer(ctx, wire.StreamCommands, cfg)
}

// recover loads the latest snapshot and replays the log after it.
func (r *runner) recover(ctx context.Context) error {
	r.st = rules.NewState(r.c.Zone)
	if kv := r.c.Snapshots; kv != nil {
		e, err := kv.Get(ctx, r.c.Zone)
		switch {
		case err == nil:
			snap := &schema.ZoneSnapshot{}
			if uerr := proto.Unmarshal(e.Value(), snap); uerr == nil && snap.Zone == r.c.Zone {
				if snap.Players == nil {
					snap.Players = map[string]*schema.PlayerState{}
				}
				if snap.Sessions == nil {
					snap.Sessions = map[string]uint64{}
				}
				r.st = snap
			} else {
				r.log.Warn("ignoring unreadable snapshot", "err", uerr)
			}
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return fmt.Errorf("zone %s: load snapshot: %w", r.c.Zone, err)
		}
	}
	last, err := r.app.stream.GetLastMsgForSubject(ctx, r.app.subject)
	var end uint64
	switch {
	case err == nil:
		end = last.Sequence
	case errors.Is(err, jetstream.ErrMsgNotFound):
	default:
		return fmt.Errorf("zone %s: read log end: %w", r.c.Zone, err)
	}
	if r.st.LastSeq > end {
		r.log.Warn("snapshot is ahead of the log (log reset?): replaying from the start", "snapshot_seq", r.st.LastSeq, "log_end", end)
		r.st = rules.NewState(r.c.Zone)
	}
	fromSnap := r.st.LastSeq
	if err := r.replay(ctx); err != nil {
		return err
	}
	r.snapSeq, r.snapAt = r.st.LastSeq, time.Now()
	r.log.Debug("zone recovered", "snapshot_seq", fromSnap, "log_end", r.st.LastSeq)
	return nil
}

// replay applies every event after the state's last sequence.
func (r *runner) replay(ctx context.Context) error {
	n := 0
	err := zonelog.Scan(ctx, r.c.JS, r.c.Zone, r.st.LastSeq+1, func(e zonelog.Entry) error {
		rules.Apply(r.st, e.Event, e.Seq, r.c.Rules.KeepTransfers)
		n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("zone %s: replay: %w", r.c.Zone, err)
	}
	r.c.Metrics.replayed(n)
	r.app.lastSeq = r.st.LastSeq
	r.tick = r.st.Tick
	return nil
}

// claim appends OwnershipClaimed with the log's end as expected sequence: the
// first write of this owner, which makes every later append of an older owner
// fail. The fence is max(lease fence, previous fence + 1): it grows even when
// the lock store lost its counter (Redis restart).
func (r *runner) claim(ctx context.Context) error {
	for attempt := 0; attempt < 3; attempt++ {
		prev := r.st.Fence
		r.app.fence = max(r.c.Lease.Fence(), prev+1)
		lastReleased := r.lastWasRelease(ctx)
		ev := &schema.Event{
			EventId: r.c.Zone + "/claim/" + strconv.FormatUint(r.app.fence, 10) + "/" + r.c.Instance, TimestampNs: time.Now().UnixNano(), Tick: r.tick,
			Body: &schema.Event_OwnershipClaimed{OwnershipClaimed: &schema.OwnershipClaimed{InstanceId: r.c.Instance, Fence: r.app.fence, PreviousFence: prev}},
		}
		seq, err := r.app.append(ctx, ev)
		if err == nil {
			rules.Apply(r.st, ev, seq, r.c.Rules.KeepTransfers)
			r.takeover = prev != 0 && !lastReleased
			return nil
		}
		if !errors.Is(err, ErrFenced) {
			return fmt.Errorf("zone %s: claim: %w", r.c.Zone, err)
		}
		// Someone appended since we read the end: catch up and try again.
		if err := r.replay(ctx); err != nil {
			return err
		}
	}
	return fmt.Errorf("zone %s: claim: %w three times", r.c.Zone, ErrFenced)
}

func (r *runner) lastWasRelease(ctx context.Context) bool {
	last, err := r.app.stream.GetLastMsgForSubject(ctx, r.app.subject)
	return err == nil && last.Header.Get(wire.HeaderEventType) == "ownership_released"
}

// step is one tick: commands, due system events, updates, snapshot.
func (r *runner) step(ctx context.Context, cons jetstream.Consumer) error {
	start := time.Now()
	r.tick++
	now := start.UnixNano()
	batch, err := cons.FetchNoWait(r.c.MaxBatch)
	if err != nil {
		r.log.Warn("fetch commands", "err", err)
	} else {
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		for i, m := range msgs {
			if err := r.handle(ctx, m, now); err != nil {
				if !errors.Is(err, ErrCrash) {
					for _, rest := range msgs[i:] {
						_ = rest.Nak() // let the next owner have them at once
					}
				}
				return err
			}
		}
	}
	for _, ev := range r.c.Rules.Tick(r.st, now) {
		ev.Tick = r.tick
		if _, err := r.appendApply(ctx, ev); err != nil {
			return err
		}
	}
	if len(r.st.PendingTransfers) > 0 && start.After(r.retryAt) {
		if err := r.deliverPending(ctx); err != nil {
			return err
		}
	}
	r.publishUpdates(now)
	if err := r.maybeSnapshot(ctx, false); err != nil {
		r.log.Warn("snapshot", "err", err)
	}
	r.c.Metrics.tickDone(time.Since(start))
	r.report()
	return nil
}

func (r *runner) appendApply(ctx context.Context, ev *schema.Event) (uint64, error) {
	seq, err := r.app.append(ctx, ev)
	if err != nil {
		if errors.Is(err, ErrFenced) {
			r.c.Metrics.fenced()
			r.log.Warn("append refused: another owner appended; stepping down", "event", ev.EventId, "fence", r.app.fence)
		}
		return 0, fmt.Errorf("zone %s: %w", r.c.Zone, err)
	}
	rules.Apply(r.st, ev, seq, r.c.Rules.KeepTransfers)
	r.view.note(r.st, ev)
	r.c.Metrics.event(eventType(ev))
	return seq, nil
}

// handle decides one command, appends its event, then acks it. A command
// whose event cannot be appended is not acked: it is redelivered.
func (r *runner) handle(ctx context.Context, m jetstream.Msg, now int64) error {
	cmd := &schema.Command{}
	if err := proto.Unmarshal(m.Data(), cmd); err != nil {
		r.log.Warn("dropping undecodable command", "err", err)
		r.c.Metrics.command("malformed")
		_ = m.Term()
		return nil
	}
	if cmd.CommandId == "" {
		cmd.CommandId = m.Headers().Get(wire.HeaderMsgID)
	}
	if cmd.ClientSeq == 0 && cmd.GetTransferIn() == nil {
		if _, seq, err := wire.ParseCommandID(cmd.CommandId); err == nil {
			cmd.ClientSeq = seq
		}
	}
	tctx, span := r.tracer.Start(telemetry.Extract(ctx, m.Headers()), "world.apply",
		trace.WithAttributes(attribute.String("zone", r.c.Zone), attribute.String("command_id", cmd.CommandId)))
	defer span.End()
	start := time.Now()
	ev := r.c.Rules.Decide(r.st, cmd, now)
	if ev == nil {
		r.c.Metrics.command("duplicate")
		_ = m.Ack()
		return nil
	}
	ev.Tick = r.tick
	if _, err := r.appendApply(tctx, ev); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	if err := r.hook("ack:" + cmd.CommandId); err != nil {
		return err
	}
	_ = m.Ack()
	r.c.Metrics.applied(time.Since(start), cmd.ReceivedAtNs)
	if rej := ev.GetCommandRejected(); rej != nil {
		r.c.Metrics.command("rejected")
		r.notice(cmd.SessionId, &schema.SessionNotice{SessionId: cmd.SessionId, PlayerId: cmd.PlayerId,
			Body: &schema.SessionNotice_Rejected{Rejected: &schema.CommandRejectedNotice{ClientSeq: cmd.ClientSeq, Code: rej.Code, Reason: rej.Reason}}})
		return nil
	}
	r.c.Metrics.command("applied")
	switch b := ev.Body.(type) {
	case *schema.Event_TransferAccepted:
		p := b.TransferAccepted.Player
		r.notice(p.SessionId, &schema.SessionNotice{SessionId: p.SessionId, PlayerId: p.PlayerId,
			Body: &schema.SessionNotice_ZoneChanged{ZoneChanged: &schema.ZoneChanged{Zone: r.c.Zone, X: p.X, Y: p.Y, TransferId: b.TransferAccepted.TransferId}}})
	case *schema.Event_TransferOut:
		if err := r.deliverPending(tctx); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) hook(id string) error {
	if r.c.BeforeAppend == nil {
		return nil
	}
	return r.c.BeforeAppend(r.c.Zone, id)
}

func (r *runner) notice(session string, n *schema.SessionNotice) {
	if session == "" {
		return
	}
	b, err := proto.Marshal(n)
	if err == nil {
		_ = r.c.NC.Publish(wire.SessionSubject(session), b)
	}
}

// deliverPending sends the TransferIn command of every pending transfer to
// its target zone (Nats-Msg-Id = transfer id: JetStream dedupes resends in its
// window, the target's state dedupes after it) and records each delivery in
// the log. The TransferOut event is the commit point: a transfer is never
// lost (it stays pending until delivered, across owners) and never doubled.
func (r *runner) deliverPending(ctx context.Context) error {
	for _, t := range append([]*schema.TransferOut(nil), r.st.PendingTransfers...) {
		p := t.Player
		cmd := &schema.Command{CommandId: t.TransferId, SessionId: p.GetSessionId(), PlayerId: p.GetPlayerId(), Zone: t.ToZone,
			ReceivedAtNs: time.Now().UnixNano(), PlayerName: p.GetName(),
			Body: &schema.Command_TransferIn{TransferIn: &schema.TransferIn{TransferId: t.TransferId, FromZone: r.c.Zone, Player: p}}}
		data, err := proto.Marshal(cmd)
		if err != nil {
			return err
		}
		m := nats.NewMsg(wire.CommandSubject(t.ToZone))
		m.Data = data
		m.Header.Set(wire.HeaderMsgID, t.TransferId)
		m.Header.Set(wire.HeaderZone, t.ToZone)
		m.Header.Set(wire.HeaderSession, p.GetSessionId())
		m.Header.Set(wire.HeaderPlayer, p.GetPlayerId())
		m.Header.Set(wire.HeaderSchema, wire.SchemaVersion)
		telemetry.Inject(ctx, m.Header)
		if err := r.hook("send:" + t.TransferId); err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.c.PublishTimeout)
		_, err = r.c.JS.PublishMsg(pctx, m)
		cancel()
		if err != nil {
			r.log.Warn("transfer not delivered yet; will retry", "transfer", t.TransferId, "err", err)
			r.retryAt = time.Now().Add(time.Second)
			return nil
		}
		ev := &schema.Event{EventId: r.c.Zone + "/d/" + t.TransferId, TimestampNs: time.Now().UnixNano(), Tick: r.tick, PlayerId: p.GetPlayerId(),
			Body: &schema.Event_TransferDelivered{TransferDelivered: &schema.TransferDelivered{TransferId: t.TransferId, ToZone: t.ToZone}}}
		if _, err := r.appendApply(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) publishUpdates(now int64) {
	for _, u := range r.view.build(r.c.Zone, r.st, r.tick, now) {
		b, err := proto.Marshal(u)
		if err != nil {
			continue
		}
		_ = r.c.NC.Publish(wire.UpdateSubject(r.c.Zone, u.Cell), b)
	}
}

func (r *runner) maybeSnapshot(ctx context.Context, force bool) error {
	if r.c.Snapshots == nil || r.st.LastSeq == r.snapSeq {
		return nil
	}
	due := force || r.st.LastSeq-r.snapSeq >= uint64(r.c.SnapshotEvery) && r.c.SnapshotEvery > 0 ||
		r.c.SnapshotInterval > 0 && time.Since(r.snapAt) >= r.c.SnapshotInterval
	if !due {
		return nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.st)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.c.PublishTimeout)
	defer cancel()
	if _, err := r.c.Snapshots.Put(pctx, r.c.Zone, b); err != nil {
		return fmt.Errorf("zone %s: snapshot (%d bytes): %w", r.c.Zone, len(b), err)
	}
	r.snapSeq, r.snapAt = r.st.LastSeq, time.Now()
	r.c.Metrics.snapshot()
	return nil
}

// handover is the graceful end: deliver pending transfers, append
// OwnershipReleased, write a final snapshot. The caller then releases the lease
// and the next owner starts at once from the snapshot.
func (r *runner) handover(ctx context.Context) error {
	if r.c.Lease.Valid() {
		if err := r.deliverPending(ctx); err != nil {
			return err
		}
		ev := &schema.Event{EventId: r.c.Zone + "/release/" + strconv.FormatUint(r.app.fence, 10) + "/" + r.c.Instance, TimestampNs: time.Now().UnixNano(), Tick: r.tick,
			Body: &schema.Event_OwnershipReleased{OwnershipReleased: &schema.OwnershipReleased{InstanceId: r.c.Instance, Fence: r.app.fence}}}
		if _, err := r.appendApply(ctx, ev); err != nil {
			return err
		}
	}
	if err := r.maybeSnapshot(ctx, true); err != nil {
		r.log.Warn("final snapshot", "err", err)
	}
	r.log.Info("zone handed over", "fence", r.app.fence, "last_seq", r.st.LastSeq)
	return nil
}

func (r *runner) report() {
	if r.c.OnStatus != nil {
		r.c.OnStatus(Status{Zone: r.c.Zone, Fence: r.app.fence, LastSeq: r.st.LastSeq, Players: len(r.st.Players), Tick: r.tick})
	}
}

// Package zone runs one owned zone: recovery (snapshot + replay), the
// ownership claim, continuous command intake, the fixed tick with one fenced
// commit per tick, transfers, snapshots and the per-cell updates.
//
// Goroutines: the one calling Run owns the zone state; nothing else reads or
// writes it. One intake goroutine moves commands from the zone's durable pull
// consumer (Messages) into the bounded inbox channel; it touches no state.
// Status snapshots for heartbeats leave through Config.OnStatus.
//
// A tick takes every command in the inbox, decides them in order (applying
// each to the in-memory state, so later commands see earlier ones), adds the
// due system events and the transfer deliveries, and commits the events as
// one tick record (appender.commit). Nothing leaves the zone before that
// commit returns: no ack, no update, no notice, no snapshot. A refused or
// unresolvable commit stops the zone, and its in-memory state is dropped with
// it: the next owner rebuilds it from the log.
package zone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
	"github.com/realmstream/realmstream/services/world/internal/rules"
	"github.com/realmstream/realmstream/services/world/internal/snapstore"
)

// ErrCrash is the cancel cause a test uses to stop a zone as if the process
// died: no final snapshot, no release event.
var ErrCrash = errors.New("zone: simulated crash")

// Source yields a zone's events with sequence in [from, to] in log order
// (history.StoreSource reads persist's store).
type Source interface {
	Events(ctx context.Context, zone string, from, to uint64, fn func(zonelog.Entry) error) error
}

// ErrSnapshotBehind means a snapshot was refused because the zone's position
// is before the last snapshot's (a position must never move back).
var ErrSnapshotBehind = errors.New("zone: snapshot position moved back")

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
	// AppendJS, when set, is what the tick records are published on: a
	// connection of their own, so that a commit's answer does not queue
	// behind the commands delivered to the zones and their acks on JS's
	// connection. nil: JS.
	AppendJS jetstream.JetStream
	// SnapStore, when set, stores and loads the snapshots (chunked when a
	// zone outgrows one KV value); otherwise Snapshots is used directly.
	SnapStore *snapstore.Store
	// Below reads the part of the zone log trimmed from JetStream (persist's
	// store); used only when the snapshot does not cover it.
	Below Source
	// Snapshots is the KV bucket of zone snapshots (key = zone id).
	Snapshots jetstream.KeyValue
	// Players is the KV bucket that says which zone each player is in
	// (where.go); nil disables the one-zone check of joins.
	Players jetstream.KeyValue
	Rules   *rules.Config
	Lease   Lease
	// Tick is the simulation period (20 Hz = 50ms).
	Tick time.Duration
	// SnapshotEvery and SnapshotInterval: snapshot after this many events of
	// this zone or this much time with at least one new event.
	SnapshotEvery    int
	SnapshotInterval time.Duration
	// AckWait of the zone's durable command consumer: how long a delivered
	// but unacknowledged command waits before redelivery (to the next owner).
	AckWait time.Duration
	// MaxBatch sizes the intake: the pull consumer keeps up to 2*MaxBatch
	// commands buffered (pull requests of that size, renewed at half), the
	// inbox holds 2*MaxBatch (a tick takes them all), and at most 8*MaxBatch
	// are delivered and not yet acked (the consumer's MaxAckPending).
	MaxBatch       int
	PublishTimeout time.Duration // one JetStream publish attempt
	// DisconnectGrace is how long the body of a player whose connection
	// closed without Leave stays for a resume; default 15s.
	DisconnectGrace time.Duration
	// UpdatesPerCell publishes the AOI view as one ZoneUpdate per cell on
	// upd.<zone>.<cell>, for gateways that do not read upd.<zone> yet (older
	// than protocol 3); the default is one ZoneTick per tick on upd.<zone>.
	UpdatesPerCell bool
	Log            *slog.Logger
	Metrics        *Metrics
	OnStatus       func(Status)
	// BeforeAppend is a test hook run before every commit with each event id
	// of the record (e.g. to pause the zone between its lease check and its
	// write, like a GC pause), before each TransferIn publish with
	// "send:<transfer id>" and before each command ack with "ack:<command
	// id>". An error aborts that step and stops the zone with it (ErrCrash:
	// as if the process died there).
	BeforeAppend func(zone, eventID string) error
}

type runner struct {
	c       Config
	log     *slog.Logger
	st      *schema.ZoneSnapshot
	app     *appender
	view    *view
	tracer  trace.Tracer
	tick    uint64
	snapSeq uint64
	snapEvs uint64 // st.Events at the last snapshot
	snapAt  time.Time
	// The snapshot written in the background (maybeSnapshot): at most one.
	snapBusy  bool
	snapDone  chan snapResult
	snapRetry time.Time // after a failed write
	snapWG    sync.WaitGroup
	retryAt   time.Time // next attempt to deliver pending transfers
	takeover  bool

	inbox chan jetstream.Msg
	// deliveries are TransferDelivered events of transfers whose TransferIn
	// was sent after the last commit; the next commit records them.
	deliveries []*schema.Event
	delivered  map[string]bool // transfer ids in deliveries
	// held are the Disconnect commands of sessions in their grace period, by
	// session: unacked (kept alive with InProgress) so that a crash hands
	// them to the next owner, which resumes the same grace (receive time).
	held  map[string]*heldDisconnect
	where *whereabouts
}

type heldDisconnect struct {
	m        jetstream.Msg
	cmd      *schema.Command
	due      int64 // removal time (ns)
	progress time.Time
}

// tickState is what one tick decided and exposes only after its commit.
type tickState struct {
	evs     []*schema.Event
	acks    []ack
	notices []notice
	results []string      // command results for the metrics
	decide  time.Duration // deciding the commands
	commit  time.Duration // the tick's commit
	out     bool          // a TransferOut was decided: deliver after the commit
	tr      tickTrace     // the tick's tracing (trace.go)
}

type ack struct {
	m          jetstream.Msg // acked after the commit; nil: a batched command's entry (its metrics only)
	id         string
	receivedAt int64
	trace      trace.SpanContext // the command's world.decide span when sampled: the latency exemplar
}

type notice struct {
	session string
	n       *schema.SessionNotice
}

// Run owns the zone until ctx is cancelled (graceful handover: a release
// event and a final snapshot, then nil), the lease ends, or the log refuses a
// commit (ErrFenced: another owner appended; the zone is dropped, never forked).
func Run(ctx context.Context, c Config) error {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.DisconnectGrace <= 0 {
		c.DisconnectGrace = 15 * time.Second
	}
	r := &runner{c: c, log: c.Log.With("zone", c.Zone), view: newView(c.Rules.Map), tracer: otel.Tracer("realmstream/world"),
		inbox: make(chan jetstream.Msg, 2*c.MaxBatch), delivered: map[string]bool{}, held: map[string]*heldDisconnect{},
		snapDone: make(chan snapResult, 1)}
	if c.Players != nil {
		r.where = &whereabouts{kv: c.Players, zone: c.Zone, timeout: c.PublishTimeout}
	}
	stream, err := c.JS.Stream(ctx, wire.StreamEvents)
	if err != nil {
		return fmt.Errorf("zone %s: events stream: %w", c.Zone, err)
	}
	ajs := c.AppendJS
	if ajs == nil {
		ajs = c.JS
	}
	r.app = &appender{js: ajs, stream: stream, zone: c.Zone, subject: wire.EventSubject(c.Zone), instance: c.Instance,
		timeout: c.PublishTimeout, valid: c.Lease.Valid, maxBytes: maxRecordBytes(c.NC, stream)}
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
	ictx, stopIntake := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.intake(ictx, cons) }()
	crashed := false
	defer func() {
		stopIntake()
		wg.Wait()
		r.snapWG.Wait() // a background snapshot write ends within PublishTimeout
		if !crashed {
			r.release() // the next owner gets what this one still holds at once
		}
	}()
	if err := r.deliverPending(ctx); err != nil {
		return err
	}
	r.report()
	leaseDone := c.Lease.Context().Done()
	// The zone ticks at its own phase of the tick period, so that the zones
	// of a process (claimed at the same moment at start) do not all decide,
	// commit and send updates at the same instant: aligned, their bursts
	// queued behind each other on the shared cores and in the gateways'
	// fan-out.
	if w := time.Until(nextTick(time.Now(), c.Tick, tickPhase(c.Zone, c.Tick))); w > 0 {
		ph := time.NewTimer(w)
		select {
		case <-ctx.Done():
		case <-leaseDone:
		case <-ph.C:
		}
		ph.Stop()
	}
	t := time.NewTicker(c.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), ErrCrash) {
				crashed = true
				return ErrCrash
			}
			stopIntake()
			wg.Wait()
			return r.handover(ctx)
		case <-leaseDone:
			return fmt.Errorf("zone %s: %w", c.Zone, context.Cause(c.Lease.Context()))
		case <-t.C:
		}
		if err := r.step(ctx); err != nil {
			crashed = errors.Is(err, ErrCrash)
			return err
		}
	}
}

// tickPhase is zone's offset within the tick period: a hash of its name
// (FNV-1a, then a 32-bit finalizer so that names that differ in one
// character land far apart), scaled to [0, tick).
func tickPhase(zone string, tick time.Duration) time.Duration {
	h := uint32(2166136261)
	for i := 0; i < len(zone); i++ {
		h = (h ^ uint32(zone[i])) * 16777619
	}
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return time.Duration(uint64(h) * uint64(tick) >> 32)
}

// nextTick is the first instant at or after now that is phase past a
// multiple of tick on the wall clock.
func nextTick(now time.Time, tick, phase time.Duration) time.Time {
	next := now.Truncate(tick).Add(phase)
	if next.Before(now) {
		next = next.Add(tick)
	}
	return next
}

// maxRecordBytes is the largest tick record the zone writes: the smaller of
// the server's max payload and the stream's max message size, less room for
// headers and the record's own fields.
func maxRecordBytes(nc *nats.Conn, st jetstream.Stream) int {
	limit := int64(1 << 20)
	if nc != nil && nc.MaxPayload() > 0 {
		limit = nc.MaxPayload()
	}
	if ms := int64(st.CachedInfo().Config.MaxMsgSize); ms > 0 && ms < limit {
		limit = ms
	}
	return int(max(limit-recordOverhead, 1024))
}

// intake streams the zone's commands into the inbox between ticks: the pull
// consumer keeps up to 2*MaxBatch messages buffered (under load a pull
// request's round trip is slow: a small window caps the zone's intake, 128
// commands per round trip before), the inbox holds 2*MaxBatch,
// and a full inbox blocks the intake (backpressure: the commands wait in the
// stream). A closed iterator (consumer deleted, connection closed) is
// recreated until ctx ends.
func (r *runner) intake(ctx context.Context, cons jetstream.Consumer) {
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(2*r.c.MaxBatch), jetstream.PullExpiry(5*time.Second))
		if err != nil {
			r.log.Warn("command intake", "err", err)
			if !sleepCtx(ctx, 250*time.Millisecond) {
				return
			}
			if c, cerr := r.consumer(ctx); cerr == nil {
				cons = c
			}
			continue
		}
		for {
			m, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
					break
				}
				r.log.Debug("command intake", "err", err)
				continue
			}
			select {
			case r.inbox <- m:
			case <-ctx.Done():
				_ = m.Nak()
			}
		}
		it.Stop()
		if ctx.Err() == nil {
			if !sleepCtx(ctx, 100*time.Millisecond) {
				return
			}
			if c, cerr := r.consumer(ctx); cerr == nil {
				cons = c
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// release hands the commands this owner holds to the next owner at once
// (Nak) instead of after AckWait: the inbox, and the held disconnects.
func (r *runner) release() {
	for {
		select {
		case m := <-r.inbox:
			_ = m.Nak()
		default:
			for _, h := range r.held {
				_ = h.m.Nak()
			}
			return
		}
	}
}

// consumer returns the zone's durable command consumer, creating or updating
// it only when it is missing or its settings differ: the consumer outlives
// owners, and a needless update on every claim is avoided (nats-server 2.15.2
// has a data race between consumer creation and a concurrent stream update).
//
// Acks are explicit, one per command, sent right after the tick's commit.
// AckAll (one ack per tick) is not safe here: it acknowledges every pending
// message at or below the acked stream sequence, and after a crash the
// commands delivered to the dead owner stay pending below the new owner's
// first deliveries (they come back only after AckWait); an AckAll of the new
// owner's first tick would acknowledge them unapplied, and they would be lost.
func (r *runner) consumer(ctx context.Context) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       wire.DurableWorldZone(r.c.Zone),
		FilterSubject: wire.CommandSubject(r.c.Zone),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.c.AckWait,
		MaxAckPending: 8 * r.c.MaxBatch,
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
	if ss := r.c.SnapStore; ss != nil {
		snap, err := ss.Latest(ctx, r.c.Zone)
		switch {
		case err != nil && errors.Is(err, context.Cause(ctx)):
			return fmt.Errorf("zone %s: load snapshot: %w", r.c.Zone, err)
		case err != nil:
			r.log.Warn("ignoring unreadable snapshot: replaying the log instead", "err", err)
		case snap != nil && snap.Zone == r.c.Zone:
			if snap.Players == nil {
				snap.Players = map[string]*schema.PlayerState{}
			}
			if snap.Sessions == nil {
				snap.Sessions = map[string]uint64{}
			}
			r.st = snap
		}
	} else if kv := r.c.Snapshots; kv != nil {
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
	if err := r.fillBelowFloor(ctx); err != nil {
		return err
	}
	if err := r.replay(ctx); err != nil {
		return err
	}
	r.snapSeq, r.snapEvs, r.snapAt = r.st.LastSeq, r.st.Events, time.Now()
	r.log.Debug("zone recovered", "snapshot_seq", fromSnap, "log_end", r.st.LastSeq)
	return nil
}

// replay applies every event after the state's last sequence. A message that
// cannot be decoded is quarantined (alarm, skipped) and replay continues: the
// zone's position still moves past it, so the next commit follows the log.
func (r *runner) replay(ctx context.Context) error {
	n := 0
	err := scanLog(ctx, r.c.JS, r.c.Zone, r.st.LastSeq+1, func(seq uint64, h nats.Header, data []byte) {
		es, err := zonelog.Decode(seq, h, data)
		if err != nil {
			r.quarantine(seq, h, err)
			r.st.LastSeq = seq
			return
		}
		for _, e := range es {
			r.c.Rules.Apply(r.st, e.Event, e.Seq)
			n++
		}
		r.st.LastSeq = seq // also for a record without events
	})
	if err != nil {
		return fmt.Errorf("zone %s: replay: %w", r.c.Zone, err)
	}
	r.c.Metrics.replayed(n)
	r.app.lastSeq = r.st.LastSeq
	r.tick = r.st.Tick
	return nil
}

// fillBelowFloor applies the events that the trimmed log no longer holds in
// JetStream but the state does not cover yet (a missing or unreadable
// snapshot after trimming), from the store (Config.Below). The first message
// still in JetStream names its predecessor: nothing was trimmed when that is
// 0 or covered by the state. Without a store the zone refuses to recover
// rather than fold a history with a hole.
func (r *runner) fillBelowFloor(ctx context.Context) error {
	first, err := r.app.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(r.app.subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("zone %s: first message of the log: %w", r.c.Zone, err)
	}
	trimmedTo, _ := strconv.ParseUint(first.Header.Get(wire.HeaderExpectedLastSubjSeq), 10, 64)
	if trimmedTo <= r.st.LastSeq {
		return nil
	}
	if r.c.Below == nil {
		return fmt.Errorf("zone %s: the log is trimmed up to seq %d in JetStream but the state covers only %d, and no store is configured to read the rest", r.c.Zone, trimmedTo, r.st.LastSeq)
	}
	n := 0
	err = r.c.Below.Events(ctx, r.c.Zone, r.st.LastSeq+1, trimmedTo, func(e zonelog.Entry) error {
		r.c.Rules.Apply(r.st, e.Event, e.Seq)
		n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("zone %s: events below the JetStream floor from the store: %w", r.c.Zone, err)
	}
	r.st.LastSeq = trimmedTo
	r.log.Info("recovered the trimmed part of the log from the store", "events", n, "up_to", trimmedTo)
	return nil
}

// quarantine raises the alarm for an undecodable message of the zone log:
// a metric, an error log and an Alert on alerts.critical. The message stays
// in the stream untouched for the operator (docs/world.md, "Quarantined log
// messages").
func (r *runner) quarantine(seq uint64, h nats.Header, err error) {
	r.c.Metrics.quarantined()
	r.log.Error("undecodable message in the zone log quarantined: skipped by replay", "seq", seq,
		"schema", h.Get(wire.HeaderSchema), "msg_id", h.Get(wire.HeaderMsgID), "err", err)
	now := time.Now().UnixNano()
	a := &schema.Alert{Rule: "zone_log_undecodable", Severity: schema.Severity_SEVERITY_CRITICAL, State: "firing",
		Message: fmt.Sprintf("zone %s: message at stream seq %d of %s cannot be decoded and was skipped by replay: %v", r.c.Zone, seq, r.app.subject, err),
		Labels:  map[string]string{"zone": r.c.Zone, "seq": strconv.FormatUint(seq, 10), "stream": wire.StreamEvents},
		Value:   float64(seq), SinceNs: now, AtNs: now, Target: "zone=" + r.c.Zone, Source: r.c.Instance}
	if b, merr := proto.Marshal(a); merr == nil && r.c.NC != nil {
		_ = r.c.NC.Publish(wire.AlertSubject("critical"), b)
	}
}

// claim has the appender claim the zone at the log's end (appender.claim:
// the first write of this owner, which makes every later commit of an older
// owner fail), then applies the claim. A refused claim (someone appended
// since the end was read) is retried after catching up, three times.
func (r *runner) claim(ctx context.Context) error {
	for attempt := 0; attempt < 3; attempt++ {
		prev := r.st.Fence
		lastReleased := r.lastWasRelease(ctx)
		ev, seq, err := r.app.claim(ctx, r.tick, prev, r.c.Lease.Fence())
		if err == nil {
			r.c.Rules.Apply(r.st, ev, seq)
			r.c.Metrics.event(wire.EventType(ev))
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

// lastWasRelease reports whether the zone log ends with OwnershipReleased.
func (r *runner) lastWasRelease(ctx context.Context) bool {
	last, err := r.app.stream.GetLastMsgForSubject(ctx, r.app.subject)
	if err != nil {
		return false
	}
	es, err := zonelog.Decode(last.Sequence, last.Header, last.Data)
	return err == nil && len(es) > 0 && es[len(es)-1].Event.GetOwnershipReleased() != nil
}

// step is one tick: decide the inbox, add the due system events and
// deliveries, commit, then expose (acks, notices, updates), deliver new
// transfers and maybe snapshot.
func (r *runner) step(ctx context.Context) error {
	start := time.Now()
	r.tick++
	now := start.UnixNano()
	t := &tickState{}
	mark := start
	for n := len(r.inbox); n > 0; n-- {
		r.decide(ctx, t, <-r.inbox, now)
	}
	r.dueDisconnects(t, now)
	for _, ev := range r.c.Rules.Tick(r.st, now) {
		// System events (respawn, idle removal) are named by (fence, tick,
		// index): unique by construction, unlike counters that restart
		// (issue 10 #1: a respawn id from the death count repeated after a
		// rejoin within the duplicate window).
		ev.EventId = systemEventID(r.c.Zone, wire.EventType(ev), r.app.fence, r.tick, len(t.evs))
		r.add(t, ev)
	}
	for _, ev := range r.deliveries {
		r.add(t, ev)
	}
	r.deliveries = r.deliveries[:0]
	clear(r.delivered)
	r.c.Metrics.lap(phaseDecide, &mark)
	err := r.commit(ctx, t)
	r.c.Metrics.lap(phaseCommit, &mark)
	if err != nil {
		if !errors.Is(err, ErrCrash) {
			// The next owner gets this tick's commands at once, not after
			// the ack wait (behind newer commands of the same sessions).
			for _, a := range t.acks {
				if a.m != nil {
					_ = a.m.Nak()
				}
			}
		}
		return err
	}
	if err := r.expose(t); err != nil {
		return err
	}
	r.c.Metrics.lap(phaseExpose, &mark)
	r.where.committed(ctx, t.evs)
	r.c.Metrics.lap(phaseWhere, &mark)
	if t.out || (len(r.st.PendingTransfers) > 0 && start.After(r.retryAt)) {
		if err := r.deliverPending(ctx); err != nil {
			return err
		}
	}
	r.c.Metrics.lap(phaseTransfers, &mark)
	r.publishUpdates(t, now)
	r.c.Metrics.lap(phaseUpdates, &mark)
	if err := r.maybeSnapshot(ctx, false); err != nil {
		r.log.Warn("snapshot", "err", err)
	}
	r.c.Metrics.lap(phaseSnapshot, &mark)
	r.keepHeld()
	r.c.Metrics.tickDone(time.Since(start))
	r.report()
	return nil
}

// add gives ev the tick and applies it to the in-memory state (exposed only
// after the commit).
func (r *runner) add(t *tickState, ev *schema.Event) {
	ev.Tick = r.tick
	r.c.Rules.Apply(r.st, ev, r.app.lastSeq)
	r.view.note(r.st, ev)
	t.evs = append(t.evs, ev)
}

// systemEventID names an event no command caused: zone/s/<type>/<fence>/<tick>/<index>.
func systemEventID(zone, typ string, fence, tick uint64, index int) string {
	b := make([]byte, 0, len(zone)+len(typ)+40)
	b = append(b, zone...)
	b = append(b, "/s/"...)
	b = append(b, typ...)
	b = append(b, '/')
	b = strconv.AppendUint(b, fence, 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, tick, 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(index), 10)
	return string(b)
}

// commit stores the tick's events as one tick record (a few when it exceeds
// the max payload). A refused commit means another owner appended.
func (r *runner) commit(ctx context.Context, t *tickState) error {
	if len(t.evs) == 0 {
		return nil
	}
	start, before := time.Now(), r.app.records
	ctx, span := r.startCommit(ctx, t)
	seq, err := r.app.commit(ctx, r.tick, t.evs)
	endCommit(span, seq, err)
	t.commit = time.Since(start)
	r.c.Metrics.record(r.app.records - before)
	if err != nil {
		if errors.Is(err, ErrFenced) {
			r.c.Metrics.fenced()
			r.log.Warn("commit refused: another owner appended; stepping down", "tick", r.tick, "events", len(t.evs), "fence", r.app.fence, "err", err)
		}
		return fmt.Errorf("zone %s: %w", r.c.Zone, err)
	}
	r.st.LastSeq = seq
	if r.log.Enabled(ctx, slog.LevelDebug) { // every tick: no argument boxing unless logged
		r.log.Debug("tick committed", "seq", seq, "fence", r.app.fence, "tick", r.tick, "events", len(t.evs), "acks", len(t.acks))
	}
	return nil
}

// expose sends what the committed tick decided: acks, then notices.
func (r *runner) expose(t *tickState) error {
	var per time.Duration
	if n := len(t.acks); n > 0 {
		per = (t.decide + t.commit) / time.Duration(n)
	}
	for _, a := range t.acks {
		if a.m != nil {
			if err := r.hook("ack:" + a.id); err != nil {
				return err
			}
			_ = a.m.Ack()
		}
		if a.receivedAt != 0 {
			r.c.Metrics.applied(per, a.receivedAt, a.trace)
		}
	}
	for _, res := range t.results {
		r.c.Metrics.command(res)
	}
	for _, ev := range t.evs {
		r.c.Metrics.event(wire.EventType(ev))
	}
	for _, n := range t.notices {
		r.notice(n.session, n.n)
	}
	return nil
}

// decide decides the command or command batch m holds into t (in-memory
// state changes, nothing exposed). A batch is decoded whole first: one bad
// entry refuses all of it (Term, counted malformed), never half. Its
// commands are decided in order, each as a single command; the message is
// acked once, after the tick's commit, unless a Disconnect in it is held
// (then the hold acks it: our gateways never batch a Disconnect).
func (r *runner) decide(ctx context.Context, t *tickState, m jetstream.Msg, now int64) {
	h := m.Headers()
	if !wire.IsCommandBatch(h) {
		cmd := &schema.Command{}
		if err := proto.Unmarshal(m.Data(), cmd); err != nil {
			r.log.Warn("dropping undecodable command", "err", err)
			t.results = append(t.results, "malformed")
			_ = m.Term()
			return
		}
		if cmd.CommandId == "" {
			cmd.CommandId = h.Get(wire.HeaderMsgID)
		}
		r.decideOne(ctx, t, m, false, cmd, now)
		return
	}
	var cmds []*schema.Command
	err := wire.ForEachCommand(h, m.Data(), func(b []byte) error {
		cmd := &schema.Command{}
		if err := proto.Unmarshal(b, cmd); err != nil {
			return fmt.Errorf("command %d: %w", len(cmds), err)
		}
		if cmd.CommandId == "" {
			return fmt.Errorf("command %d has no command id", len(cmds))
		}
		cmds = append(cmds, cmd)
		return nil
	})
	if err != nil {
		r.log.Warn("dropping undecodable command batch", "msg_id", h.Get(wire.HeaderMsgID), "err", err)
		t.results = append(t.results, "malformed")
		_ = m.Term()
		return
	}
	held := false
	for _, cmd := range cmds {
		r.decideOne(ctx, t, m, true, cmd, now)
		if cmd.GetDisconnect() != nil {
			if hd := r.held[cmd.SessionId]; hd != nil && hd.m == m {
				held = true
			}
		}
	}
	if !held {
		t.acks = append(t.acks, ack{m: m, id: h.Get(wire.HeaderMsgID)})
	}
}

// decideOne decides one command of m (batched: one of the batch m holds,
// whose one ack decide adds: the command's own ack entries carry no message,
// only its metrics).
func (r *runner) decideOne(ctx context.Context, t *tickState, m jetstream.Msg, batched bool, cmd *schema.Command, now int64) {
	msg := m
	if batched {
		msg = nil
	}
	if cmd.ClientSeq == 0 && cmd.GetTransferIn() == nil {
		if _, seq, err := wire.ParseCommandID(cmd.CommandId); err == nil {
			cmd.ClientSeq = seq
		}
	}
	start := time.Now()
	defer func() { t.decide += time.Since(start) }()
	if h := r.held[cmd.SessionId]; h != nil && cmd.GetDisconnect() == nil && cmd.SessionId != "" {
		// Any later command of the session cancels its pending removal.
		delete(r.held, cmd.SessionId)
		t.acks = append(t.acks, ack{m: h.m, id: h.cmd.CommandId})
	}
	if d := cmd.GetDisconnect(); d != nil {
		r.disconnect(t, m, batched, cmd, now)
		return
	}
	if cmd.GetJoin() != nil {
		// A new session of a held player replaces the old one: drop its removal.
		for s, h := range r.held {
			if h.cmd.PlayerId == cmd.PlayerId && s != cmd.SessionId {
				delete(r.held, s)
				t.acks = append(t.acks, ack{m: h.m, id: h.cmd.CommandId})
			}
		}
	}
	span := r.startDecide(ctx, m, cmd)
	defer func() {
		if span != nil {
			span.End()
		}
	}()
	var ev *schema.Event
	if j := cmd.GetJoin(); j != nil && (j.Zone == "" || j.Zone == r.c.Zone) && cmd.PlayerId != "" && r.st.Players[cmd.PlayerId] == nil && !rules.Duplicate(r.st, cmd) {
		if other := r.where.claim(ctx, cmd.PlayerId); other != "" {
			ev = &schema.Event{EventId: rules.EventID(r.c.Zone, cmd.CommandId), Zone: r.c.Zone, TimestampNs: now, CommandId: cmd.CommandId, PlayerId: cmd.PlayerId,
				Body: &schema.Event_CommandRejected{CommandRejected: &schema.CommandRejected{Code: schema.ErrorCode_ERROR_CODE_REJECTED,
					Reason: "player is in zone " + other + ": leave it first or cross the border"}}}
		}
	}
	if ev == nil {
		ev = r.c.Rules.Decide(r.st, cmd, now)
	}
	if ev == nil {
		t.results = append(t.results, "duplicate")
		if !batched {
			t.acks = append(t.acks, ack{m: m, id: cmd.CommandId})
		}
		if r.log.Enabled(ctx, slog.LevelDebug) {
			// What the audit needs when a command caused no event: who took
			// it for a duplicate, and the session's state then.
			var sseq uint64
			var delivered uint64
			if md, err := m.Metadata(); err == nil {
				sseq, delivered = md.Sequence.Stream, md.NumDelivered
			}
			r.log.Debug("duplicate command acked without an event", "cmd", cmd.CommandId, "cmd_seq", sseq, "delivered", delivered,
				"session_high", r.st.Sessions[cmd.SessionId], "fence", r.app.fence, "tick", r.tick)
		}
		return
	}
	span = r.decided(ctx, t, span, cmd, ev)
	r.add(t, ev)
	t.acks = append(t.acks, ack{m: msg, id: cmd.CommandId, receivedAt: cmd.ReceivedAtNs, trace: spanContext(span)})
	if rej := ev.GetCommandRejected(); rej != nil {
		t.results = append(t.results, "rejected")
		t.notices = append(t.notices, notice{cmd.SessionId, &schema.SessionNotice{SessionId: cmd.SessionId, PlayerId: cmd.PlayerId,
			Body: &schema.SessionNotice_Rejected{Rejected: &schema.CommandRejectedNotice{ClientSeq: cmd.ClientSeq, Code: rej.Code, Reason: rej.Reason}}}})
		return
	}
	t.results = append(t.results, "applied")
	switch b := ev.Body.(type) {
	case *schema.Event_TransferAccepted:
		p := b.TransferAccepted.Player
		t.notices = append(t.notices, notice{p.SessionId, &schema.SessionNotice{SessionId: p.SessionId, PlayerId: p.PlayerId,
			Body: &schema.SessionNotice_ZoneChanged{ZoneChanged: &schema.ZoneChanged{Zone: r.c.Zone, X: p.X, Y: p.Y, TransferId: b.TransferAccepted.TransferId}}}})
	case *schema.Event_TransferOut:
		t.out = true
	}
}

// disconnect starts the grace period of a session whose connection closed
// without Leave: the command is held unacked until the removal (or until a
// later command of the session cancels it). A Disconnect of a session that
// is not the player's current one (or of an absent player) changes nothing.
func (r *runner) disconnect(t *tickState, m jetstream.Msg, batched bool, cmd *schema.Command, now int64) {
	p := r.st.Players[cmd.PlayerId]
	if p == nil || cmd.SessionId == "" || p.SessionId != cmd.SessionId {
		t.results = append(t.results, "duplicate")
		if !batched { // a batch's one ack is decide's
			t.acks = append(t.acks, ack{m: m, id: cmd.CommandId})
		}
		return
	}
	at := now
	if cmd.ReceivedAtNs > 0 && cmd.ReceivedAtNs < now {
		at = cmd.ReceivedAtNs
	}
	r.held[cmd.SessionId] = &heldDisconnect{m: m, cmd: cmd, due: at + int64(r.c.DisconnectGrace), progress: time.Now()}
}

// dueDisconnects removes the players whose grace period ended (PlayerLeft,
// reason "disconnect", caused by the Disconnect command).
func (r *runner) dueDisconnects(t *tickState, now int64) {
	for s, h := range r.held {
		if h.due > now {
			continue
		}
		delete(r.held, s)
		t.acks = append(t.acks, ack{m: h.m, id: h.cmd.CommandId, receivedAt: h.cmd.ReceivedAtNs})
		p := r.st.Players[h.cmd.PlayerId]
		if p == nil || p.SessionId != s {
			continue
		}
		ev := &schema.Event{EventId: rules.EventID(r.c.Zone, h.cmd.CommandId), Zone: r.c.Zone, TimestampNs: now, CommandId: h.cmd.CommandId,
			PlayerId: h.cmd.PlayerId, Body: &schema.Event_PlayerLeft{PlayerLeft: &schema.PlayerLeft{Reason: "disconnect"}}}
		r.add(t, ev)
		t.results = append(t.results, "applied")
	}
}

// keepHeld keeps held Disconnect commands from being redelivered while
// their grace runs.
func (r *runner) keepHeld() {
	for _, h := range r.held {
		if time.Since(h.progress) > r.c.AckWait/3 {
			_ = h.m.InProgress()
			h.progress = time.Now()
		}
	}
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

// deliverPending sends the TransferIn command of every committed pending
// transfer to its target zone (Nats-Msg-Id = transfer id: JetStream dedupes
// resends in its window, the target's state dedupes after it) and queues its
// TransferDelivered event for the next commit. The TransferOut event is the
// commit point: a transfer is never lost (it stays pending until its
// delivery is committed, across owners) and never doubled.
func (r *runner) deliverPending(ctx context.Context) error {
	for _, t := range r.st.PendingTransfers {
		if r.delivered[t.TransferId] {
			continue
		}
		p := t.Player
		cmd := &schema.Command{CommandId: t.TransferId, SessionId: p.GetSessionId(), PlayerId: p.GetPlayerId(), Zone: t.ToZone,
			ReceivedAtNs: time.Now().UnixNano(), PlayerName: p.GetName(),
			Body: &schema.Command_TransferIn{TransferIn: &schema.TransferIn{TransferId: t.TransferId, FromZone: r.c.Zone, Player: p}}}
		data, err := proto.Marshal(cmd)
		if err != nil {
			return err
		}
		m := wire.CommandMsg(wire.CommandHeaders{MsgID: t.TransferId, Session: p.GetSessionId(), Player: p.GetPlayerId(), Zone: t.ToZone}, data)
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
		r.delivered[t.TransferId] = true
		r.deliveries = append(r.deliveries, &schema.Event{EventId: r.c.Zone + "/d/" + t.TransferId, TimestampNs: time.Now().UnixNano(), PlayerId: p.GetPlayerId(),
			Body: &schema.Event_TransferDelivered{TransferDelivered: &schema.TransferDelivered{TransferId: t.TransferId, ToZone: t.ToZone}}})
	}
	return nil
}

// publishUpdates sends the tick's AOI view: one schema.ZoneTick on
// upd.<zone> carrying every changed cell (split into several of whole cells
// above the max payload), or, with Config.UpdatesPerCell, one ZoneUpdate per
// cell on upd.<zone>.<cell> as before protocol 3.
func (r *runner) publishUpdates(t *tickState, now int64) {
	span := r.startUpdates(t)
	us := r.view.build(r.c.Zone, r.st, r.tick, now)
	send := func(subject string, b []byte) {
		if span != nil {
			r.publishTraced(span, subject, b)
			return
		}
		_ = r.c.NC.Publish(subject, b)
	}
	if r.c.UpdatesPerCell {
		for _, u := range us {
			if b, err := proto.Marshal(u); err == nil {
				send(wire.UpdateSubject(r.c.Zone, u.Cell), b)
			}
		}
		endUpdates(span, len(us))
		return
	}
	cells := len(us)
	r.publishTicks(us, now, send)
	endUpdates(span, cells)
}

// publishTicks sends us as one ZoneTick, or, above the record limit, as
// several of whole cells (halves, until each fits or holds one cell).
func (r *runner) publishTicks(us []*schema.ZoneUpdate, now int64, send func(string, []byte)) {
	b, err := proto.Marshal(&schema.ZoneTick{Zone: r.c.Zone, Tick: r.tick, ServerTimeNs: now, Cells: us})
	if err != nil {
		return
	}
	if len(b) <= r.app.maxBytes || len(us) == 1 {
		send(wire.UpdateTickSubject(r.c.Zone), b)
		return
	}
	r.publishTicks(us[:len(us)/2], now, send)
	r.publishTicks(us[len(us)/2:], now, send)
}

// snapshotDue says whether a snapshot is due: SnapshotEvery counts the
// zone's own events (st.Events), not sequences of the shared EVT stream
// (issue 10 #11). A position before the last snapshot's is refused.
func snapshotDue(events, lastSeq, snapEvents, snapSeq uint64, every int, interval, since time.Duration, force bool) (bool, error) {
	if lastSeq < snapSeq || events < snapEvents {
		return false, fmt.Errorf("%w: seq %d (snapshot at %d), events %d (snapshot at %d)", ErrSnapshotBehind, lastSeq, snapSeq, events, snapEvents)
	}
	if lastSeq == snapSeq {
		return false, nil
	}
	return force || every > 0 && events-snapEvents >= uint64(every) || interval > 0 && since >= interval, nil
}

func (r *runner) maybeSnapshot(ctx context.Context, force bool) error {
	if r.c.Snapshots == nil && r.c.SnapStore == nil {
		return nil
	}
	r.snapFinished(force)
	if r.snapBusy || !force && time.Now().Before(r.snapRetry) {
		return nil
	}
	due, err := snapshotDue(r.st.Events, r.st.LastSeq, r.snapEvs, r.snapSeq, r.c.SnapshotEvery, r.c.SnapshotInterval, time.Since(r.snapAt), force)
	if err != nil || !due {
		return err
	}
	// The state is encoded here, in the tick that owns it; the writes (a KV
	// put, or chunks and an index) run in the background so that a tick never
	// waits for them. One snapshot is in flight at a time.
	b, err := snapstore.Marshal(r.st)
	if err != nil {
		return err
	}
	h := snapstore.Header(r.st)
	res := snapResult{seq: r.st.LastSeq, events: r.st.Events, bytes: len(b), at: time.Now()}
	write := func() error {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.c.PublishTimeout)
		defer cancel()
		if r.c.SnapStore != nil {
			return r.c.SnapStore.PutBytes(pctx, h, b)
		}
		_, err := r.c.Snapshots.Put(pctx, r.c.Zone, b)
		return err
	}
	if force {
		res.err = write()
		return r.snapStored(res)
	}
	r.snapBusy = true
	r.snapWG.Add(1)
	go func() {
		defer r.snapWG.Done()
		res.err = write()
		r.snapDone <- res
	}()
	return nil
}

// snapResult is the outcome of one snapshot write.
type snapResult struct {
	seq, events uint64
	bytes       int
	at          time.Time // when the state was taken
	err         error
}

// snapFinished takes the result of the snapshot written in the background,
// if it is done (wait: until it is).
func (r *runner) snapFinished(wait bool) {
	if !r.snapBusy {
		return
	}
	var res snapResult
	if wait {
		res = <-r.snapDone
	} else {
		select {
		case res = <-r.snapDone:
		default:
			return
		}
	}
	r.snapBusy = false
	if err := r.snapStored(res); err != nil {
		r.log.Warn("snapshot", "err", err)
	}
}

// snapStored records a written snapshot (or a failed one: the next attempt
// waits a second).
func (r *runner) snapStored(res snapResult) error {
	if res.err != nil {
		r.snapRetry = time.Now().Add(time.Second)
		return fmt.Errorf("zone %s: snapshot at seq %d (%d bytes): %w", r.c.Zone, res.seq, res.bytes, res.err)
	}
	r.snapSeq, r.snapEvs, r.snapAt = res.seq, res.events, res.at
	r.c.Metrics.snapshot()
	return nil
}

// handover is the graceful end: deliver pending transfers, commit their
// deliveries with OwnershipReleased, write a final snapshot, and hand the
// commands not yet decided to the next owner (Nak). The caller then releases
// the lease and the next owner starts at once from the snapshot.
func (r *runner) handover(ctx context.Context) error {
	if r.c.Lease.Valid() {
		if err := r.deliverPending(ctx); err != nil {
			return err
		}
		r.tick++
		t := &tickState{}
		for _, ev := range r.deliveries {
			r.add(t, ev)
		}
		r.deliveries = nil
		r.add(t, r.app.releaseEvent())
		if err := r.commit(ctx, t); err != nil {
			return err
		}
		if err := r.expose(t); err != nil {
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

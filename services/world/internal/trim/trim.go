// Package trim bounds a zone's event log in JetStream: JetStream keeps the hot
// tail, the store (Postgres or Pebble, through persist) keeps the history.
//
// The floor of evt.<zone> is the minimum of
//   - the sequence the zone's latest snapshot covers (recovery needs the log
//     after it),
//   - persist's acknowledged floor (every EVT message at or below it is
//     durably stored: nothing unpersisted is ever removed), and
//   - a minimum tail kept for replay, audits and live consumers: the zone's
//     messages younger than KeepAge, and at least KeepRecords of them.
//
// Messages below the floor are removed with JetStream's per-subject purge up
// to a sequence. The owner of a zone runs it (after its snapshots); two
// instances running it at once (an old and a new owner) are harmless: each
// purge removes only what is below a floor that both derive from durable
// facts, and a purge up to a lower sequence than one already done is a no-op.
// When any input is missing (persist does not answer, no snapshot yet) the
// zone is not trimmed and the reason is reported.
package trim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/wire"
)

// Config is how much tail a zone keeps beyond what its snapshot and persist
// need.
type Config struct {
	// KeepAge: messages younger than this stay in JetStream. Default 10m.
	KeepAge time.Duration
	// KeepRecords: at least this many of the zone's messages stay. Default 1000.
	KeepRecords int
	// Timeout bounds each request (persist's floor, stream reads). Default 5s.
	Timeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.KeepAge == 0 {
		c.KeepAge = 10 * time.Minute
	}
	if c.KeepRecords == 0 {
		c.KeepRecords = 1000
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	return c
}

// Result says what one trim did and why it stopped where it did.
type Result struct {
	Zone         string
	SnapshotSeq  uint64
	PersistFloor uint64
	TailFloor    uint64 // the first sequence the minimum tail keeps
	Floor        uint64 // messages below it may go
	Purged       uint64 // messages removed by this call
	Held         string // which input held the floor ("snapshot", "persist", "tail", "" when nothing to trim)
}

// ErrNoPersistFloor means persist did not answer its floor: nothing is
// trimmed (an event that might not be stored is never removed).
var ErrNoPersistFloor = errors.New("trim: persist's acknowledged floor is unknown (persist down or not answering); not trimming")

// Trimmer trims zone logs.
type Trimmer struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	c      Config
}

// New returns a trimmer of the EVT stream.
func New(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, c Config) (*Trimmer, error) {
	st, err := js.Stream(ctx, wire.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("trim: stream %s: %w", wire.StreamEvents, err)
	}
	return &Trimmer{nc: nc, js: js, stream: st, c: c.withDefaults()}, nil
}

// PersistFloor asks persist for its acknowledged floor (wire.QueryAckFloor).
func (t *Trimmer) PersistFloor(ctx context.Context) (uint64, error) {
	rctx, cancel := context.WithTimeout(ctx, t.c.Timeout)
	defer cancel()
	m, err := t.nc.RequestWithContext(rctx, wire.QueryAckFloor, []byte("{}"))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoPersistFloor, err)
	}
	var rep struct {
		AckFloor uint64 `json:"ack_floor"`
		Error    string `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &rep); err != nil || rep.Error != "" {
		return 0, fmt.Errorf("%w: answer %q", ErrNoPersistFloor, m.Data)
	}
	return rep.AckFloor, nil
}

// Trim removes the zone's messages below its floor. snapshotSeq is the
// sequence the zone's latest stored snapshot covers (0: none yet, nothing is
// trimmed).
func (t *Trimmer) Trim(ctx context.Context, zone string, snapshotSeq uint64) (Result, error) {
	res := Result{Zone: zone, SnapshotSeq: snapshotSeq}
	if snapshotSeq == 0 {
		res.Held = "snapshot"
		return res, nil
	}
	pf, err := t.PersistFloor(ctx)
	if err != nil {
		res.Held = "persist"
		return res, err
	}
	res.PersistFloor = pf
	subj := wire.EventSubject(zone)
	tail, err := t.tailFloor(ctx, subj)
	if err != nil {
		return res, err
	}
	res.TailFloor = tail
	// Keep the snapshot's own message and everything after it (+1 would
	// also be safe; keeping it lets an auditor see where the snapshot ends).
	floor, held := snapshotSeq, "snapshot"
	if pf+1 < floor {
		floor, held = pf+1, "persist"
	}
	if tail < floor {
		floor, held = tail, "tail"
	}
	res.Floor, res.Held = floor, held
	if floor <= 1 {
		return res, nil
	}
	rctx, cancel := context.WithTimeout(ctx, t.c.Timeout)
	defer cancel()
	first, err := t.firstSeq(rctx, subj)
	if err != nil || first == 0 || first >= floor {
		return res, err
	}
	res.Purged = t.countBetween(rctx, subj, first, floor)
	if err := t.stream.Purge(rctx, jetstream.WithPurgeSubject(subj), jetstream.WithPurgeSequence(floor)); err != nil {
		res.Purged = 0
		return res, fmt.Errorf("trim: purge %s below %d: %w", subj, floor, err)
	}
	return res, nil
}

// tailFloor is the first sequence the minimum tail keeps: the older of the
// first message younger than KeepAge and the KeepRecords-th newest message.
func (t *Trimmer) tailFloor(ctx context.Context, subj string) (uint64, error) {
	rctx, cancel := context.WithTimeout(ctx, t.c.Timeout)
	defer cancel()
	since := time.Now().Add(-t.c.KeepAge)
	byAge, err := t.firstAtOrAfter(rctx, subj, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since})
	if err != nil {
		return 0, err
	}
	if byAge == 0 {
		byAge = ^uint64(0) // nothing young: the count rule alone holds the tail
	}
	byCount, err := t.nthNewest(rctx, subj, t.c.KeepRecords)
	if err != nil {
		return 0, err
	}
	return min(byAge, byCount), nil
}

// firstAtOrAfter is the sequence of the first message of subj the consumer
// config selects (0 when there is none).
func (t *Trimmer) firstAtOrAfter(ctx context.Context, subj string, cfg jetstream.OrderedConsumerConfig) (uint64, error) {
	cfg.FilterSubjects = []string{subj}
	cfg.HeadersOnly = true
	cons, err := t.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("trim: consumer on %s: %w", subj, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.NumPending == 0 {
		return 0, nil
	}
	m, err := cons.Next(jetstream.FetchMaxWait(t.c.Timeout))
	if err != nil {
		return 0, fmt.Errorf("trim: read %s: %w", subj, err)
	}
	md, err := m.Metadata()
	if err != nil {
		return 0, err
	}
	return md.Sequence.Stream, nil
}

func (t *Trimmer) firstSeq(ctx context.Context, subj string) (uint64, error) {
	return t.firstAtOrAfter(ctx, subj, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
}

// pendingFrom counts the messages of subj with sequence >= seq.
func (t *Trimmer) pendingFrom(ctx context.Context, subj string, seq uint64) (uint64, error) {
	cons, err := t.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, HeadersOnly: true,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq})
	if err != nil {
		return 0, fmt.Errorf("trim: consumer on %s: %w", subj, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.NumPending, nil
}

// nthNewest is the sequence of the n-th newest message of subj (1 when the
// subject has fewer): a binary search over "messages at or after seq".
func (t *Trimmer) nthNewest(ctx context.Context, subj string, n int) (uint64, error) {
	last, err := t.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 1, nil
	}
	if err != nil {
		return 0, err
	}
	lo, hi := uint64(1), last.Sequence // invariant: pending(lo) >= n unless lo == 1; pending(hi) <= n
	if c, err := t.pendingFrom(ctx, subj, 1); err != nil || c <= uint64(n) {
		return 1, err
	}
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		c, err := t.pendingFrom(ctx, subj, mid)
		if err != nil {
			return 0, err
		}
		if c >= uint64(n) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, nil
}

// countBetween counts the messages of subj with from <= seq < to.
func (t *Trimmer) countBetween(ctx context.Context, subj string, from, to uint64) uint64 {
	if to <= from {
		return 0
	}
	a, err1 := t.pendingFrom(ctx, subj, from)
	b, err2 := t.pendingFrom(ctx, subj, to)
	if err1 != nil || err2 != nil || a < b {
		return 0
	}
	return a - b
}

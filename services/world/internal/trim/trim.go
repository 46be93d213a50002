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
	"strconv"
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
	var rep wire.AckFloorReply
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
	before, _ := t.count(rctx, subj)
	if err := t.stream.Purge(rctx, jetstream.WithPurgeSubject(subj), jetstream.WithPurgeSequence(floor)); err != nil {
		return res, fmt.Errorf("trim: purge %s below %d: %w", subj, floor, err)
	}
	if after, err := t.count(rctx, subj); err == nil && after < before {
		res.Purged = before - after // appends meanwhile can only make this an underestimate
	}
	return res, nil
}

// tailFloor is the first sequence the minimum tail keeps: the older of the
// first message younger than KeepAge and the KeepRecords-th newest message.
// One short-lived consumer (started by time) tells both the first young
// message and how many there are; only a zone with fewer young messages
// than KeepRecords walks further back, record by record, through the
// predecessor each message names (Nats-Expected-Last-Subject-Sequence).
func (t *Trimmer) tailFloor(ctx context.Context, subj string) (uint64, error) {
	rctx, cancel := context.WithTimeout(ctx, t.c.Timeout)
	defer cancel()
	since := time.Now().Add(-t.c.KeepAge)
	cons, err := t.stream.OrderedConsumer(rctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, HeadersOnly: true,
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since, InactiveThreshold: 2 * time.Second})
	if err != nil {
		return 0, fmt.Errorf("trim: consumer on %s: %w", subj, err)
	}
	info, err := cons.Info(rctx)
	if err != nil {
		return 0, err
	}
	young := info.NumPending
	var from uint64 // the oldest young message (0: none)
	if young > 0 {
		m, err := cons.Next(jetstream.FetchMaxWait(t.c.Timeout))
		if err != nil {
			return 0, fmt.Errorf("trim: read %s: %w", subj, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return 0, err
		}
		from = md.Sequence.Stream
	}
	if young >= uint64(t.c.KeepRecords) {
		return from, nil // the young messages alone are enough
	}
	// Walk back from the oldest young message (or the last one) until
	// KeepRecords messages are kept or the zone's first message is reached.
	var cur uint64
	kept := young
	if from > 0 {
		cur = from
	} else {
		last, err := t.stream.GetLastMsgForSubject(rctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 1, nil
		}
		if err != nil {
			return 0, err
		}
		cur, kept = last.Sequence, 1
	}
	for kept < uint64(t.c.KeepRecords) {
		m, err := t.stream.GetMsg(rctx, cur)
		if err != nil {
			return 0, fmt.Errorf("trim: %s at %d: %w", subj, cur, err)
		}
		prev, _ := strconv.ParseUint(m.Header.Get(wire.HeaderExpectedLastSubjSeq), 10, 64)
		if prev == 0 {
			return 1, nil // the zone's very first message: keep everything
		}
		cur = prev
		kept++
	}
	return cur, nil
}

// firstSeq is the sequence of the zone's first message still in JetStream (0: none).
func (t *Trimmer) firstSeq(ctx context.Context, subj string) (uint64, error) {
	m, err := t.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// count is the number of messages of subj in the stream.
func (t *Trimmer) count(ctx context.Context, subj string) (uint64, error) {
	info, err := t.stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subj], nil
}

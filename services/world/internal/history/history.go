// Package history answers "what did zone Z look like at stream sequence N (or
// at time T)": the nearest snapshot at or before N, then a replay of the
// zone's events up to N through the same fold the owner uses (rules.Apply).
// It reads only NATS (the EVT stream, the snapshot bucket's history) and, for
// events below the JetStream floor, any other Source; it never touches a
// running zone, so any world instance (or the admin CLI in process) answers.
package history

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
	"github.com/realmstream/realmstream/services/world/internal/rules"
	"github.com/realmstream/realmstream/services/world/internal/snapstore"
)

// Source yields the events of zone whose message sequence is in [from, to]
// (to = 0: up to the end), in log order.
type Source interface {
	Events(ctx context.Context, zone string, from, to uint64, fn func(zonelog.Entry) error) error
}

// Snapshots finds the newest stored snapshot of zone that covers no more than
// stream sequence seq (nil, nil when there is none).
type Snapshots interface {
	AtOrBefore(ctx context.Context, zone string, seq uint64) (*schema.ZoneSnapshot, error)
}

// Query is one time-travel question. AtSeq = 0 and AtTime zero: the end of the log.
type Query struct {
	Zone   string
	AtSeq  uint64
	AtTime time.Time
}

// Result is the zone state at the asked position and how it was computed.
type Result struct {
	Zone        string
	AtSeq       uint64 // the state covers every message of the zone log up to this sequence
	SnapshotSeq uint64 // the snapshot the replay started from (0: the beginning)
	Replayed    int    // events folded after the snapshot
	LogEnd      uint64 // last sequence of the zone log when asked
	State       *schema.ZoneSnapshot
	Took        time.Duration
}

// Reader answers queries from a JetStream EVT stream (and a snapshot bucket).
type Reader struct {
	JS    jetstream.JetStream
	Snaps Snapshots // optional
	// Below is consulted for the part of the log JetStream no longer holds
	// (trimmed below its first sequence); nil means the log is read from
	// JetStream only and a position below the floor is an error.
	Below Source
	Rules *rules.Config
}

// ErrBelowFloor means the position asked is below what JetStream holds and
// no store Source was configured to read it.
var ErrBelowFloor = errors.New("history: position is below the JetStream floor of the zone log and no store is configured")

var errStop = errors.New("stop")

// StateAt folds the zone's log up to the asked position.
func (r *Reader) StateAt(ctx context.Context, q Query) (*Result, error) {
	start := time.Now()
	if q.Zone == "" {
		return nil, errors.New("history: zone is required")
	}
	stream, err := r.JS.Stream(ctx, wire.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("history: stream %s: %w", wire.StreamEvents, err)
	}
	subj := wire.EventSubject(q.Zone)
	res := &Result{Zone: q.Zone}
	last, err := stream.GetLastMsgForSubject(ctx, subj)
	switch {
	case err == nil:
		res.LogEnd = last.Sequence
	case errors.Is(err, jetstream.ErrMsgNotFound):
	default:
		return nil, fmt.Errorf("history: end of %s: %w", subj, err)
	}
	at := q.AtSeq
	if !q.AtTime.IsZero() {
		if at, err = r.seqAtTime(ctx, stream, subj, q.AtTime, res.LogEnd); err != nil {
			return nil, err
		}
	}
	if at == 0 || at > res.LogEnd {
		at = res.LogEnd
	}
	res.AtSeq = at
	st := rules.NewState(q.Zone)
	if r.Snaps != nil && at > 0 {
		snap, err := r.Snaps.AtOrBefore(ctx, q.Zone, at)
		if err != nil {
			return nil, err
		}
		if snap != nil {
			st, res.SnapshotSeq = snap, snap.LastSeq
		}
	}
	if at > st.LastSeq {
		keep := 0
		if r.Rules != nil {
			keep = r.Rules.KeepTransfers
		}
		n, err := r.fold(ctx, stream, st, st.LastSeq+1, at, keep)
		if err != nil {
			return nil, err
		}
		res.Replayed = n
	}
	res.State = st
	res.Took = time.Since(start)
	return res, nil
}

// fold applies the zone's events with sequence in [from, to] to st, reading
// the part below the JetStream floor from r.Below.
func (r *Reader) fold(ctx context.Context, stream jetstream.Stream, st *schema.ZoneSnapshot, from, to uint64, keep int) (int, error) {
	n := 0
	apply := func(e zonelog.Entry) error {
		if e.Seq > to {
			return errStop
		}
		rules.Apply(st, e.Event, e.Seq, keep)
		n++
		return nil
	}
	// The zone's own floor: trimming purges per subject, so the stream's
	// first sequence says nothing about this zone. The first message still
	// in JetStream names its predecessor (Nats-Expected-Last-Subject-
	// Sequence): 0 means nothing of the zone was ever trimmed.
	floor, trimmedTo := uint64(1<<63-1), uint64(0) // nothing of the zone left in JetStream
	first, err := stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(wire.EventSubject(st.Zone)))
	switch {
	case err == nil:
		floor = first.Sequence
		trimmedTo, _ = strconv.ParseUint(first.Header.Get(wire.HeaderExpectedLastSubjSeq), 10, 64)
	case errors.Is(err, jetstream.ErrMsgNotFound):
		trimmedTo = to // no message left: whatever was asked is below the floor
	default:
		return 0, fmt.Errorf("history: first message of %s: %w", st.Zone, err)
	}
	if from <= trimmedTo {
		if r.Below == nil {
			return 0, fmt.Errorf("%w (asked from %d, JetStream holds %d..)", ErrBelowFloor, from, floor)
		}
		if err := r.Below.Events(ctx, st.Zone, from, min(to, trimmedTo), apply); err != nil && !errors.Is(err, errStop) {
			return n, fmt.Errorf("history: store: %w", err)
		}
		from = floor
	}
	if from > to || floor == 1<<63-1 {
		return n, nil
	}
	err = zonelog.Scan(ctx, r.JS, st.Zone, from, apply)
	if err != nil && !errors.Is(err, errStop) {
		return n, fmt.Errorf("history: replay: %w", err)
	}
	return n, nil
}

// seqAtTime is the last sequence of the zone log stored before t (0 when
// nothing was): the first message at or after t, minus one position.
func (r *Reader) seqAtTime(ctx context.Context, stream jetstream.Stream, subj string, t time.Time, end uint64) (uint64, error) {
	if end == 0 {
		return 0, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t, HeadersOnly: true, InactiveThreshold: 2 * time.Second,
	})
	if err != nil {
		return 0, fmt.Errorf("history: consumer at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.NumPending == 0 {
		return end, nil // nothing at or after t: the whole log
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		return 0, fmt.Errorf("history: first message at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	md, err := msg.Metadata()
	if err != nil {
		return 0, err
	}
	return md.Sequence.Stream - 1, nil
}

// KVSnapshots reads snapshots from the history of a KV bucket (key = zone).
// With Chunks set, revisions that index a chunked snapshot are resolved
// through it (snapstore).
type KVSnapshots struct {
	KV     jetstream.KeyValue
	Chunks *snapstore.Store
}

// AtOrBefore returns the newest snapshot revision of zone with LastSeq <= seq.
func (k KVSnapshots) AtOrBefore(ctx context.Context, zone string, seq uint64) (*schema.ZoneSnapshot, error) {
	if k.KV == nil {
		return nil, nil
	}
	revs, err := k.KV.History(ctx, zone)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("history: snapshots of %s: %w", zone, err)
	}
	var best *schema.ZoneSnapshot
	sort.Slice(revs, func(i, j int) bool { return revs[i].Revision() > revs[j].Revision() })
	for _, e := range revs {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		snap := &schema.ZoneSnapshot{}
		if err := proto.Unmarshal(e.Value(), snap); err != nil || snap.Zone != zone {
			continue // unreadable revisions are skipped: the replay covers them
		}
		if snap.LastSeq <= seq && (best == nil || snap.LastSeq > best.LastSeq) {
			if snap.Object != "" {
				if k.Chunks == nil {
					continue
				}
				full, err := k.Chunks.Decode(ctx, e.Value())
				if err != nil {
					continue
				}
				snap = full
			}
			best = snap
		}
	}
	if best != nil {
		if best.Players == nil {
			best.Players = map[string]*schema.PlayerState{}
		}
		if best.Sessions == nil {
			best.Sessions = map[string]uint64{}
		}
	}
	return best, nil
}

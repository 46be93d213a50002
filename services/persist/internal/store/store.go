// Package store defines what persist writes and reads, independent of the
// backend: the Record decoded from one EVT message, the read-model views, the
// projection of events into read-model changes, and the Store interface that
// the Postgres and Pebble backends implement (internal/storetest is the
// conformance suite both run).
package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
)

// Record is one event row as persist stores it: one event of an EVT
// message. A tick record message (Realm-Schema wire.SchemaTickRecord) holds
// the events of one zone tick and becomes one Record per event, at Index
// 0..n-1; a legacy message (one schema.Event) or an undecodable one becomes
// one Record at Index 0. (Seq, Index) identifies a row: a store holds each
// at most once. Every Record of a message has the same Seq and Zone and is
// always in the same batch (a message is never split), so exactly-once
// bookkeeping may work per message (Seq).
type Record struct {
	Seq      uint64
	Index    uint32 // position of the event in its message
	Zone     string // shard key of the event row
	TSNs     int64  // event timestamp (partition key); else the record's commit time, else the message time
	EventID  string
	PlayerID string
	Type     string // wire.EventType ("player_moved"), "invalid" if the payload did not decode
	Fence    uint64
	Payload  []byte // the schema.Event protobuf exactly as in the stream (undecodable: the whole message data)
	Event    *schema.Event
}

// Less orders records by (Seq, Index): the order of the log.
func (r *Record) Less(o *Record) bool {
	return r.Seq < o.Seq || (r.Seq == o.Seq && r.Index < o.Index)
}

// Decode turns a legacy EVT message (one schema.Event, Realm-Schema "1" or
// no schema header) into its Record. It never fails: a payload that is not
// a schema.Event is kept raw with Type "invalid" (the store mirrors the log,
// whatever is in it), and the zone comes from the subject.
func Decode(seq uint64, subject string, data []byte, msgTime time.Time) Record {
	zone := strings.TrimPrefix(subject, wire.EventPrefix)
	r := Record{Seq: seq, Zone: zone, TSNs: msgTime.UnixNano(), Payload: data, Type: "invalid"}
	ev := &schema.Event{}
	if err := proto.Unmarshal(data, ev); err != nil {
		return r
	}
	fill(&r, ev)
	return r
}

func fill(r *Record, ev *schema.Event) {
	r.Event = ev
	r.EventID = ev.GetEventId()
	r.PlayerID = ev.GetPlayerId()
	r.Fence = ev.GetFence()
	if ev.GetTimestampNs() != 0 {
		r.TSNs = ev.GetTimestampNs()
	}
	r.Type = wire.EventType(ev)
}

// DecodeMessage turns one EVT message into its Records: the events of a tick
// record (header Realm-Schema = wire.SchemaTickRecord) in order, each with
// the exact bytes of its schema.Event as payload, or the one Record of a
// legacy message (Decode). It never fails: a record that does not decode
// (or one of whose events does not) is stored as one raw Record of Type
// "invalid" at Index 0, like an undecodable legacy message. A record with no
// events yields no Records.
func DecodeMessage(seq uint64, subject string, h nats.Header, data []byte, msgTime time.Time) []Record {
	if h.Get(wire.HeaderSchema) != wire.SchemaTickRecord {
		return []Record{Decode(seq, subject, data, msgTime)}
	}
	zone := strings.TrimPrefix(subject, wire.EventPrefix)
	raw := []Record{{Seq: seq, Zone: zone, TSNs: msgTime.UnixNano(), Payload: data, Type: "invalid"}}
	// Each row's payload is the event's bytes exactly as committed (no
	// re-encoding): zonelog.RecordEvents walks the record's wire format.
	evs, committed, err := zonelog.RecordEvents(data)
	if err != nil {
		return raw
	}
	if committed == 0 {
		committed = msgTime.UnixNano()
	}
	out := make([]Record, len(evs))
	for i, p := range evs {
		ev := &schema.Event{}
		if err := proto.Unmarshal(p, ev); err != nil {
			return raw
		}
		out[i] = Record{Seq: seq, Index: uint32(i), Zone: zone, TSNs: committed, Payload: p}
		fill(&out[i], ev)
	}
	return out
}

// EventRow is one stored event: the wire shape of persist's query replies
// (wire.StoredEvent), so the world decodes the same type persist answers with.
type EventRow = wire.StoredEvent

// Player is the player read model.
type Player struct {
	PlayerID string  `json:"player_id"`
	Name     string  `json:"name"`
	Zone     string  `json:"zone"`
	X        float32 `json:"x"`
	Y        float32 `json:"y"`
	HP       int32   `json:"hp"`
	Kills    int64   `json:"kills"`
	Deaths   int64   `json:"deaths"`
	Online   bool    `json:"online"`
	LastSeq  uint64  `json:"last_seq"`
	LastTSNs int64   `json:"last_ts_ns"`
}

// ZoneSummary is the zone read model. Events counts stored rows of the zone.
type ZoneSummary struct {
	Zone     string `json:"zone"`
	Events   int64  `json:"events"`
	LastSeq  uint64 `json:"last_seq"`
	LastTSNs int64  `json:"last_ts_ns"`
	Players  int64  `json:"players"` // players in the zone now: present members (see Membership)
	Deaths   int64  `json:"deaths"`
}

// ZoneEventsQuery selects a zone's events with FromNs <= ts < ToNs (ToNs 0 =
// no upper bound) and Seq > AfterSeq, ordered by (ts, seq), at most Limit.
type ZoneEventsQuery struct {
	Zone     string `json:"zone"`
	FromNs   int64  `json:"from_ns"`
	ToNs     int64  `json:"to_ns"`
	AfterSeq uint64 `json:"after_seq"`
	Limit    int    `json:"limit"`
}

// MaxLimit bounds one zone-events answer.
const MaxLimit = 1000

// Normalize applies the defaults and bounds of a query.
func (q ZoneEventsQuery) Normalize() (ZoneEventsQuery, error) {
	if !wire.ValidToken(q.Zone) {
		return q, errors.New("zone: want a zone id like z0_0")
	}
	if q.Limit <= 0 || q.Limit > MaxLimit {
		q.Limit = MaxLimit
	}
	if q.ToNs == 0 {
		q.ToNs = 1<<63 - 1
	}
	return q, nil
}

// WriteResult counts what one Write did.
type WriteResult struct {
	Inserted int // event rows stored now
	Skipped  int // event rows already stored (redelivery)
	Slow     int // event rows that took the duplicate-checking path
}

// PartialError is a failed Write of which some physical shards committed:
// Failed holds the message sequences (Record.Seq) that touched a shard that
// did not commit (their rows or read-model rows); every other message of
// the batch is durably stored and may be acked. Retrying the failed
// messages is safe (exactly-once).
type PartialError struct {
	Err    error
	Failed map[uint64]bool
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%v (%d messages not stored)", e.Err, len(e.Failed))
}

func (e *PartialError) Unwrap() error { return e.Err }

// SeqRangeQuery selects the events of a zone whose message sequence is in
// [FromSeq, ToSeq] (ToSeq 0 = no upper bound), in log order (seq, index),
// starting after the position (AfterSeq, AfterIndex) when HasAfter (paging:
// pass the last row of the previous page), at most Limit rows.
// It is the request of persist.query.zone_range (wire.ZoneRangeRequest).
type SeqRangeQuery wire.ZoneRangeRequest

// Normalize applies the defaults and bounds of a query: the lower bound
// becomes the first position to return, as (seq, index).
func (q SeqRangeQuery) Normalize() (SeqRangeQuery, error) {
	if !wire.ValidToken(q.Zone) {
		return q, errors.New("zone: want a zone id like z0_0")
	}
	if q.Limit <= 0 || q.Limit > MaxLimit {
		q.Limit = MaxLimit
	}
	if q.ToSeq == 0 {
		q.ToSeq = 1<<63 - 1
	}
	if q.ToSeq < q.FromSeq {
		return q, errors.New("to_seq: below from_seq")
	}
	return q, nil
}

// Start is the first (seq, index) a normalized query may return.
func (q SeqRangeQuery) Start() (uint64, uint32) {
	if q.HasAfter && q.AfterSeq >= q.FromSeq {
		if q.AfterIndex == 1<<32-1 {
			return q.AfterSeq + 1, 0
		}
		return q.AfterSeq, q.AfterIndex + 1
	}
	return q.FromSeq, 0
}

// Store is a persist backend. Write must be exactly-once per (Seq, Index):
// writing the same records again (a redelivered batch) stores nothing twice and leaves
// read models as if written once. Write is atomic per physical shard, not
// across shards: a failed Write may have committed some shards, and retrying
// it is always safe.
type Store interface {
	Write(ctx context.Context, recs []Record) (WriteResult, error)
	ZoneEvents(ctx context.Context, q ZoneEventsQuery) ([]EventRow, error)
	// EventsBySeq answers a zone's events by stream position (replay and
	// time travel below the JetStream floor).
	EventsBySeq(ctx context.Context, q SeqRangeQuery) ([]EventRow, error)
	Player(ctx context.Context, id string) (Player, bool, error)
	Zone(ctx context.Context, zone string) (ZoneSummary, bool, error)
	Close() error
}

// FieldSeqs are, per field group of a player row, the stream sequence of
// the event that last set the group (0 = never set). Groups: Name, Zone,
// Pos (x and y), HP, Online. A group takes a new value only from an event
// with a higher sequence, so the row converges to the in-order fold whatever
// order batches are applied in (field-wise monotone).
type FieldSeqs struct {
	Name   uint64 `json:"name"`
	Zone   uint64 `json:"zone"`
	Pos    uint64 `json:"pos"`
	HP     uint64 `json:"hp"`
	Online uint64 `json:"online"`
}

// PlayerPatch is the change a batch makes to one player; nil fields are
// unchanged. Seq is the highest sequence that touched the player (LastSeq);
// Seqs holds, for each non-nil field group, the sequence of the event that
// set it: stores apply each group only if its sequence is newer than the
// stored one (idempotent, order-independent).
type PlayerPatch struct {
	PlayerID string
	Touched  []uint64 // message sequences whose events make up the patch
	Seq      uint64
	TSNs     int64
	Seqs     FieldSeqs
	Zone     *string
	Name     *string
	X, Y     *float32
	HP       *int32
	Online   *bool
}

func (p *PlayerPatch) setZone(seq uint64, z string) { p.Zone, p.Seqs.Zone = ptr(z), seq }
func (p *PlayerPatch) setName(seq uint64, n string) { p.Name, p.Seqs.Name = ptr(n), seq }
func (p *PlayerPatch) setHP(seq uint64, hp int32)   { p.HP, p.Seqs.HP = ptr(hp), seq }
func (p *PlayerPatch) setOnline(seq uint64, o bool) { p.Online, p.Seqs.Online = ptr(o), seq }
func (p *PlayerPatch) setPos(seq uint64, x, y float32) {
	p.X, p.Y, p.Seqs.Pos = ptr(x), ptr(y), seq
}

// Tally is one kill or death credited to a player by the event at (Seq,
// Index); (PlayerID, Seq, Index, Kind) is unique, so counting it is
// idempotent (two kills of one tick are two tallies).
type Tally struct {
	PlayerID string
	Seq      uint64
	Index    uint32
	Kind     byte // 'k' kill, 'd' death
}

// SortRecords returns recs in (Seq, Index) order (recs itself if sorted).
func SortRecords(recs []Record) []Record {
	if sort.SliceIsSorted(recs, func(i, j int) bool { return recs[i].Less(&recs[j]) }) {
		return recs
	}
	sorted := append([]Record(nil), recs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Less(&sorted[j]) })
	return sorted
}

// Project computes player patches and tallies of records, applied in (Seq,
// Index) order. Field sequences are stream sequences: the events of one
// message are folded in order into the patch, so the last event of a
// record that sets a group wins, and a message is never split across
// batches.
func Project(recs []Record) ([]*PlayerPatch, []Tally) {
	sorted := SortRecords(recs)
	byID := map[string]*PlayerPatch{}
	var order []*PlayerPatch
	get := func(id string, r *Record) *PlayerPatch {
		p := byID[id]
		if p == nil {
			p = &PlayerPatch{PlayerID: id}
			byID[id] = p
			order = append(order, p)
		}
		if n := len(p.Touched); n == 0 || p.Touched[n-1] != r.Seq {
			p.Touched = append(p.Touched, r.Seq)
		}
		p.Seq, p.TSNs = r.Seq, r.TSNs
		return p
	}
	state := func(p *PlayerPatch, s *schema.PlayerState, r *Record) {
		if s == nil {
			return
		}
		p.setZone(r.Seq, r.Zone)
		if s.GetName() != "" {
			p.setName(r.Seq, s.GetName())
		}
		p.setPos(r.Seq, s.GetX(), s.GetY())
		p.setHP(r.Seq, s.GetHp())
		p.setOnline(r.Seq, true)
	}
	var tallies []Tally
	for i := range sorted {
		r := &sorted[i]
		ev := r.Event
		if ev == nil || r.PlayerID == "" {
			continue
		}
		switch b := ev.GetBody().(type) {
		case *schema.Event_PlayerJoined:
			state(get(r.PlayerID, r), b.PlayerJoined.GetPlayer(), r)
		case *schema.Event_TransferAccepted:
			state(get(r.PlayerID, r), b.TransferAccepted.GetPlayer(), r)
		case *schema.Event_PlayerMoved:
			p := get(r.PlayerID, r)
			p.setZone(r.Seq, r.Zone)
			p.setPos(r.Seq, b.PlayerMoved.GetX(), b.PlayerMoved.GetY())
		case *schema.Event_PlayerLeft:
			get(r.PlayerID, r).setOnline(r.Seq, false)
		case *schema.Event_AttackHit:
			// The world reports a kill in the hit itself (killed = true; it
			// emits no PlayerDied): a death for the target, a kill for the
			// attacker (the event's player).
			h := b.AttackHit
			t := h.GetTargetId()
			if t != "" {
				get(t, r).setHP(r.Seq, h.GetTargetHp())
			}
			if h.GetKilled() {
				if t != "" {
					tallies = append(tallies, Tally{PlayerID: t, Seq: r.Seq, Index: r.Index, Kind: 'd'})
				}
				if r.PlayerID != t {
					tallies = append(tallies, Tally{PlayerID: r.PlayerID, Seq: r.Seq, Index: r.Index, Kind: 'k'})
				}
			}
		case *schema.Event_PlayerDied:
			get(r.PlayerID, r).setHP(r.Seq, 0)
			tallies = append(tallies, Tally{PlayerID: r.PlayerID, Seq: r.Seq, Index: r.Index, Kind: 'd'})
			if k := b.PlayerDied.GetKillerId(); k != "" && k != r.PlayerID {
				tallies = append(tallies, Tally{PlayerID: k, Seq: r.Seq, Index: r.Index, Kind: 'k'})
			}
		case *schema.Event_PlayerRespawned:
			p := get(r.PlayerID, r)
			p.setPos(r.Seq, b.PlayerRespawned.GetX(), b.PlayerRespawned.GetY())
			p.setHP(r.Seq, b.PlayerRespawned.GetHp())
		}
	}
	return order, tallies
}

// ZoneDelta is the change newly stored events make to one zone summary.
// The zone's player count is not a delta: it is the number of present
// members (Memberships), so a re-join of a player already present, or a
// leave of one already gone, changes nothing.
type ZoneDelta struct {
	Zone     string
	Events   int64
	LastSeq  uint64
	LastTSNs int64
	Deaths   int64
}

// Membership is whether a player is in a zone after the event at Seq that
// last changed it (PlayerJoined / TransferAccepted: present; PlayerLeft /
// TransferOut: absent). Stores keep one row per (Zone, PlayerID) and take a
// membership only from a higher Seq than the stored one (idempotent,
// order-independent, like FieldSeqs); the zone summary's players is the
// number of present rows.
type Membership struct {
	Zone     string
	PlayerID string
	Seq      uint64
	Present  bool
}

// Memberships folds records, in (Seq, Index) order, into the last
// membership change per (zone, player).
func Memberships(recs []Record) []Membership {
	type key struct{ zone, player string }
	idx := map[key]int{}
	var out []Membership
	for _, i := range sortedIdx(recs) {
		r := &recs[i]
		if r.Event == nil || r.PlayerID == "" {
			continue
		}
		var present bool
		switch r.Event.GetBody().(type) {
		case *schema.Event_PlayerJoined, *schema.Event_TransferAccepted:
			present = true
		case *schema.Event_PlayerLeft, *schema.Event_TransferOut:
			present = false
		default:
			continue
		}
		k := key{r.Zone, r.PlayerID}
		m := Membership{Zone: r.Zone, PlayerID: r.PlayerID, Seq: r.Seq, Present: present}
		if j, ok := idx[k]; ok {
			out[j] = m
		} else {
			idx[k] = len(out)
			out = append(out, m)
		}
	}
	return out
}

func sortedIdx(recs []Record) []int {
	ix := make([]int, len(recs))
	for i := range ix {
		ix[i] = i
	}
	sort.SliceStable(ix, func(a, b int) bool { return recs[ix[a]].Less(&recs[ix[b]]) })
	return ix
}

// ZoneDeltas sums the zone-summary changes of records that were newly stored
// (never call it with records that were already stored).
func ZoneDeltas(recs []Record) []*ZoneDelta {
	by := map[string]*ZoneDelta{}
	var order []*ZoneDelta
	for i := range recs {
		r := &recs[i]
		d := by[r.Zone]
		if d == nil {
			d = &ZoneDelta{Zone: r.Zone}
			by[r.Zone] = d
			order = append(order, d)
		}
		d.Events++
		if r.Seq > d.LastSeq {
			d.LastSeq, d.LastTSNs = r.Seq, r.TSNs
		}
		if r.Event == nil {
			continue
		}
		switch b := r.Event.GetBody().(type) {
		case *schema.Event_AttackHit:
			if b.AttackHit.GetKilled() {
				d.Deaths++
			}
		case *schema.Event_PlayerDied:
			d.Deaths++
		}
	}
	return order
}

func ptr[T any](v T) *T { return &v }

// ApplyPatch applies a patch to a stored player whose field groups were set
// by the events at seqs (used by stores that project in Go): each group is
// taken only if the patch set it from a newer event, LastSeq only grows. It
// reports whether anything changed. Applying patches in any order gives the
// same player as applying them in sequence order.
func ApplyPatch(p *Player, seqs *FieldSeqs, pp *PlayerPatch) bool {
	changed := false
	if pp.Seq > p.LastSeq {
		p.LastSeq, p.LastTSNs = pp.Seq, pp.TSNs
		changed = true
	}
	p.PlayerID = pp.PlayerID
	if pp.Zone != nil && pp.Seqs.Zone > seqs.Zone {
		p.Zone, seqs.Zone, changed = *pp.Zone, pp.Seqs.Zone, true
	}
	if pp.Name != nil && pp.Seqs.Name > seqs.Name {
		p.Name, seqs.Name, changed = *pp.Name, pp.Seqs.Name, true
	}
	if pp.X != nil && pp.Y != nil && pp.Seqs.Pos > seqs.Pos {
		p.X, p.Y, seqs.Pos, changed = *pp.X, *pp.Y, pp.Seqs.Pos, true
	}
	if pp.HP != nil && pp.Seqs.HP > seqs.HP {
		p.HP, seqs.HP, changed = *pp.HP, pp.Seqs.HP, true
	}
	if pp.Online != nil && pp.Seqs.Online > seqs.Online {
		p.Online, seqs.Online, changed = *pp.Online, pp.Seqs.Online, true
	}
	return changed
}

// LegacySeqs are the field sequences of a row stored before FieldSeqs
// existed: every group as of its LastSeq (the old whole-row rule).
func LegacySeqs(p *Player, s *FieldSeqs) {
	if *s == (FieldSeqs{}) && p.LastSeq > 0 {
		*s = FieldSeqs{Name: p.LastSeq, Zone: p.LastSeq, Pos: p.LastSeq, HP: p.LastSeq, Online: p.LastSeq}
	}
}

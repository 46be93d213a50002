// Package session keeps the state of client sessions that every gateway
// shares, so a session resumes correctly on any gateway and after a gateway
// restart: one record per session in the NATS KV bucket wire.KVSessions
// (TTL = the absolute session lifetime), and the deny list wire.KVRevoked
// checked at every Hello and resume.
//
// A record says who the session is (player, name, start), where it was
// (zone), and which client seqs it has used:
//
//   - LastSeq is an upper bound of every seq any gateway accepted for the
//     session. A gateway writes it BEFORE it accepts a seq above the bound
//     (reserving ReserveAhead seqs at a time, so the write is rare), and
//     writes the exact value when the connection closes or hands over. So a
//     crash can leave it above the last seq really used, never below: a
//     client that continues above Welcome.last_seq never reuses a seq.
//   - Recent holds the (seq, digest) of the last RecentMax commands accepted,
//     complete up to RecentTo. A resent seq found there is published again
//     when its digest matches (JetStream deduplicates it) and refused
//     (SEQ_REUSED) when it does not. A seq at or below LastSeq above RecentTo
//     (only after a crash) is published only within the JetStream duplicate
//     window of WrittenAt, where the gateway checks a duplicate's stored
//     digest; any other seq at or below LastSeq is refused STALE_SEQ.
package session

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/realmstream/realmstream/libs/wire"
)

// ReserveAhead is how many seqs above the one being accepted a gateway
// reserves in the record at once (wire.SessionSeqReserve: the worlds'
// dedupe window is sized by it).
const ReserveAhead = wire.SessionSeqReserve

// RecentMax is how many recent commands a record remembers for resends.
const RecentMax = 256

// Entry is one accepted command: its client seq and digest.
type Entry struct {
	Seq    uint64
	Digest uint64
}

// Record is the shared state of one session.
type Record struct {
	Player    string    `json:"player"`
	Name      string    `json:"name,omitempty"`
	Start     time.Time `json:"start"`
	Zone      string    `json:"zone,omitempty"`
	LastSeq   uint64    `json:"last_seq"`
	RecentTo  uint64    `json:"recent_to,omitempty"`
	Recent    []Entry   `json:"-"`
	RecentBin []byte    `json:"recent,omitempty"` // Recent, encoded (uvarint seq delta + 8-byte digest)
	Gateway   string    `json:"gateway,omitempty"`
	WrittenAt time.Time `json:"written_at"`
	// Open: a connection holds the session (false after a clean close or a
	// hand-over). A record found open whose connection does not answer the
	// hand-over belongs to a crashed gateway.
	Open bool `json:"open,omitempty"`
	// After such a crash, seqs in (UnknownFrom, UnknownTo] may have been
	// used after UnknownAt without being recorded; only JetStream's
	// duplicate check (within its window of UnknownAt) can tell a resend
	// from a reuse. Carried over by later writes.
	UnknownFrom uint64    `json:"unknown_from,omitempty"`
	UnknownTo   uint64    `json:"unknown_to,omitempty"`
	UnknownAt   time.Time `json:"unknown_at,omitzero"`
}

// WidenUnknown makes (from, LastSeq] unknown since at, keeping an earlier
// unknown range that is still inside the duplicate window (the union, with
// the earlier time: the conservative choice).
func (r *Record) WidenUnknown(from uint64, at time.Time, window time.Duration) {
	if r.UnknownTo != 0 && time.Since(r.UnknownAt) < window {
		from = min(from, r.UnknownFrom)
		if r.UnknownAt.Before(at) {
			at = r.UnknownAt
		}
	}
	r.UnknownFrom, r.UnknownTo, r.UnknownAt = from, r.LastSeq, at
}

// Lookup answers whether seq is among the recent commands and its digest.
func (r *Record) Lookup(seq uint64) (uint64, bool) {
	for i := len(r.Recent) - 1; i >= 0; i-- {
		if r.Recent[i].Seq == seq {
			return r.Recent[i].Digest, true
		}
	}
	return 0, false
}

func encodeRecent(es []Entry) []byte {
	b := make([]byte, 0, len(es)*10)
	var prev uint64
	for _, e := range es {
		b = binary.AppendUvarint(b, e.Seq-prev)
		b = binary.BigEndian.AppendUint64(b, e.Digest)
		prev = e.Seq
	}
	return b
}

func decodeRecent(b []byte) ([]Entry, error) {
	var es []Entry
	var prev uint64
	for len(b) > 0 {
		d, n := binary.Uvarint(b)
		if n <= 0 || len(b) < n+8 || len(es) >= RecentMax {
			return nil, errors.New("session: bad recent list")
		}
		prev += d
		es = append(es, Entry{Seq: prev, Digest: binary.BigEndian.Uint64(b[n:])})
		b = b[n+8:]
	}
	return es, nil
}

// Marshal encodes r.
func (r Record) Marshal() ([]byte, error) {
	r.RecentBin = encodeRecent(r.Recent)
	return json.Marshal(r)
}

// Unmarshal decodes a record written by Marshal.
func Unmarshal(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("session: bad record: %w", err)
	}
	es, err := decodeRecent(r.RecentBin)
	if err != nil {
		return Record{}, err
	}
	r.Recent, r.RecentBin = es, nil
	return r, nil
}

// Digest is the fingerprint of a client packet without its seq: FNV-1a 64
// over every field except field 1 (seq), in wire order. A resend of the same
// command has the same digest on every gateway.
func Digest(pkt []byte) uint64 {
	h := fnv.New64a()
	b := pkt
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			break
		}
		if num != 1 {
			_, _ = h.Write(b[:n+m])
		}
		b = b[n+m:]
	}
	return h.Sum64()
}

// Ring is the last RecentMax accepted commands of one connection (owned by
// its reader goroutine).
type Ring struct {
	es   [RecentMax]Entry
	n    int // entries held
	next int // next slot
}

// Add records an accepted command.
func (g *Ring) Add(seq, digest uint64) {
	g.es[g.next] = Entry{Seq: seq, Digest: digest}
	g.next = (g.next + 1) % RecentMax
	if g.n < RecentMax {
		g.n++
	}
}

// Lookup finds seq's digest.
func (g *Ring) Lookup(seq uint64) (uint64, bool) {
	for i := 0; i < g.n; i++ {
		e := g.es[(g.next-1-i+2*RecentMax)%RecentMax]
		if e.Seq == seq {
			return e.Digest, true
		}
	}
	return 0, false
}

// Entries returns the entries oldest first.
func (g *Ring) Entries() []Entry {
	out := make([]Entry, 0, g.n)
	for i := g.n - 1; i >= 0; i-- {
		out = append(out, g.es[(g.next-1-i+2*RecentMax)%RecentMax])
	}
	return out
}

// Seed fills the ring with a resumed record's entries (oldest first).
func (g *Ring) Seed(es []Entry) {
	for _, e := range es {
		g.Add(e.Seq, e.Digest)
	}
}

// Store is the shared session table.
type Store struct {
	kv       jetstream.KeyValue
	lifetime time.Duration
}

// NewID returns a random, subject-safe session id.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "s" + hex.EncodeToString(b[:])
}

// Open creates or updates the sessions bucket (TTL lifetime) and returns it.
func Open(ctx context.Context, js jetstream.JetStream, lifetime time.Duration, replicas int) (*Store, error) {
	kv, err := wire.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      wire.KVSessions,
		Description: "client sessions shared by every gateway (resume state)",
		TTL:         lifetime,
		History:     1,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("session: bucket %s: %w", wire.KVSessions, err)
	}
	return &Store{kv: kv, lifetime: lifetime}, nil
}

// ErrNotFound: no record (never opened, or expired).
var ErrNotFound = errors.New("session: not found")

// Get returns the record of session id.
func (s *Store) Get(ctx context.Context, id string) (Record, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, fmt.Errorf("session: get %s: %w", id, err)
	}
	return Unmarshal(e.Value())
}

// ErrMoved: the record was written by another connection since this one
// read or wrote it (a later resume owns the session); nothing was written.
var ErrMoved = errors.New("session: the record changed since it was read (another connection owns the session)")

// GetRev returns the record of session id and its revision, for Update.
func (s *Store) GetRev(ctx context.Context, id string) (Record, uint64, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Record{}, 0, ErrNotFound
	}
	if err != nil {
		return Record{}, 0, fmt.Errorf("session: get %s: %w", id, err)
	}
	r, err := Unmarshal(e.Value())
	return r, e.Revision(), err
}

// Update writes the record of session id only if its revision is still rev
// (0: only if there is none), and returns the new revision. A connection's
// writes are conditional on its own last write, so a late write of a
// connection the session has left (its close, delayed on a loaded
// gateway) cannot overwrite the record of the connection that resumed it:
// that stale record would give the next resume a last_seq below seqs
// already acknowledged. It returns ErrMoved when another write came first.
func (s *Store) Update(ctx context.Context, id string, r Record, rev uint64) (uint64, error) {
	r.WrittenAt = time.Now()
	b, err := r.Marshal()
	if err != nil {
		return 0, err
	}
	var n uint64
	if rev == 0 {
		n, err = s.kv.Create(ctx, id, b)
	} else {
		n, err = s.kv.Update(ctx, id, b, rev)
	}
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return 0, fmt.Errorf("session %s: %w", id, ErrMoved)
	}
	return 0, fmt.Errorf("session: update %s: %w", id, err)
}

// Put writes the record of session id (WrittenAt is set to now).
func (s *Store) Put(ctx context.Context, id string, r Record) error {
	r.WrittenAt = time.Now()
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, id, b); err != nil {
		return fmt.Errorf("session: put %s: %w", id, err)
	}
	return nil
}

// DenyList is the revocation list.
type DenyList struct{ kv jetstream.KeyValue }

// OpenDenyList creates or updates the deny list bucket (entries live ttl,
// at least the longest token life) and returns it.
func OpenDenyList(ctx context.Context, js jetstream.JetStream, ttl time.Duration, replicas int) (*DenyList, error) {
	kv, err := wire.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      wire.KVRevoked,
		Description: "revoked players (player.<id>: RFC 3339 time), sessions (session.<id>) and tokens (token.<jti>)",
		TTL:         ttl,
		History:     1,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("session: bucket %s: %w", wire.KVRevoked, err)
	}
	return &DenyList{kv: kv}, nil
}

// ErrRevoked is returned by Check for a revoked player, session or token.
var ErrRevoked = errors.New("session: revoked")

// Check refuses a token of player issued at iat, with token id jti, for
// session sid (each may be empty) when the deny list names it.
func (d *DenyList) Check(ctx context.Context, player string, iat time.Time, jti, sid string) error {
	if player != "" {
		e, err := d.kv.Get(ctx, "player."+player)
		switch {
		case err == nil:
			at, perr := time.Parse(time.RFC3339, string(e.Value()))
			// An unparsable value revokes every token: fail closed.
			if perr != nil || !iat.After(at) {
				return fmt.Errorf("%w: player %s (tokens issued at or before %s)", ErrRevoked, player, string(e.Value()))
			}
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return fmt.Errorf("session: deny list: %w", err)
		}
	}
	for _, k := range []string{"session." + sid, "token." + jti} {
		if k == "session." || k == "token." || !validKey(k) {
			continue
		}
		_, err := d.kv.Get(ctx, k)
		if err == nil {
			return fmt.Errorf("%w: %s", ErrRevoked, k)
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("session: deny list: %w", err)
		}
	}
	return nil
}

// Revoke adds key (player.<id>, session.<id>, token.<jti>) to the deny
// list; for a player the value is now (tokens issued until now are refused).
func (d *DenyList) Revoke(ctx context.Context, key string) error {
	if !validKey(key) {
		return fmt.Errorf("session: deny list key %q", key)
	}
	_, err := d.kv.Put(ctx, key, []byte(time.Now().UTC().Format(time.RFC3339)))
	return err
}

func validKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return k != ""
}

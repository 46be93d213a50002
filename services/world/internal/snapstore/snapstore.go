// Package snapstore stores zone snapshots of any size. A snapshot that fits
// in one KV value (well under the server's max payload) is the value of key
// <zone> in the world_snapshots bucket, as always. A larger one goes to the
// JetStream object store (bucket world_snapshot_chunks, which chunks it), and
// the KV value becomes its index: a ZoneSnapshot with zone, last_seq, fence,
// tick, events and object = the object's name. Readers (recovery, time
// travel, trimming) go through Decode, so both forms read the same.
//
// Objects are named <zone>/<last_seq>/<fence>, never overwritten, and those
// no longer referenced by the bucket's history are deleted after a put that
// may have left one behind (see collectOnce).
package snapstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
)

// BucketChunks is the object store bucket of large snapshots.
const BucketChunks = "world_snapshot_chunks"

// DefaultInline is the largest snapshot kept inline in the KV value: the
// server's default max payload is 1 MiB, and a KV put carries headers too.
const DefaultInline = 512 << 10

// Store writes and reads snapshots.
type Store struct {
	KV jetstream.KeyValue
	// Obj is the object store for large snapshots; nil means inline only
	// (a snapshot larger than the max payload then fails to store).
	Obj jetstream.ObjectStore
	// Inline is the size above which a snapshot goes to Obj (default DefaultInline).
	Inline int

	mu   sync.Mutex
	left map[string]bool // zone -> objects of it may be left (absent: no put yet)
}

// Open returns a Store over kv with the chunk bucket ensured (same replicas).
func Open(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, replicas int) (*Store, error) {
	obj, err := js.ObjectStore(ctx, BucketChunks)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obj, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: BucketChunks,
			Description: "zone snapshots too large for one KV value", Replicas: max(replicas, 1), Storage: jetstream.FileStorage})
	}
	if err != nil {
		return nil, fmt.Errorf("snapstore: object store %s: %w", BucketChunks, err)
	}
	return &Store{KV: kv, Obj: obj}, nil
}

// Put stores snap as the zone's latest snapshot and returns its size in bytes.
func (s *Store) Put(ctx context.Context, snap *schema.ZoneSnapshot) (int, error) {
	b, err := Marshal(snap)
	if err != nil {
		return 0, err
	}
	return len(b), s.PutBytes(ctx, Header(snap), b)
}

// Marshal encodes a snapshot as Put stores it (deterministic).
func Marshal(snap *schema.ZoneSnapshot) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(snap)
}

// Header is the part of a snapshot an index holds: zone, position, fence,
// tick, event count and time, no state. A zone that writes its snapshots in
// the background marshals the state in its tick and keeps only this.
func Header(snap *schema.ZoneSnapshot) *schema.ZoneSnapshot {
	return &schema.ZoneSnapshot{Zone: snap.Zone, LastSeq: snap.LastSeq, Fence: snap.Fence, Tick: snap.Tick, Events: snap.Events,
		LastEventNs: snap.LastEventNs}
}

// PutBytes stores b, the Marshal of a snapshot whose Header is h, as the
// zone's latest snapshot.
func (s *Store) PutBytes(ctx context.Context, h *schema.ZoneSnapshot, b []byte) error {
	inline := s.Inline
	if inline == 0 {
		inline = DefaultInline
	}
	if len(b) <= inline || s.Obj == nil {
		if _, err := s.KV.Put(ctx, h.Zone, b); err != nil {
			return fmt.Errorf("snapstore: put %s (%d bytes): %w", h.Zone, len(b), err)
		}
		return s.collectOnce(ctx, h.Zone, false)
	}
	name := h.Zone + "/" + strconv.FormatUint(h.LastSeq, 10) + "/" + strconv.FormatUint(h.Fence, 10)
	if _, err := s.Obj.PutBytes(ctx, name, b); err != nil {
		return fmt.Errorf("snapstore: put object %s (%d bytes): %w", name, len(b), err)
	}
	idx := &schema.ZoneSnapshot{Zone: h.Zone, LastSeq: h.LastSeq, Fence: h.Fence, Tick: h.Tick, Events: h.Events,
		LastEventNs: h.LastEventNs, Object: name}
	ib, err := proto.Marshal(idx)
	if err != nil {
		return err
	}
	if _, err := s.KV.Put(ctx, h.Zone, ib); err != nil {
		return fmt.Errorf("snapstore: put index of %s: %w", name, err)
	}
	return s.collectOnce(ctx, h.Zone, true)
}

// Latest returns the zone's latest snapshot (nil, nil when there is none).
func (s *Store) Latest(ctx context.Context, zone string) (*schema.ZoneSnapshot, error) {
	e, err := s.KV.Get(ctx, zone)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.Decode(ctx, e.Value())
}

// Decode reads one KV value of the snapshot bucket: an inline snapshot, or
// the index of a chunked one (fetched from the object store).
func (s *Store) Decode(ctx context.Context, value []byte) (*schema.ZoneSnapshot, error) {
	snap := &schema.ZoneSnapshot{}
	if err := proto.Unmarshal(value, snap); err != nil {
		return nil, fmt.Errorf("snapstore: unreadable snapshot: %w", err)
	}
	if snap.Object == "" {
		return snap, nil
	}
	if s.Obj == nil {
		return nil, fmt.Errorf("snapstore: snapshot %s is chunked but no object store is open", snap.Object)
	}
	b, err := s.Obj.GetBytes(ctx, snap.Object)
	if err != nil {
		return nil, fmt.Errorf("snapstore: snapshot object %s: %w", snap.Object, err)
	}
	full := &schema.ZoneSnapshot{}
	if err := proto.Unmarshal(b, full); err != nil {
		return nil, fmt.Errorf("snapstore: snapshot object %s: %w", snap.Object, err)
	}
	if full.Zone != snap.Zone || full.LastSeq != snap.LastSeq {
		return nil, fmt.Errorf("snapstore: snapshot object %s holds %s@%d", snap.Object, full.Zone, full.LastSeq)
	}
	return full, nil
}

// collectOnce deletes the objects of zone that no index in the bucket's
// history names. Listing the history and the objects takes a few JetStream
// requests, so it runs only while objects of the zone are left: on the first
// put of a zone by this Store (leftovers of an earlier owner), then after each
// put as long as an object remains (one stays referenced until its index
// leaves the bucket's history, at most 64 revisions deep).
func (s *Store) collectOnce(ctx context.Context, zone string, chunked bool) error {
	s.mu.Lock()
	if s.left == nil {
		s.left = map[string]bool{}
	}
	left, seen := s.left[zone]
	s.mu.Unlock()
	if seen && !left && !chunked {
		return nil // no object of this zone is left
	}
	n := s.collect(ctx, zone)
	s.mu.Lock()
	s.left[zone] = n != 0 // objects left, or unknown (-1): look again next time
	s.mu.Unlock()
	return nil
}

// collect deletes the zone's objects that no revision in the bucket's
// history references any more and returns how many of its objects are left
// (-1: unknown, the listing failed).
func (s *Store) collect(ctx context.Context, zone string) (left int) {
	if s.Obj == nil {
		return 0
	}
	revs, err := s.KV.History(ctx, zone)
	if err != nil {
		return -1 // nothing to compare with: keep everything
	}
	keep := map[string]bool{}
	for _, e := range revs {
		idx := &schema.ZoneSnapshot{}
		if proto.Unmarshal(e.Value(), idx) == nil && idx.Object != "" {
			keep[idx.Object] = true
		}
	}
	objs, err := s.Obj.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0
	}
	if err != nil {
		return -1
	}
	for _, o := range objs {
		if !strings.HasPrefix(o.Name, zone+"/") {
			continue
		}
		if keep[o.Name] || s.Obj.Delete(ctx, o.Name) != nil {
			left++
		}
	}
	return left
}

// Package pebblestore is the Pebble backend of persist (one machine, no
// Postgres): the same exactly-once Write and the same queries as pgstore.
//
// Keys (all integers big-endian, so byte order is numeric order):
//
//	e <zone> 0x00 <ts+2^63:8> <seq:8>  -> event value (encodeEvent)   range scans by zone and time
//	s <seq:8>                          -> <zone> 0x00 <ts+2^63:8>     "is this seq stored?" index
//	h                                  -> high-water mark <seq:8>
//	p <player>                         -> JSON playerRec (store.Player + field sequences)
//	t <player> 0x00 <seq:8> <kind>     -> empty                       kill/death tally (idempotent)
//	z <zone>                           -> JSON store.ZoneSummary
//
// Zones and players are subject tokens / ids without 0x00, so the separator
// is unambiguous. One Write is one Pebble batch committed with Sync; writes
// are serialized by a mutex (the high-water-mark rule of pgstore applies:
// seq > mark needs no lookup).
package pebblestore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble"

	"github.com/realmstream/realmstream/services/persist/internal/store"
)

// Store is the Pebble store.
type Store struct {
	db      *pebble.DB
	mu      sync.Mutex // serializes Write
	hwm     uint64
	written int64
}

// Open opens (or creates) the store in dir.
func Open(dir string) (*Store, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: quiet{}})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	s := &Store{db: db}
	v, closer, err := db.Get([]byte("h"))
	if err == nil {
		if len(v) == 8 {
			s.hwm = binary.BigEndian.Uint64(v)
		}
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		db.Close()
		return nil, err
	}
	return s, nil
}

// DB exposes the Pebble handle (metrics).
func (s *Store) DB() *pebble.DB { return s.db }

// RowsWritten is how many events this process stored.
func (s *Store) RowsWritten() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func u64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func tsKey(ts int64) uint64 { return uint64(ts) ^ (1 << 63) }

func eventKey(zone string, ts int64, seq uint64) []byte {
	k := make([]byte, 0, 2+len(zone)+16)
	k = append(k, 'e')
	k = append(k, zone...)
	k = append(k, 0)
	k = u64(k, tsKey(ts))
	return u64(k, seq)
}

func seqKey(seq uint64) []byte { return u64([]byte{'s'}, seq) }

// encodeEvent: fence:8, then uvarint-length-prefixed event_id, player_id,
// type, then the payload to the end.
func encodeEvent(r *store.Record) []byte {
	b := make([]byte, 0, 8+len(r.EventID)+len(r.PlayerID)+len(r.Type)+len(r.Payload)+6)
	b = u64(b, r.Fence)
	for _, s := range []string{r.EventID, r.PlayerID, r.Type} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, r.Payload...)
}

// decodeEvent is the inverse of encodeEvent (fuzzed).
func decodeEvent(b []byte, e *store.EventRow) error {
	if len(b) < 8 {
		return errors.New("pebblestore: short event value")
	}
	e.Fence = binary.BigEndian.Uint64(b)
	b = b[8:]
	var strs [3]string
	for i := range strs {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return errors.New("pebblestore: bad event value")
		}
		strs[i] = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	e.EventID, e.PlayerID, e.Type = strs[0], strs[1], strs[2]
	e.Payload = append([]byte(nil), b...)
	return nil
}

// decodeEventKey parses an e-key (fuzzed).
func decodeEventKey(k []byte, e *store.EventRow) error {
	if len(k) < 1+1+16 || k[0] != 'e' || k[len(k)-17] != 0 {
		return errors.New("pebblestore: bad event key")
	}
	e.Zone = string(k[1 : len(k)-17])
	e.TSNs = int64(binary.BigEndian.Uint64(k[len(k)-16:]) ^ (1 << 63))
	e.Seq = binary.BigEndian.Uint64(k[len(k)-8:])
	return nil
}

func (s *Store) exists(r pebble.Reader, k []byte) (bool, error) {
	_, c, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c.Close()
	return true, nil
}

func getJSON(r pebble.Reader, k []byte, v any) (bool, error) {
	b, c, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer c.Close()
	return true, json.Unmarshal(b, v)
}

func setJSON(b *pebble.Batch, k []byte, v any) error {
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Set(k, j, nil)
}

// playerRec is a stored player: the read model and the sequence of the event
// that last set each field group (see store.FieldSeqs).
type playerRec struct {
	store.Player
	Seqs store.FieldSeqs `json:"field_seqs"`
}

func getPlayer(r pebble.Reader, k []byte, p *playerRec) error {
	if _, err := getJSON(r, k, p); err != nil {
		return err
	}
	store.LegacySeqs(&p.Player, &p.Seqs)
	return nil
}

// Write stores a batch exactly once.
func (s *Store) Write(ctx context.Context, recs []store.Record) (store.WriteResult, error) {
	var res store.WriteResult
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewIndexedBatch()
	defer b.Close()
	hwm := s.hwm
	var inserted []store.Record
	seen := map[uint64]bool{}
	for i := range recs {
		r := &recs[i]
		if seen[r.Seq] {
			continue
		}
		seen[r.Seq] = true
		if r.Seq <= s.hwm {
			res.Slow++
			ok, err := s.exists(b, seqKey(r.Seq))
			if err != nil {
				return res, err
			}
			if ok {
				res.Skipped++
				continue
			}
		}
		ek := eventKey(r.Zone, r.TSNs, r.Seq)
		if err := b.Set(ek, encodeEvent(r), nil); err != nil {
			return res, err
		}
		if err := b.Set(seqKey(r.Seq), ek[1:], nil); err != nil {
			return res, err
		}
		inserted = append(inserted, *r)
		hwm = max(hwm, r.Seq)
	}
	res.Inserted = len(inserted)
	for _, d := range store.ZoneDeltas(inserted) {
		k := append([]byte{'z'}, d.Zone...)
		var z store.ZoneSummary
		if _, err := getJSON(b, k, &z); err != nil {
			return res, err
		}
		z.Zone = d.Zone
		z.Events += d.Events
		if d.LastSeq > z.LastSeq {
			z.LastSeq, z.LastTSNs = d.LastSeq, d.LastTSNs
		}
		z.Players += d.Players
		z.Deaths += d.Deaths
		if err := setJSON(b, k, z); err != nil {
			return res, err
		}
	}
	patches, tallies := store.Project(recs)
	for _, pp := range patches {
		k := append([]byte{'p'}, pp.PlayerID...)
		var p playerRec
		if err := getPlayer(b, k, &p); err != nil {
			return res, err
		}
		if store.ApplyPatch(&p.Player, &p.Seqs, pp) {
			if err := setJSON(b, k, p); err != nil {
				return res, err
			}
		}
	}
	for _, t := range tallies {
		tk := append(append(append([]byte{'t'}, t.PlayerID...), 0), u64(nil, t.Seq)...)
		tk = append(tk, t.Kind)
		ok, err := s.exists(b, tk)
		if err != nil {
			return res, err
		}
		if ok {
			continue
		}
		if err := b.Set(tk, nil, nil); err != nil {
			return res, err
		}
		k := append([]byte{'p'}, t.PlayerID...)
		var p playerRec
		if err := getPlayer(b, k, &p); err != nil {
			return res, err
		}
		p.PlayerID = t.PlayerID
		if t.Kind == 'k' {
			p.Kills++
		} else {
			p.Deaths++
		}
		if err := setJSON(b, k, p); err != nil {
			return res, err
		}
	}
	if hwm > s.hwm {
		if err := b.Set([]byte("h"), u64(nil, hwm), nil); err != nil {
			return res, err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return res, err
	}
	s.hwm = hwm
	s.written += int64(res.Inserted)
	return res, nil
}

// ZoneEvents scans e<zone>0x00<from> .. e<zone>0x00<to>.
func (s *Store) ZoneEvents(ctx context.Context, q store.ZoneEventsQuery) ([]store.EventRow, error) {
	q, err := q.Normalize()
	if err != nil {
		return nil, err
	}
	lo := eventKey(q.Zone, q.FromNs, 0)
	hi := eventKey(q.Zone, q.ToNs, 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []store.EventRow
	for it.First(); it.Valid() && len(out) < q.Limit; it.Next() {
		var e store.EventRow
		if err := decodeEventKey(it.Key(), &e); err != nil {
			return nil, err
		}
		if e.Seq <= q.AfterSeq {
			continue
		}
		if err := decodeEvent(it.Value(), &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, it.Error()
}

// Player returns the player read model.
func (s *Store) Player(ctx context.Context, id string) (store.Player, bool, error) {
	var p playerRec
	ok, err := getJSON(s.db, append([]byte{'p'}, id...), &p)
	return p.Player, ok, err
}

// Zone returns the zone summary.
func (s *Store) Zone(ctx context.Context, zone string) (store.ZoneSummary, bool, error) {
	var z store.ZoneSummary
	ok, err := getJSON(s.db, append([]byte{'z'}, zone...), &z)
	return z, ok, err
}

// Metrics returns a flat view of Pebble's metrics for DB stats events.
func (s *Store) Metrics() map[string]float64 {
	m := s.db.Metrics()
	out := map[string]float64{
		"disk_space_bytes":      float64(m.DiskSpaceUsage()),
		"memtable_bytes":        float64(m.MemTable.Size),
		"memtable_count":        float64(m.MemTable.Count),
		"wal_bytes":             float64(m.WAL.Size),
		"wal_bytes_written":     float64(m.WAL.BytesWritten),
		"compactions":           float64(m.Compact.Count),
		"compaction_debt_bytes": float64(m.Compact.EstimatedDebt),
		"flushes":               float64(m.Flush.Count),
		"read_amp":              float64(m.ReadAmp()),
		"l0_files":              float64(m.Levels[0].NumFiles),
		"l0_sublevels":          float64(m.Levels[0].Sublevels),
		"block_cache_hits":      float64(m.BlockCache.Hits),
		"block_cache_misses":    float64(m.BlockCache.Misses),
		"table_count":           float64(m.Total().NumFiles),
		"high_water_mark":       float64(s.hwmLocked()),
	}
	return out
}

func (s *Store) hwmLocked() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hwm
}

// quiet drops Pebble's informational logging (WAL replay notes).
type quiet struct{}

func (quiet) Infof(string, ...any)      {}
func (quiet) Errorf(f string, a ...any) { fmt.Printf("pebble: "+f+"\n", a...) }
func (quiet) Fatalf(f string, a ...any) { panic(fmt.Sprintf("pebble: "+f, a...)) }

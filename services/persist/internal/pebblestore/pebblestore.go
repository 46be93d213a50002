// Package pebblestore is the Pebble backend of persist (one machine, no
// Postgres): the same exactly-once Write and the same queries as pgstore.
//
// Keys (all integers big-endian, so byte order is numeric order):
//
//	E <zone> 0x00 <ts+2^63:8> <seq:8> <idx:4> -> event value (encodeEvent)  range scans by zone and time
//	q <zone> 0x00 <seq:8> <idx:4>             -> <ts+2^63:8>               range scans by zone and stream position
//	s <seq:8>                                 -> <zone> 0x00 <ts+2^63:8>   "is this message stored?" (one per message)
//	h                                         -> high-water mark <seq:8>
//	p <player>                                -> JSON playerRec (store.Player + field sequences)
//	t <player> 0x00 <seq:8> <idx:4> <kind>    -> empty                     kill/death tally (idempotent)
//	m <zone> 0x00 <player>                    -> <seq:8> <present:1>       zone membership (store.Membership)
//	z <zone>                                  -> JSON store.ZoneSummary
//
// Before tick records (one event per message) event keys were
// e <zone> 0x00 <ts:8> <seq:8> and tallies t <player> 0x00 <seq:8> <kind>:
// Open rewrites every e key to its E and q keys at index 0 (idempotent; any
// e key left by a crash is rewritten at the next Open), and a tally at
// index 0 also finds its legacy key, so a legacy message redelivered after
// the upgrade counts nothing twice. Zones and players are subject tokens /
// ids without 0x00, so the separator is unambiguous; keys starting with 'A'
// belong to internal/accounts.
//
// One Write is one Pebble batch committed with Sync (the pipeline calls it
// once per fetched JetStream batch); writes are serialized by a mutex (the
// high-water-mark rule of pgstore applies per message: seq > mark needs no
// lookup).
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

	// The player and zone read models as last committed by Write, so a batch
	// reads (and JSON-decodes) from Pebble only the players it has not seen
	// recently: most batches touch the same online players again, and the
	// lookups were a tenth of persist's CPU at 10k events/s. Write is the
	// only writer of p and z keys in this process (Pebble locks the
	// directory), so the copies cannot go stale; they are updated only after
	// a batch commits. Guarded by mu; bounded by cacheMax entries each.
	players  map[string]playerRec
	zones    map[string]store.ZoneSummary
	cacheMax int
}

// defaultCacheMax bounds each read-model cache (a player record is ~150
// bytes with its key, so ~30 MB at most).
const defaultCacheMax = 200_000

// Open opens (or creates) the store in dir.
func Open(dir string) (*Store, error) {
	// A batch of a fetched JetStream batch is ~25k events (several MB); a
	// memtable smaller than twice that turns every such batch into a
	// flushable batch (an L0 file and a compaction per Write), so the
	// memtable is sized for them.
	db, err := pebble.Open(dir, &pebble.Options{Logger: quiet{}, MemTableSize: 64 << 20})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	s := &Store{db: db, players: map[string]playerRec{}, zones: map[string]store.ZoneSummary{}, cacheMax: defaultCacheMax}
	if _, err := migrateLegacy(db); err != nil {
		db.Close()
		return nil, err
	}
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

func eventKey(zone string, ts int64, seq uint64, idx uint32) []byte {
	k := make([]byte, 0, 2+len(zone)+20)
	k = append(k, 'E')
	k = append(k, zone...)
	k = append(k, 0)
	k = u64(k, tsKey(ts))
	k = u64(k, seq)
	return binary.BigEndian.AppendUint32(k, idx)
}

func seqKey(seq uint64) []byte { return u64([]byte{'s'}, seq) }

func posKey(zone string, seq uint64, idx uint32) []byte {
	k := make([]byte, 0, 2+len(zone)+12)
	k = append(k, 'q')
	k = append(k, zone...)
	k = append(k, 0)
	k = u64(k, seq)
	return binary.BigEndian.AppendUint32(k, idx)
}

func tallyKey(t store.Tally) []byte {
	k := make([]byte, 0, len(t.PlayerID)+15)
	k = append(append(append(k, 't'), t.PlayerID...), 0)
	k = u64(k, t.Seq)
	k = binary.BigEndian.AppendUint32(k, t.Index)
	return append(k, t.Kind)
}

func legacyTallyKey(t store.Tally) []byte {
	k := append(append(append([]byte{'t'}, t.PlayerID...), 0), u64(nil, t.Seq)...)
	return append(k, t.Kind)
}

func memberKey(zone, player string) []byte {
	k := make([]byte, 0, 2+len(zone)+len(player))
	k = append(append(append(k, 'm'), zone...), 0)
	return append(k, player...)
}

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

// decodeEventKey parses an E key (fuzzed).
func decodeEventKey(k []byte, e *store.EventRow) error {
	if len(k) < 1+1+20 || k[0] != 'E' || k[len(k)-21] != 0 {
		return errors.New("pebblestore: bad event key")
	}
	e.Zone = string(k[1 : len(k)-21])
	e.TSNs = int64(binary.BigEndian.Uint64(k[len(k)-20:]) ^ (1 << 63))
	e.Seq = binary.BigEndian.Uint64(k[len(k)-12:])
	e.Index = binary.BigEndian.Uint32(k[len(k)-4:])
	return nil
}

// migrateLegacy rewrites every legacy e key (one event per message, no
// index) to its E and q keys at index 0, in synced batches.
func migrateLegacy(db *pebble.DB) (int, error) {
	n := 0
	for {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte("e"), UpperBound: []byte("f")})
		if err != nil {
			return n, err
		}
		b := db.NewBatch()
		moved := 0
		for it.First(); it.Valid() && moved < 10000; it.Next() {
			k := it.Key()
			if len(k) < 1+1+16 || k[len(k)-17] != 0 {
				it.Close()
				b.Close()
				return n, fmt.Errorf("pebblestore: legacy event key %x not understood", k)
			}
			zone := string(k[1 : len(k)-17])
			ts := int64(binary.BigEndian.Uint64(k[len(k)-16:]) ^ (1 << 63))
			seq := binary.BigEndian.Uint64(k[len(k)-8:])
			_ = b.Set(eventKey(zone, ts, seq, 0), it.Value(), nil)
			_ = b.Set(posKey(zone, seq, 0), u64(nil, tsKey(ts)), nil)
			_ = b.Delete(k, nil)
			moved++
		}
		err = it.Close()
		if err == nil && moved > 0 {
			err = b.Commit(pebble.Sync)
		}
		b.Close()
		n += moved
		if err != nil || moved == 0 {
			return n, err
		}
	}
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

// Write stores a batch exactly once, in one synced Pebble batch. A message
// (all Records of one Seq) is stored whole or not at all: its s key says
// it is stored.
func (s *Store) Write(ctx context.Context, recs []store.Record) (store.WriteResult, error) {
	var res store.WriteResult
	s.mu.Lock()
	defer s.mu.Unlock()
	// A plain (unindexed) batch: every read below is of committed state
	// (s.db; Write is serialized by s.mu) and what this batch changes is
	// kept in memory (msgs, players, tallies), so the batch needs no index.
	b := s.db.NewBatch()
	defer b.Close()
	hwm := s.hwm
	inserted := make([]store.Record, 0, len(recs))
	// Per message: whether it is inserted (decided at its first record) and
	// the next index expected, so a second copy of a message in one batch
	// (carried over and redelivered) counts once.
	type msg struct {
		ins  bool
		next uint32
	}
	msgs := make(map[uint64]*msg, len(recs)/8+1)
	for i := range recs {
		r := &recs[i]
		m := msgs[r.Seq]
		if m == nil {
			m = &msg{ins: true}
			if r.Seq <= s.hwm {
				res.Slow++
				stored, err := s.exists(s.db, seqKey(r.Seq))
				if err != nil {
					return res, err
				}
				m.ins = !stored
			}
			if m.ins {
				v := append(append(append(make([]byte, 0, len(r.Zone)+9), r.Zone...), 0), u64(nil, tsKey(r.TSNs))...)
				if err := b.Set(seqKey(r.Seq), v, nil); err != nil {
					return res, err
				}
			}
			msgs[r.Seq] = m
		}
		if !m.ins || r.Index < m.next {
			res.Skipped++
			continue
		}
		m.next = r.Index + 1
		ek := eventKey(r.Zone, r.TSNs, r.Seq, r.Index)
		if err := b.Set(ek, encodeEvent(r), nil); err != nil {
			return res, err
		}
		if err := b.Set(posKey(r.Zone, r.Seq, r.Index), u64(nil, tsKey(r.TSNs)), nil); err != nil {
			return res, err
		}
		inserted = append(inserted, *r)
		hwm = max(hwm, r.Seq)
	}
	res.Inserted = len(inserted)
	members := map[string]int64{} // zone -> change of present members
	for _, m := range store.Memberships(recs) {
		k := memberKey(m.Zone, m.PlayerID)
		v, c, err := s.db.Get(k)
		var oldSeq uint64
		oldPresent := false
		if err == nil {
			if len(v) == 9 {
				oldSeq, oldPresent = binary.BigEndian.Uint64(v), v[8] == 1
			}
			c.Close()
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return res, err
		}
		if m.Seq <= oldSeq {
			continue
		}
		nv := u64(nil, m.Seq)
		if m.Present {
			nv = append(nv, 1)
		} else {
			nv = append(nv, 0)
		}
		if err := b.Set(k, nv, nil); err != nil {
			return res, err
		}
		switch {
		case m.Present && !oldPresent:
			members[m.Zone]++
		case !m.Present && oldPresent:
			members[m.Zone]--
		}
	}
	deltas := store.ZoneDeltas(inserted)
	for z := range members {
		found := false
		for _, d := range deltas {
			if d.Zone == z {
				found = true
			}
		}
		if !found {
			deltas = append(deltas, &store.ZoneDelta{Zone: z})
		}
	}
	zones := make(map[string]store.ZoneSummary, len(deltas))
	for _, d := range deltas {
		k := append([]byte{'z'}, d.Zone...)
		z, ok := s.zones[d.Zone]
		if !ok {
			if _, err := getJSON(s.db, k, &z); err != nil {
				return res, err
			}
		}
		z.Zone = d.Zone
		z.Events += d.Events
		if d.LastSeq > z.LastSeq {
			z.LastSeq, z.LastTSNs = d.LastSeq, d.LastTSNs
		}
		z.Players += members[d.Zone]
		z.Deaths += d.Deaths
		if err := setJSON(b, k, z); err != nil {
			return res, err
		}
		zones[d.Zone] = z
	}
	patches, tallies := store.Project(recs)
	players := map[string]*playerRec{}
	changed := map[string]bool{}
	player := func(id string) (*playerRec, error) {
		if p := players[id]; p != nil {
			return p, nil
		}
		p := &playerRec{}
		if c, ok := s.players[id]; ok {
			*p = c // a copy: the cache changes only after the commit
		} else if err := getPlayer(s.db, append([]byte{'p'}, id...), p); err != nil {
			return nil, err
		}
		players[id] = p
		return p, nil
	}
	for _, pp := range patches {
		p, err := player(pp.PlayerID)
		if err != nil {
			return res, err
		}
		if store.ApplyPatch(&p.Player, &p.Seqs, pp) {
			changed[pp.PlayerID] = true
		}
	}
	counted := map[string]bool{}
	for _, t := range tallies {
		tk := tallyKey(t)
		if counted[string(tk)] {
			continue
		}
		ok, err := s.exists(s.db, tk)
		if err == nil && !ok && t.Index == 0 {
			ok, err = s.exists(s.db, legacyTallyKey(t))
		}
		if err != nil {
			return res, err
		}
		counted[string(tk)] = true
		if ok {
			continue
		}
		if err := b.Set(tk, nil, nil); err != nil {
			return res, err
		}
		p, err := player(t.PlayerID)
		if err != nil {
			return res, err
		}
		p.PlayerID = t.PlayerID
		if t.Kind == 'k' {
			p.Kills++
		} else {
			p.Deaths++
		}
		changed[t.PlayerID] = true
	}
	for id := range changed {
		if err := setJSON(b, append([]byte{'p'}, id...), players[id]); err != nil {
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
	for id, p := range players {
		s.players[id] = *p
	}
	for id, z := range zones {
		s.zones[id] = z
	}
	s.boundCaches()
	s.hwm = hwm
	s.written += int64(res.Inserted)
	return res, nil
}

// boundCaches drops a quarter of a cache that grew past cacheMax (Go's map
// iteration order makes it an arbitrary quarter); the dropped records are
// read from Pebble again when their players come back.
func (s *Store) boundCaches() {
	if len(s.players) > s.cacheMax {
		drop := len(s.players) - s.cacheMax*3/4
		for id := range s.players {
			if drop == 0 {
				break
			}
			delete(s.players, id)
			drop--
		}
	}
	if len(s.zones) > s.cacheMax {
		clear(s.zones)
	}
}

// ZoneEvents scans e<zone>0x00<from> .. e<zone>0x00<to>.
func (s *Store) ZoneEvents(ctx context.Context, q store.ZoneEventsQuery) ([]store.EventRow, error) {
	q, err := q.Normalize()
	if err != nil {
		return nil, err
	}
	lo := eventKey(q.Zone, q.FromNs, 0, 0)
	hi := eventKey(q.Zone, q.ToNs, 0, 0)
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

// EventsBySeq scans q<zone>0x00<start> .. q<zone>0x00<to+1> and reads each
// event's value through its E key.
func (s *Store) EventsBySeq(ctx context.Context, q store.SeqRangeQuery) ([]store.EventRow, error) {
	q, err := q.Normalize()
	if err != nil {
		return nil, err
	}
	fromSeq, fromIdx := q.Start()
	lo := posKey(q.Zone, fromSeq, fromIdx)
	hi := append(append(append([]byte{'q'}, q.Zone...), 0), u64(nil, q.ToSeq)...)
	hi = append(hi, 0xff, 0xff, 0xff, 0xff, 0xff) // past every index of ToSeq
	snap := s.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := []store.EventRow{}
	for it.First(); it.Valid() && len(out) < q.Limit; it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 1+len(q.Zone)+1+12 || len(v) != 8 {
			return nil, fmt.Errorf("pebblestore: bad position key %x", k)
		}
		e := store.EventRow{Zone: q.Zone, Seq: binary.BigEndian.Uint64(k[len(k)-12:]), Index: binary.BigEndian.Uint32(k[len(k)-4:])}
		e.TSNs = int64(binary.BigEndian.Uint64(v) ^ (1 << 63))
		val, c, err := snap.Get(eventKey(e.Zone, e.TSNs, e.Seq, e.Index))
		if err != nil {
			return nil, fmt.Errorf("pebblestore: event %d/%d of %s: %w", e.Seq, e.Index, e.Zone, err)
		}
		err = decodeEvent(val, &e)
		c.Close()
		if err != nil {
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

// Package pgstore is the Postgres backend of persist: a set of physical
// databases (shards) addressed through a versioned shard map, the
// exactly-once batch writer, read-model projection, the partition manager
// and the online logical-shard mover.
//
// Exactly-once. Each database keeps a high-water mark H (persist_hwm) that is
// updated in the same transaction as the rows, so every stored row has seq <=
// H. Rows of a batch with seq > H cannot be stored yet and go in with plain
// COPY (the fast path). Rows with seq <= H may be duplicates (a redelivered
// batch) and go through a staging table and INSERT ... ON CONFLICT DO NOTHING
// RETURNING (the slow path); the primary key (seq, ts) is the backstop: a
// unique violation on the fast path rolls back and retries the batch on the
// slow path. Correctness does not depend on delivery order or on one writer:
// the H row is locked FOR UPDATE, which serializes writers per database.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/services/persist/internal/store"
)

// MapSource gives the current shard map (NATS KV in the service).
type MapSource interface {
	Load(ctx context.Context) (shard.Map, uint64, error)
}

// StaticMap is a MapSource that never changes (tests, benchmarks).
type StaticMap struct{ M shard.Map }

// Load returns the map.
func (s StaticMap) Load(context.Context) (shard.Map, uint64, error) { return s.M, 1, nil }

// ErrNotOwner means a database does not own (any more) a logical shard the
// writer's map assigned to it: the map changed; reload it and retry.
var ErrNotOwner = errors.New("pgstore: logical shard not owned by this database (stale shard map)")

// ErrShardDown means a database failed a recent write and is in backoff.
var ErrShardDown = errors.New("pgstore: database in backoff after a failed write")

// DB is one physical database.
type DB struct {
	Name    string
	Pool    *pgxpool.Pool
	written atomic.Int64
	// downUntil (unix ns) is set when a write to the database failed: until
	// then writes to it fail fast with ErrShardDown; failures counts the
	// consecutive failures (the backoff doubles).
	downUntil atomic.Int64
	failures  atomic.Int64
}

// RowsWritten is how many event rows this process stored in the database.
func (d *DB) RowsWritten() int64 { return d.written.Load() }

// Options tune the store.
type Options struct {
	// MaxConns per database pool (default 8).
	MaxConns int32
	// WriteTimeout bounds one database transaction of a batch (default 30s).
	WriteTimeout time.Duration
}

// Store is the sharded Postgres store.
type Store struct {
	log  *slog.Logger
	src  MapSource
	opts Options

	mu  sync.RWMutex
	m   shard.Map
	dbs map[string]*DB
}

// Open loads the map from src and opens a pool per database of the map (pools
// connect lazily, so a database that is down does not stop Open).
func Open(ctx context.Context, src MapSource, opts Options, log *slog.Logger) (*Store, error) {
	if opts.MaxConns == 0 {
		opts.MaxConns = 8
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	s := &Store{log: log, src: src, opts: opts, dbs: map[string]*DB{}}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload fetches the map and opens pools for databases new to it.
func (s *Store) Reload(ctx context.Context) error {
	m, _, err := s.src.Load(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range m.DBs {
		if _, ok := s.dbs[d.Name]; ok {
			continue
		}
		pool, err := NewPool(ctx, d.URL, s.opts.MaxConns)
		if err != nil {
			return fmt.Errorf("pgstore: database %s: %w", d.Name, err)
		}
		s.dbs[d.Name] = &DB{Name: d.Name, Pool: pool}
	}
	if m.Version != s.m.Version && s.m.Version != 0 {
		s.log.Info("shard map reloaded", "from", s.m.Version, "to", m.Version)
	}
	s.m = m
	return nil
}

// NewPool opens a pool with the session settings persist relies on (UTC).
func NewPool(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	cfg.ConnConfig.RuntimeParams["application_name"] = "realmstream-persist"
	return pgxpool.NewWithConfig(ctx, cfg)
}

// Map returns the map in use.
func (s *Store) Map() shard.Map {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m
}

// DBs returns the databases, sorted by name.
func (s *Store) DBs() []*DB {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*DB, 0, len(s.dbs))
	for _, d := range s.dbs {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DB returns the named database or nil.
func (s *Store) DB(name string) *DB {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.dbs[name]
}

// Close closes every pool.
func (s *Store) Close() error {
	for _, d := range s.DBs() {
		d.Pool.Close()
	}
	return nil
}

// SeedOwnership records in every database the logical shards the current map
// assigns to it, where no record exists yet (bootstrap; moves manage them
// afterwards).
func (s *Store) SeedOwnership(ctx context.Context) error {
	m := s.Map()
	for _, d := range s.DBs() {
		owned := m.Owned(d.Name)
		if len(owned) == 0 {
			continue
		}
		ls := make([]int16, len(owned))
		for i, l := range owned {
			ls[i] = int16(l)
		}
		_, err := d.Pool.Exec(ctx, `INSERT INTO shard_owner (logical, state, map_version)
			SELECT unnest($1::int2[]), 'owned', $2 ON CONFLICT (logical) DO NOTHING`, ls, int64(m.Version))
		if err != nil {
			return fmt.Errorf("pgstore: seed ownership in %s: %w", d.Name, err)
		}
	}
	return nil
}

// part is what one batch writes into one database.
type part struct {
	events   []store.Record
	patches  []*store.PlayerPatch
	tallies  []store.Tally
	members  []store.Membership
	logicals map[int]bool
	seqs     map[uint64]bool // messages this part touches (rows or read models)
}

// Write stores a batch: grouped by database, one transaction per database, in
// parallel. It returns after every database committed, or with the first
// error (the batch must then be retried; already committed parts are skipped
// by the high-water mark).
func (s *Store) Write(ctx context.Context, recs []store.Record) (store.WriteResult, error) {
	m := s.Map()
	parts := map[string]*part{}
	get := func(name string) *part {
		p := parts[name]
		if p == nil {
			p = &part{logicals: map[int]bool{}, seqs: map[uint64]bool{}}
			parts[name] = p
		}
		return p
	}
	for _, r := range recs {
		l := shard.Of(r.Zone)
		p := get(m.Assign[l])
		p.events = append(p.events, r)
		p.logicals[l] = true
		p.seqs[r.Seq] = true
	}
	for _, mb := range store.Memberships(recs) {
		l := shard.Of(mb.Zone)
		p := get(m.Assign[l])
		p.members = append(p.members, mb)
		p.logicals[l] = true
		p.seqs[mb.Seq] = true
	}
	patches, tallies := store.Project(recs)
	for _, pp := range patches {
		l := shard.Of(pp.PlayerID)
		p := get(m.Assign[l])
		p.patches = append(p.patches, pp)
		p.logicals[l] = true
		for _, q := range pp.Touched {
			p.seqs[q] = true
		}
	}
	for _, t := range tallies {
		l := shard.Of(t.PlayerID)
		p := get(m.Assign[l])
		p.tallies = append(p.tallies, t)
		p.logicals[l] = true
		p.seqs[t.Seq] = true
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		total  store.WriteResult
		errs   []error
		failed = map[uint64]bool{}
	)
	for name, p := range parts {
		db := s.DB(name)
		if db == nil {
			return total, fmt.Errorf("pgstore: map names unknown database %s", name)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.writeDB(ctx, db, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("shard %s: %w", name, err))
				for q := range p.seqs {
					failed[q] = true
				}
				return
			}
			total.Inserted += res.Inserted
			total.Skipped += res.Skipped
			total.Slow += res.Slow
		}()
	}
	wg.Wait()
	if len(errs) == 0 {
		return total, nil
	}
	return total, &store.PartialError{Err: errors.Join(errs...), Failed: failed}
}

func (s *Store) writeDB(ctx context.Context, db *DB, p *part) (store.WriteResult, error) {
	if until := db.downUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		// The database failed a moment ago: fail fast instead of waiting
		// for it again inside every batch (the other shards go on).
		return store.WriteResult{}, fmt.Errorf("%w (retry in %s)", ErrShardDown, time.Duration(until-time.Now().UnixNano()).Round(time.Millisecond))
	}
	span := startTx(ctx, db, p)
	res, err := s.writeTx(ctx, db, p, false)
	defer func() { endTx(span, res.Inserted, res.Skipped, err) }()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		// Backstop: a row above the high-water mark already existed (a writer
		// with an older view raced us). Redo the batch on the checking path.
		s.log.Warn("unique violation on fast path; retrying on the duplicate-checking path", "shard", db.Name)
		res, err = s.writeTx(ctx, db, p, true)
	}
	if err == nil {
		db.written.Add(int64(res.Inserted))
		db.downUntil.Store(0)
		db.failures.Store(0)
	} else if ctx.Err() == nil && !errors.Is(err, ErrNotOwner) {
		// Back off this database only: 50ms, doubling to 2s.
		n := min(db.failures.Add(1), 6)
		db.downUntil.Store(time.Now().Add(25 * time.Millisecond << n).UnixNano())
	}
	return res, err
}

var eventCols = []string{"seq", "idx", "ts", "zone", "logical", "event_id", "player_id", "type", "fence", "payload"}

func eventRow(r *store.Record) []any {
	return []any{int64(r.Seq), int32(r.Index), time.Unix(0, r.TSNs).UTC(), r.Zone, int16(shard.Of(r.Zone)), r.EventID, r.PlayerID, r.Type, int64(r.Fence), r.Payload}
}

func (s *Store) writeTx(ctx context.Context, db *DB, p *part, allSlow bool) (store.WriteResult, error) {
	var res store.WriteResult
	ctx, cancel := context.WithTimeout(ctx, s.opts.WriteTimeout)
	defer cancel()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		return res, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// Ownership (SHARD-4). FOR SHARE conflicts with the mover's UPDATE, so a
	// move waits for in-flight batches and later batches see the new state.
	ls := make([]int16, 0, len(p.logicals))
	for l := range p.logicals {
		ls = append(ls, int16(l))
	}
	// One round trip: the ownership rows FOR SHARE and the high-water-mark
	// row FOR UPDATE (serializing writers of this database).
	var owned, hwm int64
	if err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM (SELECT logical FROM shard_owner WHERE logical = ANY($1) AND state = 'owned' FOR SHARE) o),
			(SELECT seq FROM persist_hwm WHERE id = 1 FOR UPDATE)`, ls).Scan(&owned, &hwm); err != nil {
		return res, err
	}
	if owned != int64(len(ls)) {
		return res, fmt.Errorf("%w: %d of %d logical shards not owned by %s", ErrNotOwner, int64(len(ls))-owned, len(ls), db.Name)
	}

	var inserted []store.Record
	b := &pgx.Batch{}
	if len(p.events) > 0 {
		var fast, slow []store.Record
		maxSeq := hwm
		for _, r := range p.events {
			if !allSlow && int64(r.Seq) > hwm {
				fast = append(fast, r)
			} else {
				slow = append(slow, r)
			}
			maxSeq = max(maxSeq, int64(r.Seq))
		}
		if len(fast) > 0 {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventCols, pgx.CopyFromSlice(len(fast), func(i int) ([]any, error) {
				return eventRow(&fast[i]), nil
			}))
			if err != nil {
				return res, err
			}
			inserted = append(inserted, fast...)
		}
		if len(slow) > 0 {
			ins, err := insertChecked(ctx, tx, slow)
			if err != nil {
				return res, err
			}
			res.Slow = len(slow)
			res.Skipped = len(slow) - len(ins)
			inserted = append(inserted, ins...)
		}
		if maxSeq > hwm {
			b.Queue(`UPDATE persist_hwm SET seq = $1 WHERE id = 1`, maxSeq)
		}
	}
	res.Inserted = len(inserted)

	queueZoneDeltas(b, store.ZoneDeltas(inserted))
	queueMembers(b, p.members)
	queuePatches(b, p.patches)
	queueTallies(b, p.tallies)
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return res, err
		}
	}
	return res, tx.Commit(ctx)
}

// insertChecked stores the records that are not stored yet and returns them.
func insertChecked(ctx context.Context, tx pgx.Tx, recs []store.Record) ([]store.Record, error) {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS persist_stage (LIKE events) ON COMMIT DELETE ROWS`); err != nil {
		return nil, err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"persist_stage"}, eventCols, pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
		return eventRow(&recs[i]), nil
	})); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `INSERT INTO events (`+joinCols(eventCols)+`) SELECT `+joinCols(eventCols)+
		` FROM persist_stage ON CONFLICT DO NOTHING RETURNING seq, idx`)
	if err != nil {
		return nil, err
	}
	type pos struct {
		seq int64
		idx int32
	}
	got := map[pos]bool{}
	for rows.Next() {
		var p pos
		if err := rows.Scan(&p.seq, &p.idx); err != nil {
			return nil, err
		}
		got[p] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `TRUNCATE persist_stage`); err != nil {
		return nil, err
	}
	var out []store.Record
	for _, r := range recs {
		if p := (pos{int64(r.Seq), int32(r.Index)}); got[p] {
			out = append(out, r)
			delete(got, p) // a row twice in one batch counts once
		}
	}
	return out, nil
}

func queueZoneDeltas(b *pgx.Batch, ds []*store.ZoneDelta) {
	if len(ds) == 0 {
		return
	}
	n := len(ds)
	zone, lg, ev, seq, de := make([]string, n), make([]int16, n), make([]int64, n), make([]int64, n), make([]int64, n)
	tss := make([]*time.Time, n)
	for i, d := range ds {
		zone[i], lg[i], ev[i], seq[i], de[i] = d.Zone, int16(shard.Of(d.Zone)), d.Events, int64(d.LastSeq), d.Deaths
		if d.LastTSNs != 0 {
			t := time.Unix(0, d.LastTSNs).UTC()
			tss[i] = &t
		}
	}
	b.Queue(`INSERT INTO zone_summaries AS z (zone, logical, events, last_seq, last_ts, deaths)
		SELECT * FROM unnest($1::text[], $2::int2[], $3::int8[], $4::int8[], $5::timestamptz[], $6::int8[])
		ON CONFLICT (zone) DO UPDATE SET
			events = z.events + EXCLUDED.events,
			last_ts = CASE WHEN EXCLUDED.last_seq > z.last_seq THEN EXCLUDED.last_ts ELSE z.last_ts END,
			last_seq = greatest(z.last_seq, EXCLUDED.last_seq),
			deaths = z.deaths + EXCLUDED.deaths`, zone, lg, ev, seq, tss, de)
}

// queuePatches upserts player rows field-wise: each field group (name, zone,
// x/y, hp, online) is taken only from a patch whose sequence for that group
// is higher than the stored one, so the result does not depend on the order
// in which batches commit (two replicas, redelivery). last_seq only grows.
func queuePatches(b *pgx.Batch, ps []*store.PlayerPatch) {
	if len(ps) == 0 {
		return
	}
	n := len(ps)
	id, lg, name, zone := make([]string, n), make([]int16, n), make([]*string, n), make([]*string, n)
	x, y, hp, on := make([]*float32, n), make([]*float32, n), make([]*int32, n), make([]*bool, n)
	seq, ts := make([]int64, n), make([]*time.Time, n)
	nameSeq, zoneSeq, posSeq, hpSeq, onSeq := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, p := range ps {
		id[i], lg[i], name[i], zone[i] = p.PlayerID, int16(shard.Of(p.PlayerID)), p.Name, p.Zone
		x[i], y[i], hp[i], on[i], seq[i] = p.X, p.Y, p.HP, p.Online, int64(p.Seq)
		if p.TSNs != 0 {
			t := time.Unix(0, p.TSNs).UTC()
			ts[i] = &t
		}
		// A group's sequence counts only if the patch sets it.
		if p.Name != nil {
			nameSeq[i] = int64(p.Seqs.Name)
		}
		if p.Zone != nil {
			zoneSeq[i] = int64(p.Seqs.Zone)
		}
		if p.X != nil && p.Y != nil {
			posSeq[i] = int64(p.Seqs.Pos)
		}
		if p.HP != nil {
			hpSeq[i] = int64(p.Seqs.HP)
		}
		if p.Online != nil {
			onSeq[i] = int64(p.Seqs.Online)
		}
	}
	b.Queue(`INSERT INTO players AS p (player_id, logical, name, zone, x, y, hp, online, last_seq, last_ts,
			name_seq, zone_seq, pos_seq, hp_seq, online_seq)
		SELECT * FROM unnest($1::text[], $2::int2[], $3::text[], $4::text[], $5::real[], $6::real[], $7::int4[], $8::bool[], $9::int8[], $10::timestamptz[],
			$11::int8[], $12::int8[], $13::int8[], $14::int8[], $15::int8[])
		ON CONFLICT (player_id) DO UPDATE SET
			name = CASE WHEN EXCLUDED.name_seq > p.name_seq THEN EXCLUDED.name ELSE p.name END,
			name_seq = greatest(p.name_seq, EXCLUDED.name_seq),
			zone = CASE WHEN EXCLUDED.zone_seq > p.zone_seq THEN EXCLUDED.zone ELSE p.zone END,
			zone_seq = greatest(p.zone_seq, EXCLUDED.zone_seq),
			x = CASE WHEN EXCLUDED.pos_seq > p.pos_seq THEN EXCLUDED.x ELSE p.x END,
			y = CASE WHEN EXCLUDED.pos_seq > p.pos_seq THEN EXCLUDED.y ELSE p.y END,
			pos_seq = greatest(p.pos_seq, EXCLUDED.pos_seq),
			hp = CASE WHEN EXCLUDED.hp_seq > p.hp_seq THEN EXCLUDED.hp ELSE p.hp END,
			hp_seq = greatest(p.hp_seq, EXCLUDED.hp_seq),
			online = CASE WHEN EXCLUDED.online_seq > p.online_seq THEN EXCLUDED.online ELSE p.online END,
			online_seq = greatest(p.online_seq, EXCLUDED.online_seq),
			last_ts = CASE WHEN EXCLUDED.last_seq > p.last_seq THEN EXCLUDED.last_ts ELSE p.last_ts END,
			last_seq = greatest(p.last_seq, EXCLUDED.last_seq)
		WHERE EXCLUDED.last_seq > p.last_seq OR EXCLUDED.name_seq > p.name_seq OR EXCLUDED.zone_seq > p.zone_seq
			OR EXCLUDED.pos_seq > p.pos_seq OR EXCLUDED.hp_seq > p.hp_seq OR EXCLUDED.online_seq > p.online_seq`,
		id, lg, name, zone, x, y, hp, on, seq, ts, nameSeq, zoneSeq, posSeq, hpSeq, onSeq)
}

func queueTallies(b *pgx.Batch, ts []store.Tally) {
	if len(ts) == 0 {
		return
	}
	n := len(ts)
	id, seq, kind, lg, idx := make([]string, n), make([]int64, n), make([]string, n), make([]int16, n), make([]int32, n)
	for i, t := range ts {
		id[i], seq[i], kind[i], lg[i], idx[i] = t.PlayerID, int64(t.Seq), string(t.Kind), int16(shard.Of(t.PlayerID)), int32(t.Index)
	}
	b.Queue(`WITH ins AS (
			INSERT INTO player_tallies (player_id, seq, kind, logical, idx)
			SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int2[], $5::int4[])
			ON CONFLICT DO NOTHING RETURNING player_id, kind, logical)
		INSERT INTO players AS p (player_id, logical, kills, deaths)
		SELECT player_id, min(logical), count(*) FILTER (WHERE kind = 'k'), count(*) FILTER (WHERE kind = 'd')
		FROM ins GROUP BY player_id
		ON CONFLICT (player_id) DO UPDATE SET kills = p.kills + EXCLUDED.kills, deaths = p.deaths + EXCLUDED.deaths`,
		id, seq, kind, lg, idx)
}

// queueMembers upserts zone memberships, each taken only from a higher seq
// than the stored one (order-independent, idempotent), and adds to each
// zone summary's players the change in present members: old is read from
// the statement's snapshot, before the upsert, and writers of a database
// are serialized by the high-water-mark lock.
func queueMembers(b *pgx.Batch, ms []store.Membership) {
	if len(ms) == 0 {
		return
	}
	n := len(ms)
	zone, id, lg, pr, seq := make([]string, n), make([]string, n), make([]int16, n), make([]bool, n), make([]int64, n)
	for i, m := range ms {
		zone[i], id[i], lg[i], pr[i], seq[i] = m.Zone, m.PlayerID, int16(shard.Of(m.Zone)), m.Present, int64(m.Seq)
	}
	b.Queue(`WITH input AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::int2[], $4::bool[], $5::int8[]) AS u(zone, player_id, logical, present, seq)),
		old AS (SELECT m.zone, m.player_id, m.present FROM zone_members m JOIN input i USING (zone, player_id)),
		up AS (
			INSERT INTO zone_members AS m (zone, player_id, logical, present, seq) SELECT * FROM input
			ON CONFLICT (zone, player_id) DO UPDATE SET present = EXCLUDED.present, seq = EXCLUDED.seq
			WHERE EXCLUDED.seq > m.seq
			RETURNING m.zone, m.player_id, m.logical, m.present),
		d AS (
			SELECT up.zone, min(up.logical) AS logical, sum(up.present::int - coalesce(old.present, false)::int) AS delta
			FROM up LEFT JOIN old USING (zone, player_id) GROUP BY up.zone)
		INSERT INTO zone_summaries AS z (zone, logical, players) SELECT zone, logical, delta FROM d WHERE delta <> 0
		ON CONFLICT (zone) DO UPDATE SET players = z.players + EXCLUDED.players`, zone, id, lg, pr, seq)
}

// ZoneEvents answers a zone's events from the database owning the zone.
func (s *Store) ZoneEvents(ctx context.Context, q store.ZoneEventsQuery) ([]store.EventRow, error) {
	q, err := q.Normalize()
	if err != nil {
		return nil, err
	}
	db := s.DB(s.Map().DBFor(q.Zone))
	rows, err := db.Pool.Query(ctx, `SELECT seq, idx, ts, zone, event_id, player_id, type, fence, payload FROM events
		WHERE zone = $1 AND ts >= $2 AND ts < $3 AND seq > $4 ORDER BY ts, seq, idx LIMIT $5`,
		q.Zone, time.Unix(0, q.FromNs).UTC(), time.Unix(0, q.ToNs).UTC(), int64(q.AfterSeq), q.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.EventRow
	for rows.Next() {
		var e store.EventRow
		var seq, fence int64
		var idx int32
		var ts time.Time
		if err := rows.Scan(&seq, &idx, &ts, &e.Zone, &e.EventID, &e.PlayerID, &e.Type, &fence, &e.Payload); err != nil {
			return nil, err
		}
		e.Seq, e.Index, e.Fence, e.TSNs = uint64(seq), uint32(idx), uint64(fence), ts.UnixNano()
		out = append(out, e)
	}
	return out, rows.Err()
}

// Player answers the player read model.
func (s *Store) Player(ctx context.Context, id string) (store.Player, bool, error) {
	db := s.DB(s.Map().DBFor(id))
	var p store.Player
	var seq int64
	var ts *time.Time
	err := db.Pool.QueryRow(ctx, `SELECT player_id, coalesce(name, ''), coalesce(zone, ''), coalesce(x, 0), coalesce(y, 0),
		coalesce(hp, 0), kills, deaths, coalesce(online, false), last_seq, last_ts FROM players WHERE player_id = $1`, id).
		Scan(&p.PlayerID, &p.Name, &p.Zone, &p.X, &p.Y, &p.HP, &p.Kills, &p.Deaths, &p.Online, &seq, &ts)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, err
	}
	p.LastSeq = uint64(seq)
	if ts != nil {
		p.LastTSNs = ts.UnixNano()
	}
	return p, true, nil
}

// Zone answers the zone summary.
func (s *Store) Zone(ctx context.Context, zone string) (store.ZoneSummary, bool, error) {
	db := s.DB(s.Map().DBFor(zone))
	var z store.ZoneSummary
	var seq int64
	var ts *time.Time
	err := db.Pool.QueryRow(ctx, `SELECT zone, events, last_seq, last_ts, players, deaths FROM zone_summaries WHERE zone = $1`, zone).
		Scan(&z.Zone, &z.Events, &seq, &ts, &z.Players, &z.Deaths)
	if errors.Is(err, pgx.ErrNoRows) {
		return z, false, nil
	}
	if err != nil {
		return z, false, err
	}
	z.LastSeq = uint64(seq)
	if ts != nil {
		z.LastTSNs = ts.UnixNano()
	}
	return z, true, nil
}

// ParseURL returns url without its password (for display).
func ParseURL(url string) (string, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return "", err
	}
	c := cfg.ConnConfig
	return fmt.Sprintf("postgres://%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database), nil
}

// EventsBySeq answers a zone's events by stream position from the database
// owning the zone, in (seq, idx) order. It scans the primary key (seq, idx,
// ts) of every partition (a merge in key order), filtering on the zone, so
// a page reads at most Limit rows of the zone plus the other zones' rows in
// between: no extra index costs the writers.
func (s *Store) EventsBySeq(ctx context.Context, q store.SeqRangeQuery) ([]store.EventRow, error) {
	q, err := q.Normalize()
	if err != nil {
		return nil, err
	}
	db := s.DB(s.Map().DBFor(q.Zone))
	if db == nil {
		return nil, fmt.Errorf("pgstore: no database for zone %s", q.Zone)
	}
	fromSeq, fromIdx := q.Start()
	rows, err := db.Pool.Query(ctx, `SELECT seq, idx, ts, zone, event_id, player_id, type, fence, payload FROM events
		WHERE zone = $1 AND (seq, idx) >= ($2, $3) AND seq <= $4 ORDER BY seq, idx LIMIT $5`,
		q.Zone, int64(fromSeq), int32(fromIdx), int64(min(q.ToSeq, 1<<63-1)), q.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.EventRow{}
	for rows.Next() {
		var e store.EventRow
		var seq, fence int64
		var idx int32
		var ts time.Time
		if err := rows.Scan(&seq, &idx, &ts, &e.Zone, &e.EventID, &e.PlayerID, &e.Type, &fence, &e.Payload); err != nil {
			return nil, err
		}
		e.Seq, e.Index, e.Fence, e.TSNs = uint64(seq), uint32(idx), uint64(fence), ts.UnixNano()
		out = append(out, e)
	}
	return out, rows.Err()
}

package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/realmstream/realmstream/libs/shard"
)

// MapStore is where the shard map lives (shardmap.KV in the service).
type MapStore interface {
	MapSource
	Update(ctx context.Context, next shard.Map, rev uint64) (uint64, error)
}

// MoveReport describes one logical-shard move.
type MoveReport struct {
	Logical     int            `json:"logical"`
	From        string         `json:"from"`
	To          string         `json:"to"`
	CopiedRows  int64          `json:"copied_rows"`
	Blocked     time.Duration  `json:"blocked"`
	MapVersion  uint64         `json:"map_version"`
	Checksums   map[string]Sum `json:"checksums"`
	CleanedRows int64          `json:"cleaned_rows"`
}

// Sum is the order-independent checksum of a table's rows of one logical
// shard: row count and the sum of hashtextextended(row::text).
type Sum struct {
	Rows int64  `json:"rows"`
	Hash string `json:"hash"`
}

// movedTables are the tables keyed by logical shard, events first.
var movedTables = []string{"events", "players", "player_tallies", "zone_summaries", "zone_members"}

// Checksum computes Sum of table's rows of logical shard l on db.
func Checksum(ctx context.Context, db *DB, table string, l int) (Sum, error) {
	var s Sum
	err := db.Pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::text FROM `+
		pgx.Identifier{table}.Sanitize()+` t WHERE logical = $1`, int16(l)).Scan(&s.Rows, &s.Hash)
	return s, err
}

// MoveLogical moves logical shard l to database to, online (SHARD-6):
//
//  1. copy: stream the shard's event rows from the source into the target
//     (staging + ON CONFLICT DO NOTHING, raising the target's high-water
//     mark in the same transaction), repeated to catch up while writers go on;
//  2. block: mark the shard 'blocked' in the source's shard_owner (waits for
//     in-flight batches, which hold it FOR SHARE; later batches for this shard
//     fail with ErrNotOwner and are retried by the writer, so the consumer
//     pauses for the block window only);
//  3. final catch-up of events, and the read models of the shard copied whole;
//  4. verify row counts and checksums of every table on both sides (a
//     mismatch re-copies once, then aborts and unblocks the source);
//  5. switch: target 'owned', map version+1 stored with compare-and-set,
//     source 'moved';
//  6. clean the shard's rows from the source.
//
// Every step is idempotent, so running the same move again resumes it.
func (s *Store) MoveLogical(ctx context.Context, ms MapStore, l int, to string) (MoveReport, error) {
	rep := MoveReport{Logical: l, To: to, Checksums: map[string]Sum{}}
	if err := s.Reload(ctx); err != nil {
		return rep, err
	}
	m, rev, err := ms.Load(ctx)
	if err != nil {
		return rep, err
	}
	from := m.Assign[l]
	rep.From = from
	dst := s.DB(to)
	if dst == nil {
		return rep, fmt.Errorf("move: database %s is not in the shard map (add it first)", to)
	}
	if from == to {
		// Already switched: finish a cleanup an earlier run may not have done.
		for _, d := range s.DBs() {
			if d.Name == to {
				continue
			}
			var state string
			err := d.Pool.QueryRow(ctx, `SELECT state FROM shard_owner WHERE logical = $1`, int16(l)).Scan(&state)
			if err == nil && state == "moved" {
				n, err := cleanup(ctx, d, l)
				rep.CleanedRows += n
				if err != nil {
					return rep, err
				}
			}
		}
		rep.MapVersion = m.Version
		return rep, nil
	}
	src := s.DB(from)
	if err := s.ensureDays(ctx, src, dst); err != nil {
		return rep, err
	}

	// 1. online copy and catch-up.
	var cursor int64
	for round := 0; round < 5; round++ {
		n, maxSeq, err := copyEvents(ctx, src, dst, l, cursor)
		if err != nil {
			return rep, err
		}
		rep.CopiedRows += n
		cursor = max(cursor, maxSeq)
		if n < 500 {
			break
		}
	}

	// 2. block writes of this shard at the source.
	blockedAt := time.Now()
	if _, err := src.Pool.Exec(ctx, `UPDATE shard_owner SET state = 'blocked', map_version = $2, updated_at = now() WHERE logical = $1`,
		int16(l), int64(m.Version)); err != nil {
		return rep, fmt.Errorf("move: block source: %w", err)
	}
	unblock := func(cause error) error {
		_, err := src.Pool.Exec(context.WithoutCancel(ctx), `UPDATE shard_owner SET state = 'owned', updated_at = now() WHERE logical = $1`, int16(l))
		return errors.Join(cause, err)
	}

	// 3. final catch-up and read models; 4. verify.
	verified := false
	for attempt := 0; attempt < 2 && !verified; attempt++ {
		after := cursor
		if attempt > 0 {
			after = 0 // a row below the cursor arrived late: full re-copy
		}
		n, maxSeq, err := copyEvents(ctx, src, dst, l, after)
		if err != nil {
			return rep, unblock(err)
		}
		rep.CopiedRows += n
		cursor = max(cursor, maxSeq)
		if err := copyReadModels(ctx, src, dst, l); err != nil {
			return rep, unblock(err)
		}
		verified = true
		for _, t := range movedTables {
			a, err := Checksum(ctx, src, t, l)
			if err != nil {
				return rep, unblock(err)
			}
			b, err := Checksum(ctx, dst, t, l)
			if err != nil {
				return rep, unblock(err)
			}
			rep.Checksums[t] = a
			if a != b {
				verified = false
				s.log.Warn("move: checksum mismatch", "table", t, "logical", l, "source", a, "target", b)
			}
		}
	}
	if !verified {
		return rep, unblock(fmt.Errorf("move: logical %d: source and target differ after re-copy; move aborted, source unblocked", l))
	}

	// 5. switch.
	next, err := m.WithMove(l, to)
	if err != nil {
		return rep, unblock(err)
	}
	if _, err := dst.Pool.Exec(ctx, `INSERT INTO shard_owner (logical, state, map_version) VALUES ($1, 'owned', $2)
		ON CONFLICT (logical) DO UPDATE SET state = 'owned', map_version = $2, updated_at = now()`, int16(l), int64(next.Version)); err != nil {
		return rep, unblock(err)
	}
	if _, err := ms.Update(ctx, next, rev); err != nil {
		_, _ = dst.Pool.Exec(context.WithoutCancel(ctx), `UPDATE shard_owner SET state = 'moved' WHERE logical = $1`, int16(l))
		return rep, unblock(err)
	}
	if _, err := src.Pool.Exec(ctx, `UPDATE shard_owner SET state = 'moved', map_version = $2, updated_at = now() WHERE logical = $1`,
		int16(l), int64(next.Version)); err != nil {
		return rep, err
	}
	rep.Blocked = time.Since(blockedAt)
	rep.MapVersion = next.Version
	if err := s.Reload(ctx); err != nil {
		return rep, err
	}

	// 6. clean the source.
	n, err := cleanup(ctx, src, l)
	rep.CleanedRows = n
	s.log.Info("move: logical shard moved", "logical", l, "from", from, "to", to, "rows", rep.Checksums["events"].Rows,
		"blocked", rep.Blocked, "map_version", rep.MapVersion)
	return rep, err
}

func cleanup(ctx context.Context, db *DB, l int) (int64, error) {
	var total int64
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		for _, t := range movedTables {
			tag, err := tx.Exec(ctx, `DELETE FROM `+pgx.Identifier{t}.Sanitize()+` WHERE logical = $1`, int16(l))
			if err != nil {
				return err
			}
			total += tag.RowsAffected()
		}
		return nil
	})
	return total, err
}

// ensureDays creates on dst every daily partition src has (so copied rows
// never land in dst's default partition).
func (s *Store) ensureDays(ctx context.Context, src, dst *DB) error {
	sp, _, err := ListPartitions(ctx, src.Pool)
	if err != nil {
		return err
	}
	dp, _, err := ListPartitions(ctx, dst.Pool)
	if err != nil {
		return err
	}
	have := map[time.Time]bool{}
	for _, p := range dp {
		have[p.From] = true
	}
	conn, err := dst.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	pm := &Partman{Log: s.log}
	for _, p := range sp {
		if !have[p.From] {
			if _, err := pm.createDay(ctx, conn.Conn(), p.From); err != nil {
				return err
			}
		}
	}
	return nil
}

const copyChunk = 5000

// copyEvents streams the event rows of logical l with seq > after from src
// into dst, chunk by chunk, each chunk one transaction that also raises dst's
// high-water mark. It returns rows inserted and the highest seq seen.
func copyEvents(ctx context.Context, src, dst *DB, l int, after int64) (int64, int64, error) {
	rows, err := src.Pool.Query(ctx, `SELECT `+joinCols(eventCols)+` FROM events WHERE logical = $1 AND seq > $2`, int16(l), after)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	var inserted, maxSeq int64
	chunk := make([][]any, 0, copyChunk)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		var top int64
		for _, r := range chunk {
			top = max(top, r[0].(int64))
		}
		err := pgx.BeginFunc(ctx, dst.Pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS persist_stage (LIKE events) ON COMMIT DELETE ROWS`); err != nil {
				return err
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"persist_stage"}, eventCols, pgx.CopyFromRows(chunk)); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `INSERT INTO events SELECT * FROM persist_stage ON CONFLICT DO NOTHING`)
			if err != nil {
				return err
			}
			inserted += tag.RowsAffected()
			_, err = tx.Exec(ctx, `UPDATE persist_hwm SET seq = greatest(seq, $1) WHERE id = 1`, top)
			return err
		})
		maxSeq = max(maxSeq, top)
		chunk = chunk[:0]
		return err
	}
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			return inserted, maxSeq, err
		}
		chunk = append(chunk, v)
		if len(chunk) == copyChunk {
			if err := flush(); err != nil {
				return inserted, maxSeq, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return inserted, maxSeq, err
	}
	return inserted, maxSeq, flush()
}

func joinCols(cols []string) string {
	out := ""
	for i, c := range cols {
		if i > 0 {
			out += ", "
		}
		out += c
	}
	return out
}

// copyReadModels replaces dst's read-model rows of logical l with src's.
func copyReadModels(ctx context.Context, src, dst *DB, l int) error {
	return pgx.BeginFunc(ctx, dst.Pool, func(tx pgx.Tx) error {
		for _, t := range movedTables[1:] {
			id := pgx.Identifier{t}.Sanitize()
			if _, err := tx.Exec(ctx, `DELETE FROM `+id+` WHERE logical = $1`, int16(l)); err != nil {
				return err
			}
			rows, err := src.Pool.Query(ctx, `SELECT * FROM `+id+` WHERE logical = $1`, int16(l))
			if err != nil {
				return err
			}
			var cols []string
			for _, f := range rows.FieldDescriptions() {
				cols = append(cols, f.Name)
			}
			var data [][]any
			for rows.Next() {
				v, err := rows.Values()
				if err != nil {
					rows.Close()
					return err
				}
				data = append(data, v)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{t}, cols, pgx.CopyFromRows(data)); err != nil {
				return err
			}
		}
		return nil
	})
}

// AddDB migrates a new database, adds it to the map (version+1) and returns
// the new map.
func (s *Store) AddDB(ctx context.Context, ms MapStore, db shard.DB, pm *Partman) (shard.Map, error) {
	pool, err := NewPool(ctx, db.URL, 2)
	if err != nil {
		return shard.Map{}, err
	}
	defer pool.Close()
	if err := Migrate(ctx, pool, s.log); err != nil {
		return shard.Map{}, err
	}
	if _, err := pm.Run(ctx, pool); err != nil {
		return shard.Map{}, err
	}
	m, rev, err := ms.Load(ctx)
	if err != nil {
		return shard.Map{}, err
	}
	if m.URLOf(db.Name) != "" {
		return m, s.Reload(ctx)
	}
	next, err := m.WithDB(db)
	if err != nil {
		return shard.Map{}, err
	}
	if _, err := ms.Update(ctx, next, rev); err != nil {
		return shard.Map{}, err
	}
	return next, s.Reload(ctx)
}

// Rebalance moves logical shards until the map is balanced (SHARD-9), one
// at a time, each at most once.
func (s *Store) Rebalance(ctx context.Context, ms MapStore, progress func(MoveReport)) error {
	m, _, err := ms.Load(ctx)
	if err != nil {
		return err
	}
	for _, mv := range m.PlanBalance() {
		rep, err := s.MoveLogical(ctx, ms, mv.Logical, mv.To)
		if err != nil {
			return err
		}
		if progress != nil {
			progress(rep)
		}
	}
	return nil
}

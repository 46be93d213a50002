package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Partman is the partition manager of the events table (PART-*): one
// partition per UTC day, events_pYYYYMMDD = [D 00:00, D+1 00:00), created
// Premake days ahead regardless of traffic, gaps filled, a default partition
// watched for rows, and partitions past Retention detached and dropped (or
// moved to schema persist_archive). One runner per database at a time (a
// session advisory lock); every DDL runs under lock_timeout with a bounded
// retry, so it never queues for long in front of the writers.
//
// DETACH ... CONCURRENTLY is refused by Postgres while the table has a
// default partition ("cannot detach partitions concurrently when a default
// partition exists"), and persist keeps one, so retention uses the plain
// DETACH under lock_timeout; a pending detach left by someone else is
// completed with FINALIZE.
type Partman struct {
	// Premake is how many days after today must exist (default 7).
	Premake int
	// Retention in days: partitions whose whole range ends at or before
	// today-Retention are removed. 0 keeps everything.
	Retention int
	// Archive moves expired partitions to schema persist_archive instead of dropping them.
	Archive bool
	// LockTimeout bounds each DDL statement's wait for locks (default 3s).
	LockTimeout time.Duration
	// Now is the clock (injectable for tests; default time.Now).
	Now func() time.Time
	// MaxBackfill bounds how many days before the oldest partition (or
	// today) the gap fill reaches for rows in the default partition
	// (default 400): a row with a wild timestamp stays in the default (and
	// keeps the alarm on) instead of creating thousands of partitions.
	MaxBackfill int
	Log         *slog.Logger

	// afterMove, if set, runs in createDay after the day's rows moved out of
	// the default partition and before the ATTACH (tests: the race window).
	afterMove func(day time.Time)
}

// PartResult reports one maintenance run.
type PartResult struct {
	Leader      bool // false: another runner held the lock, nothing was done
	Created     []string
	Removed     []string
	MovedRows   int64 // rows moved out of the default partition into new days
	DefaultRows int64 // rows left in the default partition (alarm if > 0)
	DaysAhead   int   // consecutive days after today that exist
	Partitions  int   // daily partitions (not counting default)
}

const partmanLockKey = "realmstream:partman:events"

// Partition is one daily partition.
type Partition struct {
	Name     string
	From, To time.Time
}

var boundRE = regexp.MustCompile(`FROM \('([^']+)'\) TO \('([^']+)'\)`)

// ListPartitions returns the daily partitions of events (from the catalog,
// never from names) sorted by day, and whether a default partition exists.
func ListPartitions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) ([]Partition, bool, error) {
	rows, err := q.Query(ctx, `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass AND NOT i.inhdetachpending`)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var out []Partition
	hasDefault := false
	for rows.Next() {
		var name, bound string
		if err := rows.Scan(&name, &bound); err != nil {
			return nil, false, err
		}
		if bound == "DEFAULT" {
			hasDefault = true
			continue
		}
		m := boundRE.FindStringSubmatch(bound)
		if m == nil {
			return nil, false, fmt.Errorf("partman: cannot parse bound of %s: %q", name, bound)
		}
		from, err1 := parsePGTime(m[1])
		to, err2 := parsePGTime(m[2])
		if err1 != nil || err2 != nil {
			return nil, false, fmt.Errorf("partman: bound of %s: %q", name, bound)
		}
		out = append(out, Partition{Name: name, From: from, To: to})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From.Before(out[j].From) })
	return out, hasDefault, rows.Err()
}

func parsePGTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05-07", "2006-01-02 15:04:05Z07", "2006-01-02 15:04:05.999999-07"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q", s)
}

// DayName is the partition name of a UTC day.
func DayName(d time.Time) string { return "events_p" + d.UTC().Format("20060102") }

func day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// Run does one maintenance pass on the database behind pool.
func (pm *Partman) Run(ctx context.Context, pool *pgxpool.Pool) (PartResult, error) {
	var res PartResult
	if pm.Now == nil {
		pm.Now = time.Now
	}
	if pm.LockTimeout == 0 {
		pm.LockTimeout = 3 * time.Second
	}
	if pm.Log == nil {
		pm.Log = slog.Default()
	}
	if pm.MaxBackfill <= 0 {
		pm.MaxBackfill = 400
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return res, err
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1))`, partmanLockKey).Scan(&got); err != nil {
		return res, err
	}
	if !got {
		return res, nil
	}
	res.Leader = true
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext($1))`, partmanLockKey)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`SET TimeZone = 'UTC'; SET lock_timeout = '%dms'`, pm.LockTimeout.Milliseconds())); err != nil {
		return res, err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `RESET lock_timeout`)

	// Complete detaches someone left pending (interrupted CONCURRENTLY).
	rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass AND i.inhdetachpending`)
	if err != nil {
		return res, err
	}
	pending, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return res, err
	}
	for _, p := range pending {
		if err := pm.ddl(ctx, conn.Conn(), `ALTER TABLE events DETACH PARTITION `+pgx.Identifier{p}.Sanitize()+` FINALIZE`); err != nil {
			return res, err
		}
		pm.Log.Info("partman: finalized pending detach", "partition", p)
	}

	parts, _, err := ListPartitions(ctx, conn)
	if err != nil {
		return res, err
	}
	today := day(pm.Now())
	cutoff := time.Time{}
	if pm.Retention > 0 {
		cutoff = today.AddDate(0, 0, -pm.Retention)
	}
	have := map[time.Time]bool{}
	for _, p := range parts {
		have[p.From] = true
	}
	// Days to exist: from the oldest kept partition (gap fill) to
	// today+premake, and back to the day of the oldest row in the default
	// partition (issue 10 #15: a row older than every partition must get its
	// day, or it stays in the default forever). Days past retention are
	// created only for such rows, and retention below then removes them
	// whole, as it would have if the day had existed (archive included).
	start := today
	if len(parts) > 0 && parts[0].From.Before(start) {
		start = parts[0].From
	}
	if !cutoff.IsZero() && start.Before(cutoff) {
		start = cutoff
	}
	limit := start.AddDate(0, 0, -pm.MaxBackfill)
	var oldest *time.Time
	var beyond bool
	if err := conn.QueryRow(ctx, `SELECT (SELECT min(ts) FROM events_default WHERE ts >= $1 AND ts < $2),
			EXISTS (SELECT 1 FROM events_default WHERE ts < $1)`, limit, start).Scan(&oldest, &beyond); err != nil {
		return res, err
	}
	if beyond {
		pm.Log.Warn("partman: rows in the default partition older than the backfill bound stay there (alarm)",
			"before", limit, "max_backfill_days", pm.MaxBackfill)
	}
	if oldest != nil {
		start = day(*oldest)
	}
	end := today.AddDate(0, 0, pm.Premake)
	for d := start; !d.After(end); d = d.AddDate(0, 0, 1) {
		if have[d] {
			continue
		}
		moved, err := pm.createDay(ctx, conn.Conn(), d)
		if err != nil {
			return res, err
		}
		res.Created = append(res.Created, DayName(d))
		res.MovedRows += moved
		have[d] = true
		parts = append(parts, Partition{Name: DayName(d), From: d, To: d.AddDate(0, 0, 1)})
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].From.Before(parts[j].From) })

	// Retention: never the current day, never the last child.
	if !cutoff.IsZero() {
		var kept []Partition
		for i, p := range parts {
			if !p.To.After(cutoff) && p.To.Before(today.Add(time.Second)) && i < len(parts)-1 {
				if err := pm.removeDay(ctx, conn.Conn(), p); err != nil {
					return res, err
				}
				res.Removed = append(res.Removed, p.Name)
				continue
			}
			kept = append(kept, p)
		}
		parts = kept
	}
	res.Partitions = len(parts)
	for d := today.AddDate(0, 0, 1); have[d]; d = d.AddDate(0, 0, 1) {
		res.DaysAhead++
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM events_default LIMIT 1000000) s`).Scan(&res.DefaultRows); err != nil {
		return res, err
	}
	if res.DefaultRows > 0 {
		pm.Log.Warn("partman: ALARM rows in the default partition events_default (timestamps outside every daily partition)",
			"rows", res.DefaultRows)
	}
	_, err = conn.Exec(ctx, `INSERT INTO partman_state (parent, last_run, default_rows, days_ahead, partitions, detached)
		VALUES ('events', $1, $2, $3, $4, $5)
		ON CONFLICT (parent) DO UPDATE SET last_run = EXCLUDED.last_run, default_rows = EXCLUDED.default_rows,
			days_ahead = EXCLUDED.days_ahead, partitions = EXCLUDED.partitions,
			detached = partman_state.detached + EXCLUDED.detached`,
		pm.Now().UTC(), res.DefaultRows, res.DaysAhead, res.Partitions, int64(len(res.Removed)))
	if len(res.Created)+len(res.Removed) > 0 {
		pm.Log.Info("partman: maintenance", "created", res.Created, "removed", res.Removed, "moved_from_default", res.MovedRows)
	}
	return res, err
}

// ddl runs one statement with a bounded retry on lock timeouts.
func (pm *Partman) ddl(ctx context.Context, c *pgx.Conn, sql string) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if _, err = c.Exec(ctx, sql); err == nil || !isLockTimeout(err) {
			return err
		}
		pm.Log.Warn("partman: lock timeout, retrying", "sql", sql, "attempt", attempt+1)
	}
	return err
}

func isLockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

// createDay creates the partition of day d with the low-lock path (PART-5):
// a standalone table with a CHECK matching the bound, rows of that day moved
// out of the default partition in the same transaction (PART-8), then ATTACH.
//
// The default partition is locked EXCLUSIVE first (reads go on; only
// inserts routed to the default wait, which are the rows of days without a
// partition): otherwise a row of day d inserted between the move and the
// ATTACH lands in the default, and the ATTACH fails on it (issue 10 #15),
// so under steady traffic for d the day might never be created. A writer
// that was routed to the default before the ATTACH and waited on the lock
// has its statement fail on the default's new constraint (Postgres
// re-checks it) and its batch is retried by the pipeline: nothing is lost
// or stored twice. Writes to days that have a partition never wait.
func (pm *Partman) createDay(ctx context.Context, c *pgx.Conn, d time.Time) (int64, error) {
	var moved int64
	name := pgx.Identifier{DayName(d)}.Sanitize()
	from, to := d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			stmts := []string{
				`LOCK TABLE events_default IN EXCLUSIVE MODE`,
				`CREATE TABLE ` + name + ` (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
				`ALTER TABLE ` + name + ` ADD CONSTRAINT partman_bound CHECK (ts >= '` + from + `' AND ts < '` + to + `')`,
			}
			for _, s := range stmts {
				if _, err := tx.Exec(ctx, s); err != nil {
					return err
				}
			}
			tag, err := tx.Exec(ctx, `WITH m AS (DELETE FROM events_default WHERE ts >= $1 AND ts < $2 RETURNING *)
				INSERT INTO `+name+` SELECT * FROM m`, d, d.AddDate(0, 0, 1))
			if err != nil {
				return err
			}
			moved = tag.RowsAffected()
			if pm.afterMove != nil {
				pm.afterMove(d)
			}
			for _, s := range []string{
				`ALTER TABLE events ATTACH PARTITION ` + name + ` FOR VALUES FROM ('` + from + `') TO ('` + to + `')`,
				`ALTER TABLE ` + name + ` DROP CONSTRAINT partman_bound`,
			} {
				if _, err := tx.Exec(ctx, s); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil || !isLockTimeout(err) {
			break
		}
		pm.Log.Warn("partman: lock timeout creating partition, retrying", "day", d.Format(time.DateOnly), "attempt", attempt+1)
	}
	if err != nil {
		return 0, fmt.Errorf("partman: create %s: %w", DayName(d), err)
	}
	if moved > 0 {
		pm.Log.Info("partman: moved rows out of the default partition", "partition", DayName(d), "rows", moved)
	}
	return moved, nil
}

func (pm *Partman) removeDay(ctx context.Context, c *pgx.Conn, p Partition) error {
	name := pgx.Identifier{p.Name}.Sanitize()
	if err := pm.ddl(ctx, c, `ALTER TABLE events DETACH PARTITION `+name); err != nil {
		return fmt.Errorf("partman: detach %s: %w", p.Name, err)
	}
	if pm.Archive {
		if err := pm.ddl(ctx, c, `CREATE SCHEMA IF NOT EXISTS persist_archive; ALTER TABLE `+name+` SET SCHEMA persist_archive`); err != nil {
			return fmt.Errorf("partman: archive %s: %w", p.Name, err)
		}
		return nil
	}
	if err := pm.ddl(ctx, c, `DROP TABLE `+name); err != nil {
		return fmt.Errorf("partman: drop %s: %w", p.Name, err)
	}
	return nil
}

// Package dbmon samples every storage shard on an interval and publishes
// each sample as a schema.DBStats event on stats.db.<shard> (stream STATS).
// The first sample is taken at start, so every shard reports within one
// interval. A shard that cannot be sampled reports up=false with the error
// (MON-8); one shard never stops the others.
package dbmon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/pebblestore"
	"github.com/realmstream/realmstream/services/persist/internal/pgstore"
)

// Source is one shard to sample.
type Source interface {
	Name() string
	Sample(ctx context.Context, st *schema.DBStats) error
}

// Monitor publishes DB stats events.
type Monitor struct {
	js       jetstream.JetStream
	interval time.Duration
	instance string
	lag      func(context.Context) (int64, error)
	sources  func() []Source
	log      *slog.Logger

	mu   sync.Mutex
	seq  uint64
	prev map[string]*schema.DBStats
	last map[string]*schema.DBStats
}

// New returns a monitor; sources is called before every round (shards can
// be added at run time), lag reports the consumer lag.
func New(js jetstream.JetStream, interval time.Duration, instance string, sources func() []Source,
	lag func(context.Context) (int64, error), log *slog.Logger) *Monitor {
	return &Monitor{js: js, interval: interval, instance: instance, sources: sources, lag: lag, log: log,
		prev: map[string]*schema.DBStats{}, last: map[string]*schema.DBStats{}}
}

// Last returns the last sample of a shard (nil if none).
func (m *Monitor) Last(shard string) *schema.DBStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[shard]
}

// Run samples now and then every interval until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.Round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Round samples and publishes every shard once, in parallel.
func (m *Monitor) Round(ctx context.Context) {
	var lag int64 = -1
	if m.lag != nil {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if l, err := m.lag(lctx); err == nil {
			lag = l
		}
		cancel()
	}
	var wg sync.WaitGroup
	for _, src := range m.sources() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.one(ctx, src, lag)
		}()
	}
	wg.Wait()
}

func (m *Monitor) one(ctx context.Context, src Source, lag int64) {
	m.mu.Lock()
	m.seq++
	seq := m.seq
	m.mu.Unlock()
	now := time.Now()
	st := &schema.DBStats{SchemaVersion: 1, Shard: src.Name(), InstanceId: m.instance, SampledAtNs: now.UnixNano(),
		SampleSeq: seq, IntervalMs: m.interval.Milliseconds(), ConsumerLag: lag, Up: true}
	sctx, cancel := context.WithTimeout(ctx, max(m.interval, 5*time.Second))
	err := src.Sample(sctx, st)
	cancel()
	if err != nil {
		st.Up, st.Error = false, err.Error()
		m.log.Warn("db stats: sample failed", "shard", src.Name(), "err", err)
	}
	m.mu.Lock()
	rates(m.prev[src.Name()], st)
	if st.Up {
		m.prev[src.Name()] = st
	}
	m.last[src.Name()] = st
	m.mu.Unlock()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(st)
	if err != nil {
		m.log.Error("db stats: marshal", "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = m.js.Publish(pctx, wire.StatsDBSubject(src.Name()), b,
		jetstream.WithMsgID(src.Name()+":"+strconv.FormatInt(st.SampledAtNs, 10)))
	if err != nil && ctx.Err() == nil {
		m.log.Warn("db stats: publish failed", "shard", src.Name(), "err", err)
	}
}

// rates fills the per-second fields from the previous sample (MON-3): a
// counter that went down or a changed stats_reset is a reset, rate 0.
func rates(prev, cur *schema.DBStats) {
	if prev == nil || !cur.Up || prev.StatsResetNs != cur.StatsResetNs {
		return
	}
	dt := float64(cur.SampledAtNs-prev.SampledAtNs) / 1e9
	if dt <= 0 {
		return
	}
	rate := func(a, b int64) float64 {
		if b < a {
			return 0
		}
		return float64(b-a) / dt
	}
	cur.CommitsPerSec = rate(prev.XactCommit, cur.XactCommit)
	cur.RollbacksPerSec = rate(prev.XactRollback, cur.XactRollback)
	cur.DeadlocksPerSec = rate(prev.Deadlocks, cur.Deadlocks)
	cur.TempBytesPerSec = rate(prev.TempBytes, cur.TempBytes)
}

// PG samples one Postgres shard.
type PG struct {
	DB         *pgstore.DB
	MapVersion func() (version uint64, owned int)
	Now        func() time.Time
}

// Name is the shard name.
func (p *PG) Name() string { return p.DB.Name }

// Sample reads the statistics views in one read-only transaction bounded by
// statement_timeout (one consistent stats snapshot). No count(*) on big
// tables: row counts of partitions are estimates (reltuples, or n_live_tup
// before the first ANALYZE) except the
// default partition, which must be small (MON-9).
func (p *PG) Sample(ctx context.Context, st *schema.DBStats) error {
	st.Backend = "postgres"
	ps := p.DB.Pool.Stat()
	st.Pool = &schema.PoolStat{TotalConns: ps.TotalConns(), IdleConns: ps.IdleConns(), AcquiredConns: ps.AcquiredConns(),
		MaxConns: ps.MaxConns(), AcquireCount: ps.AcquireCount(), EmptyAcquireCount: ps.EmptyAcquireCount(),
		AcquireWaitSeconds: ps.AcquireDuration().Seconds()}
	st.RowsWritten = p.DB.RowsWritten()
	if p.MapVersion != nil {
		v, owned := p.MapVersion()
		st.MapVersion, st.LogicalShards = v, int32(owned)
	}
	return pgx.BeginTxFunc(ctx, p.DB.Pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '5s'`); err != nil {
			return err
		}
		var reset *time.Time
		err := tx.QueryRow(ctx, `SELECT current_setting('server_version'), xact_commit, xact_rollback, blks_hit, blks_read,
				deadlocks, temp_bytes, stats_reset, pg_database_size(datid),
				current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int,
				(SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database())
			FROM pg_stat_database WHERE datname = current_database()`).
			Scan(&st.PgVersion, &st.XactCommit, &st.XactRollback, &st.BlksHit, &st.BlksRead, &st.Deadlocks, &st.TempBytes,
				&reset, &st.DatabaseSizeBytes, &st.MaxConnections, &st.SuperuserReservedConnections, &st.XidAge)
		if err != nil {
			return fmt.Errorf("pg_stat_database: %w", err)
		}
		if reset != nil {
			st.StatsResetNs = reset.UnixNano()
		}
		if st.BlksHit+st.BlksRead > 0 {
			st.CacheHitRatio = float64(st.BlksHit) / float64(st.BlksHit+st.BlksRead)
		}
		err = tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'active'),
				count(*) FILTER (WHERE state LIKE 'idle in transaction%'), count(*) FILTER (WHERE wait_event_type = 'Lock'),
				count(*) FILTER (WHERE cardinality(pg_blocking_pids(pid)) > 0),
				coalesce(max(extract(epoch FROM now() - xact_start)) FILTER (WHERE datname = current_database() AND pid <> pg_backend_pid()), 0),
				coalesce(max(extract(epoch FROM now() - state_change)) FILTER (WHERE state LIKE 'idle in transaction%'), 0)
			FROM pg_stat_activity WHERE backend_type = 'client backend'`).
			Scan(&st.Connections, &st.ConnectionsActive, &st.ConnectionsIdleInTransaction, &st.ConnectionsWaiting,
				&st.BlockedBackends, &st.LongestTransactionSeconds, &st.LongestIdleInTransactionSeconds)
		if err != nil {
			return fmt.Errorf("pg_stat_activity: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&st.WaitingLocks); err != nil {
			return fmt.Errorf("pg_locks: %w", err)
		}
		if err := p.partitions(ctx, tx, st); err != nil {
			return err
		}
		if err := tables(ctx, tx, st); err != nil {
			return err
		}
		var hwm int64
		if err := tx.QueryRow(ctx, `SELECT seq FROM persist_hwm WHERE id = 1`).Scan(&hwm); err == nil {
			st.HighWaterMark = hwm
		}
		return topQueries(ctx, tx, st)
	})
}

func (p *PG) partitions(ctx context.Context, tx pgx.Tx, st *schema.DBStats) error {
	// Rows: reltuples is -1 until the first ANALYZE or VACUUM of the
	// partition, which for today's partition (autoanalyze waits for 10% +
	// 50 changed rows after the first run) means all day: the dashboard showed
	// 0. n_live_tup of the statistics collector counts inserts as they commit;
	// the larger of both is the estimate (still no count(*) on a big table).
	rows, err := tx.Query(ctx, `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid),
			greatest(c.reltuples, coalesce(s.n_live_tup, 0), 0)::bigint, pg_total_relation_size(c.oid)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
		WHERE i.inhparent = 'events'::regclass ORDER BY c.relname`)
	if err != nil {
		return fmt.Errorf("partitions: %w", err)
	}
	type part struct {
		name, bound string
		rows, size  int64
	}
	var parts []part
	for rows.Next() {
		var x part
		if err := rows.Scan(&x.name, &x.bound, &x.rows, &x.size); err != nil {
			rows.Close()
			return err
		}
		parts = append(parts, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	today := now().UTC().Format(time.DateOnly)
	days := map[string]bool{}
	for _, x := range parts {
		ps := &schema.PartitionStat{Name: x.name, Rows: x.rows, SizeBytes: x.size}
		if x.bound == "DEFAULT" {
			ps.IsDefault = true
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM events_default LIMIT 1000000) s`).Scan(&ps.Rows); err != nil {
				return err
			}
			st.DefaultPartitionRows = ps.Rows
			st.DefaultPartitionAlarm = ps.Rows > 0
		} else if len(x.name) == len("events_p20060102") {
			if d, err := time.Parse("20060102", x.name[len("events_p"):]); err == nil {
				ps.RangeFrom = d.Format(time.DateOnly)
				ps.RangeTo = d.AddDate(0, 0, 1).Format(time.DateOnly)
				days[ps.RangeFrom] = true
				if st.OldestPartition == "" || ps.RangeFrom < st.OldestPartition {
					st.OldestPartition = ps.RangeFrom
				}
			}
			st.PartitionCount++
		}
		st.Partitions = append(st.Partitions, ps)
	}
	d, _ := time.Parse(time.DateOnly, today)
	for d = d.AddDate(0, 0, 1); days[d.Format(time.DateOnly)]; d = d.AddDate(0, 0, 1) {
		st.DaysAhead++
	}
	var last *time.Time
	if err := tx.QueryRow(ctx, `SELECT max(last_run) FROM partman_state`).Scan(&last); err == nil && last != nil {
		st.PartmanLastRunNs = last.UnixNano()
	}
	return nil
}

// hotTables are the tables whose vacuum health matters (events partitions
// are insert-only).
var hotTables = []string{"players", "zone_summaries", "player_tallies", "persist_hwm", "shard_owner", "events_default"}

func tables(ctx context.Context, tx pgx.Tx, st *schema.DBStats) error {
	rows, err := tx.Query(ctx, `SELECT relname, n_live_tup, n_dead_tup, last_autovacuum, last_autoanalyze, n_mod_since_analyze,
			pg_total_relation_size(relid)
		FROM pg_stat_user_tables WHERE relname = ANY($1) ORDER BY relname`, hotTables)
	if err != nil {
		return fmt.Errorf("pg_stat_user_tables: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		t := &schema.TableStat{}
		var av, aa *time.Time
		if err := rows.Scan(&t.Name, &t.LiveTuples, &t.DeadTuples, &av, &aa, &t.ModSinceAnalyze, &t.SizeBytes); err != nil {
			return err
		}
		if av != nil {
			t.LastAutovacuumNs = av.UnixNano()
		}
		if aa != nil {
			t.LastAutoanalyzeNs = aa.UnixNano()
		}
		st.Tables = append(st.Tables, t)
	}
	return rows.Err()
}

// topQueries reads pg_stat_statements when the extension is installed in
// this database (column names differ before PostgreSQL 13).
func topQueries(ctx context.Context, tx pgx.Tx, st *schema.DBStats) error {
	var has bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')`).Scan(&has); err != nil {
		return err
	}
	if !has {
		return nil
	}
	var num int
	if err := tx.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&num); err != nil {
		return err
	}
	total, mean := "total_exec_time", "mean_exec_time"
	if num < 130000 {
		total, mean = "total_time", "mean_time"
	}
	if _, err := tx.Exec(ctx, `SAVEPOINT pgss`); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT left(query, 200), calls, `+total+`, `+mean+` FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY `+total+` DESC LIMIT 5`)
	if err == nil {
		for rows.Next() {
			q := &schema.QueryStat{}
			if err = rows.Scan(&q.Query, &q.Calls, &q.TotalMs, &q.MeanMs); err != nil {
				break
			}
			st.TopQueries = append(st.TopQueries, q)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		// Installed but not preloaded: report it as absent, not as a failure.
		_, rerr := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT pgss`)
		st.TopQueries = nil
		return rerr
	}
	st.PgStatStatements = true
	return nil
}

// Pebble samples the Pebble store.
type Pebble struct{ S *pebblestore.Store }

// Name is "pebble".
func (p *Pebble) Name() string { return "pebble" }

// Sample copies Pebble's metrics.
func (p *Pebble) Sample(ctx context.Context, st *schema.DBStats) error {
	if p.S == nil {
		return errors.New("pebble store not open")
	}
	st.Backend = "pebble"
	st.Pebble = p.S.Metrics()
	st.RowsWritten = p.S.RowsWritten()
	st.HighWaterMark = int64(st.Pebble["high_water_mark"])
	return nil
}

package dbmon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/services/persist/internal/pgstore"
)

func TestRates(t *testing.T) {
	prev := &schema.DBStats{Up: true, SampledAtNs: 0, XactCommit: 100, XactRollback: 10, StatsResetNs: 1}
	cur := &schema.DBStats{Up: true, SampledAtNs: 2e9, XactCommit: 300, XactRollback: 10, StatsResetNs: 1}
	rates(prev, cur)
	if cur.CommitsPerSec != 100 || cur.RollbacksPerSec != 0 {
		t.Fatalf("rates %+v", cur)
	}
	// Counter went down: reset, no negative rate.
	cur2 := &schema.DBStats{Up: true, SampledAtNs: 4e9, XactCommit: 5, StatsResetNs: 1}
	rates(cur, cur2)
	if cur2.CommitsPerSec != 0 {
		t.Fatalf("rate after counter decrease %v", cur2.CommitsPerSec)
	}
	// stats_reset changed: reset.
	cur3 := &schema.DBStats{Up: true, SampledAtNs: 6e9, XactCommit: 500, StatsResetNs: 2}
	rates(cur2, cur3)
	if cur3.CommitsPerSec != 0 {
		t.Fatalf("rate after stats_reset change %v", cur3.CommitsPerSec)
	}
}

// TestSampleWithStatStatements samples a private server with
// pg_stat_statements preloaded, a table with dead tuples and a long open
// transaction, and checks the figures against the views (MON-2, MON-T3).
func TestSampleWithStatStatements(t *testing.T) {
	ctx := context.Background()
	c := pgtest.StartCluster(t)
	admin, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	c.Stop()
	c.Start()
	url := c.NewDatabase(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool, err := pgstore.NewPool(ctx, url, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pgstore.Migrate(ctx, pool, log); err != nil {
		t.Fatal(err)
	}
	pm := &pgstore.Partman{Premake: 2, Log: log}
	if _, err := pm.Run(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE EXTENSION pg_stat_statements`,
		`ALTER TABLE players SET (autovacuum_enabled = false)`,
		`INSERT INTO players (player_id, logical) SELECT 'p' || g, 0 FROM generate_series(1, 500) g`,
		`UPDATE players SET kills = kills + 1`,
		`SELECT pg_stat_force_next_flush()`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	tx.Exec(ctx, `SELECT txid_current()`)
	time.Sleep(300 * time.Millisecond) // the open transaction must have an age
	src := &PG{DB: &pgstore.DB{Name: "pg0", Pool: pool}}
	st := &schema.DBStats{}
	if err := src.Sample(ctx, st); err != nil {
		t.Fatal(err)
	}
	if !st.PgStatStatements || len(st.TopQueries) == 0 || st.TopQueries[0].Calls == 0 {
		t.Fatalf("pg_stat_statements: %v %+v", st.PgStatStatements, st.TopQueries)
	}
	var dead int64
	for _, tb := range st.Tables {
		if tb.Name == "players" {
			dead = tb.DeadTuples
		}
	}
	var sqlDead int64
	pool.QueryRow(ctx, `SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'players'`).Scan(&sqlDead)
	if dead != 500 || sqlDead != dead {
		t.Fatalf("dead tuples: sample %d, view %d, want 500", dead, sqlDead)
	}
	if st.LongestTransactionSeconds < 0.2 || st.ConnectionsIdleInTransaction < 1 {
		t.Fatalf("open transaction not seen: longest %.2fs idle-in-tx %d", st.LongestTransactionSeconds, st.ConnectionsIdleInTransaction)
	}
	if st.MaxConnections != 200 || st.PartitionCount != 3 || st.DaysAhead != 2 || st.DefaultPartitionAlarm {
		t.Fatalf("sample %+v", st)
	}
}

// TestTodayPartitionRowsBeforeAnalyze: rows inserted into today's partition,
// which has never been analyzed (reltuples = -1), are counted in the sample
// (the dashboard showed 0 for today's partition all day).
func TestTodayPartitionRowsBeforeAnalyze(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pool, err := pgstore.NewPool(ctx, url, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pgstore.Migrate(ctx, pool, log); err != nil {
		t.Fatal(err)
	}
	if _, err := (&pgstore.Partman{Premake: 1, Log: log}).Run(ctx, pool); err != nil {
		t.Fatal(err)
	}
	today := "events_p" + time.Now().UTC().Format("20060102")
	for _, q := range []string{
		`ALTER TABLE ` + today + ` SET (autovacuum_enabled = false)`,
		`INSERT INTO events (seq, ts, zone, logical, event_id, type, payload)
			SELECT g, now(), 'z0_0', 0, 'e' || g, 'moved', '\x00' FROM generate_series(1, 1234) g`,
		`SELECT pg_stat_force_next_flush()`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var reltuples float64
	if err := pool.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE relname = $1`, today).Scan(&reltuples); err != nil || reltuples != -1 {
		t.Fatalf("precondition: reltuples of %s = %v (%v), want -1 (never analyzed)", today, reltuples, err)
	}
	src := &PG{DB: &pgstore.DB{Name: "pg0", Pool: pool}}
	waitfor.True(t, 10*time.Second, func() error {
		st := &schema.DBStats{}
		if err := src.Sample(ctx, st); err != nil {
			return err
		}
		for _, p := range st.Partitions {
			if p.Name == today {
				if p.Rows != 1234 {
					return fmt.Errorf("%s: %d rows in the sample, want 1234", today, p.Rows)
				}
				return nil
			}
		}
		return fmt.Errorf("%s not in the sample", today)
	})
}

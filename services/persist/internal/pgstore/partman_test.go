package pgstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/realmstream/realmstream/services/persist/internal/store"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

func partNames(t *testing.T, s *Store) []string {
	t.Helper()
	ps, hasDefault, err := ListPartitions(context.Background(), s.DBs()[0].Pool)
	if err != nil {
		t.Fatal(err)
	}
	if !hasDefault {
		t.Fatal("default partition missing")
	}
	var out []string
	for _, p := range ps {
		if p.To.Sub(p.From) != 24*time.Hour || p.From.Hour() != 0 || DayName(p.From) != p.Name {
			t.Fatalf("partition %s has bounds %v..%v", p.Name, p.From, p.To)
		}
		out = append(out, p.Name)
	}
	return out
}

func days(from time.Time, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, DayName(from.AddDate(0, 0, i)))
	}
	return out
}

func eq(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestPartitionsAheadAndRetention (PART-3, PART-4, PART-9, PART-12, PART-T1..T3):
// a fake clock walks 40 days; partitions exist for today..today+premake,
// the second run changes nothing, and days past retention are dropped with
// their rows while kept days keep theirs.
func TestPartitionsAheadAndRetention(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t, newDBs(t, 1)...)
	pool := s.DBs()[0].Pool
	day0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	now := day0
	pm := &Partman{Premake: 4, Retention: 30, Log: quietLog(), Now: func() time.Time { return now.Add(13 * time.Hour) }}
	res, err := pm.Run(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	// setup already made day0..day0+3; premake 4 adds day0+4.
	if got := partNames(t, s); !eq(got, days(day0, 5)) {
		t.Fatalf("day 0 partitions %v, want %v", got, days(day0, 5))
	}
	if res.DaysAhead != 4 || !res.Leader {
		t.Fatalf("result %+v", res)
	}
	res, _ = pm.Run(ctx, pool)
	if len(res.Created)+len(res.Removed) != 0 {
		t.Fatalf("second run changed something: %+v", res)
	}
	// A row on each of day0 and day0+2.
	for i, d := range []int{0, 2} {
		r := storetest.Rec(uint64(i+1), storetest.Moved(fmt.Sprint(i), "z0_0", "", day0.AddDate(0, 0, d).Add(time.Hour), 1, 1))
		if _, err := s.Write(ctx, []store.Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	for step := 1; step <= 40; step++ {
		now = day0.AddDate(0, 0, step)
		if _, err := pm.Run(ctx, pool); err != nil {
			t.Fatalf("day %d: %v", step, err)
		}
		got := partNames(t, s)
		first := day0
		if cut := now.AddDate(0, 0, -30); cut.After(first) {
			first = cut
		}
		want := days(first, int(now.AddDate(0, 0, 4).Sub(first).Hours()/24)+1)
		if !eq(got, want) {
			t.Fatalf("day %d: partitions %v, want %v", step, got, want)
		}
		var n int
		pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n)
		wantRows := 2
		if step >= 31 {
			wantRows = 1 // day0 dropped (its range ended at day1 <= now-30)
		}
		if step >= 33 {
			wantRows = 0
		}
		if n != wantRows {
			t.Fatalf("day %d: %d rows, want %d", step, n, wantRows)
		}
	}
}

// TestDefaultPartitionAlarmAndMove (PART-8, PART-T4): a row outside every day
// lands in events_default and raises the alarm; rows of a day that gets its
// partition later are moved out of the default into it, counts preserved.
func TestDefaultPartitionAlarmAndMove(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t, newDBs(t, 1)...)
	pool := s.DBs()[0].Pool
	day0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	far := time.Date(2100, 1, 1, 5, 0, 0, 0, time.UTC)
	soon := day0.AddDate(0, 0, 6).Add(time.Hour) // beyond setup's premake of 3
	recs := []store.Record{
		storetest.Rec(1, storetest.Moved("far", "z0_0", "", far, 1, 1)),
		storetest.Rec(2, storetest.Moved("soon1", "z0_0", "", soon, 1, 1)),
		storetest.Rec(3, storetest.Moved("soon2", "z0_0", "", soon.Add(time.Minute), 1, 1)),
	}
	if _, err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	var inDefault int
	pool.QueryRow(ctx, `SELECT count(*) FROM events_default`).Scan(&inDefault)
	if inDefault != 3 {
		t.Fatalf("%d rows in default, want 3", inDefault)
	}
	pm := &Partman{Premake: 7, Log: quietLog(), Now: func() time.Time { return day0 }}
	res, err := pm.Run(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if res.MovedRows != 2 || res.DefaultRows != 1 {
		t.Fatalf("moved %d, default %d; want 2 moved and 1 left (alarm)", res.MovedRows, res.DefaultRows)
	}
	var inDay, total int
	pool.QueryRow(ctx, `SELECT count(*) FROM `+DayName(soon)).Scan(&inDay)
	pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&total)
	if inDay != 2 || total != 3 {
		t.Fatalf("day partition has %d, total %d", inDay, total)
	}
	var stateRows int64
	pool.QueryRow(ctx, `SELECT default_rows FROM partman_state WHERE parent = 'events'`).Scan(&stateRows)
	if stateRows != 1 {
		t.Fatalf("partman_state.default_rows = %d", stateRows)
	}
}

// TestPartmanSingleRunner (PART-7, PART-T6): while another session holds the
// maintenance lock, a run does nothing and reports it was not the leader.
func TestPartmanSingleRunner(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t, newDBs(t, 1)...)
	pool := s.DBs()[0].Pool
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1))`, partmanLockKey); err != nil {
		t.Fatal(err)
	}
	pm := &Partman{Premake: 10, Log: quietLog(), Now: func() time.Time { return time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) }}
	res, err := pm.Run(ctx, pool)
	if err != nil || res.Leader || len(res.Created) != 0 {
		t.Fatalf("run under a held lock: %+v %v", res, err)
	}
	conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext($1))`, partmanLockKey)
	res, err = pm.Run(ctx, pool)
	if err != nil || !res.Leader || len(res.Created) != 7 {
		t.Fatalf("run after unlock: %+v %v", res, err)
	}
}

// TestLockTimeoutBoundsDDL (PART-6, PART-T5): a transaction holding a lock
// on events makes retention give up within lock_timeout (with retries)
// instead of queueing forever.
func TestLockTimeoutBoundsDDL(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t, newDBs(t, 1)...)
	pool := s.DBs()[0].Pool
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT count(*) FROM events`); err != nil {
		t.Fatal(err)
	}
	pm := &Partman{Premake: 3, Retention: 1, LockTimeout: 200 * time.Millisecond, Log: quietLog(),
		Now: func() time.Time { return time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC) }}
	start := time.Now()
	_, err = pm.Run(ctx, pool)
	if err == nil || !isLockTimeout(err) {
		t.Fatalf("retention under a held lock: %v, want lock timeout", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("gave up after %v", el)
	}
	tx.Rollback(ctx)
	if _, err := pm.Run(ctx, pool); err != nil {
		t.Fatalf("after the lock is gone: %v", err)
	}
}

// TestRetentionArchive: with Archive, expired days move to schema
// persist_archive with their rows instead of being dropped.
func TestRetentionArchive(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t, newDBs(t, 1)...)
	pool := s.DBs()[0].Pool
	day0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	r := storetest.Rec(1, storetest.Moved("a", "z0_0", "", day0.Add(time.Hour), 1, 1))
	if _, err := s.Write(ctx, []store.Record{r}); err != nil {
		t.Fatal(err)
	}
	pm := &Partman{Premake: 3, Retention: 2, Archive: true, Log: quietLog(), Now: func() time.Time { return day0.AddDate(0, 0, 5) }}
	res, err := pm.Run(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 3 || res.Removed[0] != DayName(day0) {
		t.Fatalf("removed %v", res.Removed)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM persist_archive.`+DayName(day0)).Scan(&n); err != nil || n != 1 {
		t.Fatalf("archived rows %d, %v", n, err)
	}
	pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n)
	if n != 0 {
		t.Fatalf("events still holds %d rows", n)
	}
}

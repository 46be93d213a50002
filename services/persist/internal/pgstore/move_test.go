package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/services/persist/internal/store"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

// writeRetrying is what the pipeline does with a batch: retry until stored,
// reloading the map when a database refuses a shard it no longer owns.
func writeRetrying(ctx context.Context, s *Store, recs []store.Record, refused *atomic.Int64) error {
	for {
		_, err := s.Write(ctx, recs)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrNotOwner) {
			return err
		}
		refused.Add(1)
		if err := s.Reload(ctx); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOnlineMove (SHARD-6, SHARD-7, SHARD-T4): a third database is added and
// the logical shards of two zones and of a player move to it while a writer
// keeps writing batches; afterwards the union of the databases holds every
// written event exactly once, each table's per-shard checksums matched at
// the switch, the source is clean and the read models are exact.
func TestOnlineMove(t *testing.T) {
	ctx := context.Background()
	urls := newDBs(t, 3)
	s, mm := setup(t, urls[:2]...)
	pm := &Partman{Premake: 3, Log: quietLog(), Now: func() time.Time { return time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) }}
	if _, err := s.AddDB(ctx, mm, shard.DB{Name: "pg2", URL: urls[2]}, pm); err != nil {
		t.Fatal(err)
	}
	zones := []string{"z0_0", "z0_1", "z0_2", "z1_0", "z1_1", "z1_2", "z2_0", "z2_1", "z2_2"}
	const batches, per = 60, 100
	var refused atomic.Int64
	done := make(chan error, 1)
	go func() {
		seq := uint64(0)
		for b := 0; b < batches; b++ {
			var recs []store.Record
			for i := 0; i < per; i++ {
				seq++
				z := zones[seq%9]
				recs = append(recs, storetest.Rec(seq, storetest.Moved(fmt.Sprint("e", seq), z, fmt.Sprint("p", seq%13),
					storetest.Base.Add(time.Duration(seq)*time.Millisecond), float32(seq), 0)))
			}
			if err := writeRetrying(ctx, s, recs, &refused); err != nil {
				done <- err
				return
			}
			time.Sleep(3 * time.Millisecond)
		}
		done <- nil
	}()
	time.Sleep(50 * time.Millisecond) // let some rows exist before the first move
	moves := []int{shard.Of("z0_0"), shard.Of("z1_1"), shard.Of("p7")}
	for _, l := range moves {
		rep, err := s.MoveLogical(ctx, mm, l, "pg2")
		if err != nil {
			t.Fatalf("move %d: %v", l, err)
		}
		t.Logf("moved logical %d %s->%s: copied %d, events %+v, blocked %v, cleaned %d",
			l, rep.From, rep.To, rep.CopiedRows, rep.Checksums["events"], rep.Blocked, rep.CleanedRows)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("writer batches refused during moves: %d", refused.Load())
	m := mm.m
	for _, l := range moves {
		if m.Assign[l] != "pg2" {
			t.Fatalf("logical %d on %s", l, m.Assign[l])
		}
	}
	// Union = the log, exactly once, each row on the database its key maps to.
	total, seen := 0, map[int64]bool{}
	for _, d := range s.DBs() {
		rows, err := d.Pool.Query(ctx, `SELECT seq, zone FROM events`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var seq int64
			var z string
			rows.Scan(&seq, &z)
			if seen[seq] {
				t.Fatalf("seq %d stored twice", seq)
			}
			seen[seq] = true
			total++
			if m.DBFor(z) != d.Name {
				t.Fatalf("seq %d zone %s on %s, map says %s", seq, z, d.Name, m.DBFor(z))
			}
		}
		rows.Close()
	}
	if total != batches*per {
		t.Fatalf("%d events stored, want %d", total, batches*per)
	}
	for i, z := range zones {
		want := int64(batches * per / 9)
		if i >= 1 && i <= batches*per%9 {
			want++
		}
		zs, ok, err := s.Zone(ctx, z)
		if err != nil || !ok || zs.Events != want {
			t.Fatalf("zone %s summary %+v %v", z, zs, err)
		}
	}
	p, _, _ := s.Player(ctx, "p7")
	if p.LastSeq == 0 || p.LastSeq%13 != 7 {
		t.Fatalf("p7 = %+v", p)
	}
	// Re-running a finished move is a no-op (resumable).
	if _, err := s.MoveLogical(ctx, mm, moves[0], "pg2"); err != nil {
		t.Fatal(err)
	}
}

// TestMoveResumeAndBack (SHARD-T5, SHARD-T6): a mover that died after
// blocking the source leaves the shard refusing writes; running the same
// move again finishes it and writes resume on the target. Moving the shard
// back restores the original placement with identical checksums.
func TestMoveResumeAndBack(t *testing.T) {
	ctx := context.Background()
	s, mm := setup(t, newDBs(t, 2)...)
	l := shard.Of("z1_1")
	from := mm.m.Assign[l]
	to := "pg0"
	if from == "pg0" {
		to = "pg1"
	}
	var recs []store.Record
	for i := 1; i <= 200; i++ {
		recs = append(recs, storetest.Rec(uint64(i), storetest.Died(fmt.Sprint("e", i), "z1_1", fmt.Sprint("p", i%5), fmt.Sprint("p", (i+1)%5),
			storetest.Base.Add(time.Duration(i)*time.Millisecond))))
	}
	if _, err := s.Write(ctx, recs[:100]); err != nil {
		t.Fatal(err)
	}
	before := map[string]Sum{}
	for _, tb := range movedTables {
		sum, err := Checksum(ctx, s.DB(from), tb, l)
		if err != nil {
			t.Fatal(err)
		}
		before[tb] = sum
	}
	// The mover "crashed" right after step 2.
	if _, err := s.DB(from).Pool.Exec(ctx, `UPDATE shard_owner SET state = 'blocked' WHERE logical = $1`, int16(l)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(ctx, recs[100:]); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("write to a blocked shard: %v", err)
	}
	rep, err := s.MoveLogical(ctx, mm, l, to)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checksums["events"] != before["events"] {
		t.Fatalf("resumed move verified %+v, before %+v", rep.Checksums["events"], before["events"])
	}
	// The paused batch goes through now, on the target.
	var refused atomic.Int64
	if err := writeRetrying(ctx, s, recs[100:], &refused); err != nil {
		t.Fatal(err)
	}
	z, _, _ := s.Zone(ctx, "z1_1")
	if z.Events != 200 || z.Deaths != 200 {
		t.Fatalf("zone after resume %+v", z)
	}
	// And back: the shard returns to its first database with everything.
	if _, err := s.MoveLogical(ctx, mm, l, from); err != nil {
		t.Fatal(err)
	}
	if mm.m.Assign[l] != from || mm.m.Version != 3 {
		t.Fatalf("after moving back: on %s, version %d", mm.m.Assign[l], mm.m.Version)
	}
	ev, _ := Checksum(ctx, s.DB(from), "events", l)
	left, _ := Checksum(ctx, s.DB(to), "events", l)
	if ev.Rows != 200 || left.Rows != 0 {
		t.Fatalf("after moving back: %d rows on %s, %d left on %s", ev.Rows, from, left.Rows, to)
	}
	var kills, deaths int64
	for i := 0; i < 5; i++ {
		p, _, _ := s.Player(ctx, fmt.Sprint("p", i))
		kills += p.Kills
		deaths += p.Deaths
	}
	if kills != 200 || deaths != 200 {
		t.Fatalf("kills %d deaths %d, want 200 each", kills, deaths)
	}
}

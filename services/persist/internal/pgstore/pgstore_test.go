package pgstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/services/persist/internal/store"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

func TestConformanceOneShard(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := setup(t, newDBs(t, 1)...)
		return s
	})
}

func TestConformanceTwoShards(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := setup(t, newDBs(t, 2)...)
		return s
	})
}

// TestEveryEventLandsOnItsShard (SHARD-2): events on the database of
// shard.Of(zone), players on that of shard.Of(player), nothing elsewhere.
func TestEveryEventLandsOnItsShard(t *testing.T) {
	ctx := context.Background()
	s, _ := setup(t, newDBs(t, 2)...)
	m := s.Map()
	var recs []store.Record
	zones := []string{"z0_0", "z0_1", "z0_2", "z1_0", "z1_1", "z1_2", "z2_0", "z2_1", "z2_2"}
	for i := 1; i <= 900; i++ {
		z := zones[i%len(zones)]
		recs = append(recs, storetest.Rec(uint64(i), storetest.Moved(fmt.Sprintf("e%d", i), z, fmt.Sprintf("p%d", i%37), storetest.Base.Add(time.Duration(i)*time.Millisecond), 1, 2)))
	}
	if _, err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	perDB := map[string]bool{}
	for _, d := range s.DBs() {
		rows, err := d.Pool.Query(ctx, `SELECT DISTINCT zone FROM events`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var z string
			rows.Scan(&z)
			if m.DBFor(z) != d.Name {
				t.Errorf("zone %s (logical %d) stored on %s, map says %s", z, shard.Of(z), d.Name, m.DBFor(z))
			}
			perDB[d.Name] = true
		}
		rows.Close()
		prow, _ := d.Pool.Query(ctx, `SELECT player_id FROM players`)
		for prow.Next() {
			var p string
			prow.Scan(&p)
			if m.DBFor(p) != d.Name {
				t.Errorf("player %s stored on %s, map says %s", p, d.Name, m.DBFor(p))
			}
		}
		prow.Close()
		var n int
		d.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n)
		t.Logf("%s holds %d events", d.Name, n)
	}
	if len(perDB) != 2 {
		t.Fatalf("events only on %v: the test zones should span both shards", perDB)
	}
	var total int
	for _, d := range s.DBs() {
		var n int
		d.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n)
		total += n
	}
	if total != 900 {
		t.Fatalf("total %d, want 900", total)
	}
}

// TestStaleMapIsRefused (SHARD-4): a writer whose map sends a logical shard
// to a database that does not own it gets ErrNotOwner and writes nothing.
func TestStaleMapIsRefused(t *testing.T) {
	ctx := context.Background()
	s, mm := setup(t, newDBs(t, 2)...)
	l := shard.Of("z0_0")
	other := "pg0"
	if mm.m.Assign[l] == "pg0" {
		other = "pg1"
	}
	stale, _ := mm.m.WithMove(l, other)
	mm.m = stale
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := s.Write(ctx, []store.Record{storetest.Rec(1, storetest.Moved("a", "z0_0", "", storetest.Base, 1, 1))})
	if err == nil || !errorsIs(err, ErrNotOwner) {
		t.Fatalf("stale write: %v, want ErrNotOwner", err)
	}
}

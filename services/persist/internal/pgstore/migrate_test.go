package pgstore

import (
	"context"
	"io/fs"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/services/persist/internal/store"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

// TestFieldSeqMigrationKeepsOldRule: a player row stored before migration
// 00002 (whole-row last_seq) gets every field-group sequence = last_seq, so
// an older event redelivered after the upgrade changes nothing and a newer
// one changes only the fields it sets.
func TestFieldSeqMigrationKeepsOldRule(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := pgtest.NewDatabase(t)
	pool, err := NewPool(ctx, url, 2)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDBFromPool(pool)
	sub, _ := fs.Sub(migrations, "migrations")
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO players (player_id, logical, name, zone, x, y, hp, online, last_seq)
		VALUES ('old', $1, 'legacy', 'z0_0', 1, 2, 50, true, 10)`, int16(shard.Of("old"))); err != nil {
		t.Fatal(err)
	}
	db.Close()
	pool.Close()

	s, _ := setup(t, url) // migrates to the latest version
	ts := storetest.Base
	if _, err := s.Write(ctx, []store.Record{
		storetest.Rec(5, storetest.Joined("j", "z1_1", "old", ts, 100)), // older than the row: nothing
		storetest.Rec(11, storetest.Moved("m", "z0_0", "old", ts.Add(time.Second), 7, 8)),
	}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Player(ctx, "old")
	if err != nil || !ok {
		t.Fatalf("player: %v %v", ok, err)
	}
	if got.Name != "legacy" || got.HP != 50 || got.Zone != "z0_0" || got.X != 7 || got.Y != 8 || !got.Online || got.LastSeq != 11 {
		t.Fatalf("after upgrade: %+v", got)
	}
}

// TestTickRecordMigration: rows stored before migration 00003 (one event
// per message, no idx) get idx 0 and stay addressable; a redelivered legacy
// message stores nothing twice and counts no kill twice; zone_members is
// backfilled from the stored events, so the zone's players (doubled by a
// re-join before the fix) become the players present.
func TestTickRecordMigration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := pgtest.NewDatabase(t)
	pool, err := NewPool(ctx, url, 2)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDBFromPool(pool)
	sub, _ := fs.Sub(migrations, "migrations")
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	ts := storetest.Base
	legacy := []store.Record{
		storetest.Rec(1, storetest.Joined("j1", "z0_0", "ann", ts, 10)),
		storetest.Rec(2, storetest.Joined("j2", "z0_0", "ann", ts, 10)), // re-join while present
		storetest.Rec(3, storetest.Kill("k1", "z0_0", "ann", "ben", ts)),
	}
	lz := int16(shard.Of("z0_0"))
	for _, r := range legacy {
		if _, err := pool.Exec(ctx, `INSERT INTO events (seq, ts, zone, logical, event_id, player_id, type, fence, payload)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, int64(r.Seq), time.Unix(0, r.TSNs).UTC(), r.Zone, lz, r.EventID, r.PlayerID, r.Type, int64(r.Fence), r.Payload); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE persist_hwm SET seq = 3;
		INSERT INTO player_tallies (player_id, seq, kind, logical) VALUES ('ann', 3, 'k', `+itoa(shard.Of("ann"))+`);
		INSERT INTO players (player_id, logical, kills, last_seq) VALUES ('ann', `+itoa(shard.Of("ann"))+`, 1, 3);
		INSERT INTO zone_summaries (zone, logical, events, last_seq, players, deaths) VALUES ('z0_0', `+itoa(int(lz))+`, 3, 3, 2, 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	pool.Close()

	s, _ := setup(t, url) // migrates to the latest version
	z, _, err := s.Zone(ctx, "z0_0")
	if err != nil || z.Players != 1 {
		t.Fatalf("zone after migration: %+v %v (players want 1)", z, err)
	}
	res, err := s.Write(ctx, legacy)
	if err != nil || res.Inserted != 0 || res.Skipped != 3 {
		t.Fatalf("redelivered legacy messages: %+v %v", res, err)
	}
	if a, _, _ := s.Player(ctx, "ann"); a.Kills != 1 {
		t.Fatalf("ann kills %d, want 1", a.Kills)
	}
	rows, err := s.EventsBySeq(ctx, store.SeqRangeQuery{Zone: "z0_0"})
	if err != nil || len(rows) != 3 || rows[2].Seq != 3 || rows[2].Index != 0 {
		t.Fatalf("legacy rows by seq: %v %v", rows, err)
	}
	if _, err := s.Write(ctx, storetest.Tick(4, storetest.Moved("m1", "z0_0", "ann", ts, 1, 1), storetest.Moved("m2", "z0_0", "ann", ts, 2, 2))); err != nil {
		t.Fatal(err)
	}
	if z, _, _ := s.Zone(ctx, "z0_0"); z.Events != 5 || z.Players != 1 {
		t.Fatalf("zone after a record: %+v", z)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

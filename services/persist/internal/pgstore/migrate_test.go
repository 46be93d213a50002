package pgstore

import (
	"context"
	"io/fs"
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

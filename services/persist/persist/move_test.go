package persist

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/query"
)

// TestOnlineMoveWhileEventsFlow: `persist shards add-db` + `move` of the
// logical shards of three zones to a new database while events are being
// published and persisted; afterwards the three databases hold exactly the
// JetStream log, each row where the new map says, and the move reports
// matching counts and checksums.
func TestOnlineMoveWhileEventsFlow(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	urls := []string{pgtest.NewDatabase(t), pgtest.NewDatabase(t), pgtest.NewDatabase(t)}
	cfg := testConfig(srv.URL)
	cfg.PGURLs = urls[:2]
	start(t, cfg)
	pub, _ := newPublisher(t, srv.URL)
	if err := pub.publish(ctx, 900); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 30; i++ {
			if err := pub.publish(ctx, 100); err != nil {
				done <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		done <- nil
	}()
	a, err := OpenAdmin(ctx, cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var out bytes.Buffer
	if err := a.AddDB(ctx, "pg2", urls[2], false, &out); err != nil {
		t.Fatal(err)
	}
	for _, z := range []string{"z0_0", "z1_1", "z2_2"} {
		out.Reset()
		if err := a.Move(ctx, shard.Of(z), "pg2", &out); err != nil {
			t.Fatalf("move %s: %v", z, err)
		}
		var rep struct {
			Logical   int
			Checksums map[string]struct{ Rows int64 }
		}
		json.Unmarshal(out.Bytes(), &rep)
		t.Logf("moved %s (logical %d): %d event rows verified", z, rep.Logical, rep.Checksums["events"].Rows)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitStored(t, urls, 3900, 30*time.Second)
	m := shardMap(t, srv.URL)
	if m.DBFor("z1_1") != "pg2" || m.Version != 5 {
		t.Fatalf("map after moves: version %d, z1_1 on %s", m.Version, m.DBFor("z1_1"))
	}
	stored := pgRows(t, urls, func(db int, zone string) bool { return m.DBFor(zone) == []string{"pg0", "pg1", "pg2"}[db] })
	assertExactlyTheLog(t, pub, stored)
	// A move while nothing is written: replicas follow the map through the KV
	// watch, so reads of the moved zone are answered from the new database.
	nc, _ := natstest.Connect(t, srv.URL)
	before := request[query.ZoneReply](t, nc, wire.QueryZone, map[string]any{"zone": "z0_1"})
	if !before.Found || before.Zone.Events == 0 {
		t.Fatalf("z0_1 before: %+v", before)
	}
	if err := a.Move(ctx, shard.Of("z0_1"), "pg2", io.Discard); err != nil {
		t.Fatal(err)
	}
	waitfor.True(t, 5*time.Second, func() error {
		after := request[query.ZoneReply](t, nc, wire.QueryZone, map[string]any{"zone": "z0_1"})
		if !after.Found || after.Zone.Events != before.Zone.Events {
			return errorf("z0_1 after the move: %+v", after)
		}
		return nil
	})
	var show bytes.Buffer
	if err := a.Show(ctx, &show); err != nil {
		t.Fatal(err)
	}
	t.Log(show.String())
}

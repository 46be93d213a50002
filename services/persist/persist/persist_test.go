package persist

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/query"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c.PGURLs = []string{"pg0=postgres://a/b", "pg0=postgres://a/c"}
	if err := c.Validate(); err == nil {
		t.Fatal("duplicate shard names accepted")
	}
	c.PGURLs = []string{"mysql://x"}
	if err := c.Validate(); err == nil {
		t.Fatal("non-postgres URL accepted")
	}
	c = DefaultConfig()
	c.BatchSize = 0
	if err := c.Validate(); err == nil {
		t.Fatal("batch size 0 accepted")
	}
}

// TestPebbleService: with no Postgres the service stores into Pebble,
// answers the query API and publishes stats.db.pebble.
func TestPebbleService(t *testing.T) {
	srv := natstest.Start(t)
	cfg := testConfig(srv.URL)
	cfg.PebbleDir = t.TempDir()
	r := start(t, cfg)
	pub, nc := newPublisher(t, srv.URL)
	if err := pub.publish(context.Background(), 450); err != nil {
		t.Fatal(err)
	}
	waitfor.True(t, 20*time.Second, func() error {
		if n := r.svc.EventsStored(); n != 450 {
			return errorf("%d stored", n)
		}
		return nil
	})
	zr := request[query.ZoneEventsReply](t, nc, wire.QueryZoneEvents, map[string]any{"zone": "z1_1", "limit": 1000})
	if zr.Error != "" || len(zr.Events) != 50 {
		t.Fatalf("zone events: %d, %q", len(zr.Events), zr.Error)
	}
	pr := request[query.PlayerReply](t, nc, wire.QueryPlayer, map[string]any{"player_id": "p1"})
	if !pr.Found || pr.Player.LastSeq == 0 {
		t.Fatalf("player: %+v", pr)
	}
	zs := request[query.ZoneReply](t, nc, wire.QueryZone, map[string]any{"zone": "z1_1"})
	if !zs.Found || zs.Zone.Events != 50 {
		t.Fatalf("zone: %+v", zs)
	}
	bad := request[query.ZoneReply](t, nc, wire.QueryZone, map[string]any{"zone": "no.such"})
	if bad.Error == "" {
		t.Fatal("bad zone accepted")
	}
	hb, err := nc.SubscribeSync(wire.HeartbeatSubject("persist", cfg.InstanceID))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := hb.NextMsg(3 * time.Second); err != nil {
		t.Fatalf("no heartbeat: %v", err)
	} else if h := (&schema.Heartbeat{}); proto.Unmarshal(m.Data, h) != nil || h.Service != "persist" || !h.Ready {
		t.Fatalf("heartbeat %+v", h)
	}
	resp, err := http.Get("http://" + r.svc.HTTPAddr() + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	_, js := natstest.Connect(t, srv.URL)
	st := nextStats(t, js, "pebble", 3*time.Second)
	if st.Backend != "pebble" || !st.Up || st.Pebble["disk_space_bytes"] <= 0 {
		t.Fatalf("pebble stats %+v", st)
	}
}

func errorf(format string, a ...any) error { return &strErr{s: sprintf(format, a...)} }

// nextStats reads the last stats.db.<shard> event, waiting up to timeout.
func nextStats(t *testing.T, js jetstream.JetStream, shardName string, timeout time.Duration) *schema.DBStats {
	t.Helper()
	var st *schema.DBStats
	waitfor.True(t, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := js.Stream(ctx, wire.StreamStats)
		if err != nil {
			return err
		}
		m, err := s.GetLastMsgForSubject(ctx, wire.StatsDBSubject(shardName))
		if err != nil {
			return err
		}
		st = &schema.DBStats{}
		return proto.Unmarshal(m.Data, st)
	})
	return st
}

// TestTwoShards (SHARD-2, MON): two Postgres databases as two physical
// shards; every event lands on the shard its zone hashes to, the database
// holds exactly the log, and DB stats for both shards arrive within one
// interval and agree with the SQL views.
func TestTwoShards(t *testing.T) {
	srv := natstest.Start(t)
	urls := []string{pgtest.NewDatabase(t), pgtest.NewDatabase(t)}
	cfg := testConfig(srv.URL)
	cfg.PGURLs = urls
	started := time.Now()
	r := start(t, cfg)
	readyAfter := time.Since(started)
	_, js := natstest.Connect(t, srv.URL)
	// Stats: both shards within one interval of ready.
	for _, name := range []string{"pg0", "pg1"} {
		st := nextStats(t, js, name, cfg.StatsInterval+500*time.Millisecond)
		if !st.Up || st.Backend != "postgres" || st.Shard != name {
			t.Fatalf("%s stats: %+v", name, st)
		}
	}
	t.Logf("ready after %v; stats of both shards within one interval (%v)", readyAfter, cfg.StatsInterval)

	pub, nc := newPublisher(t, srv.URL)
	if err := pub.publish(context.Background(), 1800); err != nil {
		t.Fatal(err)
	}
	waitStored(t, urls, 1800, 30*time.Second)
	m := shardMap(t, srv.URL)
	stored := pgRows(t, urls, func(db int, zone string) bool { return m.DBFor(zone) == []string{"pg0", "pg1"}[db] })
	assertExactlyTheLog(t, pub, stored)
	_ = r
	zs := request[query.ZoneReply](t, nc, wire.QueryZone, map[string]any{"zone": "z2_2"})
	if !zs.Found || zs.Zone.Events != 200 {
		t.Fatalf("zone summary %+v", zs)
	}

	// A row outside every day lands in events_default and the stats event of
	// its shard raises the alarm.
	far := storetest.Moved("far-future", "z0_0", "p1", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), 1, 1)
	fb, _ := proto.Marshal(far)
	if _, err := js.Publish(context.Background(), wire.EventSubject("z0_0"), fb, jetstream.WithMsgID("far-future")); err != nil {
		t.Fatal(err)
	}
	farShard := m.DBFor("z0_0")
	waitfor.True(t, 5*time.Second, func() error {
		st := nextStats(t, js, farShard, time.Second)
		if !st.DefaultPartitionAlarm || st.DefaultPartitionRows != 1 {
			return errorf("%s: alarm %v, default rows %d", farShard, st.DefaultPartitionAlarm, st.DefaultPartitionRows)
		}
		return nil
	})
	other := "pg0"
	if farShard == "pg0" {
		other = "pg1"
	}
	if st := nextStats(t, js, other, time.Second); st.DefaultPartitionAlarm {
		t.Fatalf("%s raised the alarm too", other)
	}

	// Figures agree with the views (read right after the sample).
	for i, name := range []string{"pg0", "pg1"} {
		st := nextStats(t, js, name, 3*time.Second)
		seq := st.SampleSeq
		waitfor.True(t, 3*time.Second, func() error {
			st = nextStats(t, js, name, time.Second)
			if st.SampleSeq == seq {
				return errorf("no new sample")
			}
			return nil
		})
		checkStatsAgainstSQL(t, urls[i], st)
	}
}

func shardMap(t *testing.T, url string) shard.Map {
	t.Helper()
	_, js := natstest.Connect(t, url)
	kv, err := js.KeyValue(context.Background(), "persist_shardmap")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), "map")
	if err != nil {
		t.Fatal(err)
	}
	m, err := shard.Decode(e.Value())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

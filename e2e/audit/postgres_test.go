package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/schema"
)

// The audit needs only the columns it reads; persist's real schema has more.
const miniSchema = `CREATE TABLE events (seq bigint NOT NULL, zone text NOT NULL, payload bytea NOT NULL, idx integer NOT NULL DEFAULT 0);
CREATE TABLE players (player_id text PRIMARY KEY, name text, zone text, x real, y real, hp integer, online boolean,
	kills bigint NOT NULL DEFAULT 0, deaths bigint NOT NULL DEFAULT 0);
CREATE TABLE zone_summaries (zone text PRIMARY KEY, events bigint, last_seq bigint, players bigint, deaths bigint);`

func TestAuditPostgresAgainstLog(t *testing.T) {
	_, _, js := natstest.StartWithStreams(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := &appender{t: t, js: js, last: map[string]uint64{}}
	join := func(fence uint64, cmd, player string, x, y float32) *schema.Event {
		return &schema.Event{Fence: fence, CommandId: cmd, PlayerId: player, Body: &schema.Event_PlayerJoined{PlayerJoined: &schema.PlayerJoined{
			Player: &schema.PlayerState{PlayerId: player, Name: player, X: x, Y: y, Hp: 100}}}}
	}
	a.append("z0_0", claim(1), nil)
	a.append("z0_0", join(1, "s1:1", "p-a", 10, 10), nil)
	a.append("z0_0", join(1, "s2:1", "p-b", 20, 20), nil)
	a.append("z0_0", &schema.Event{Fence: 1, CommandId: "s1:2", PlayerId: "p-a", Body: &schema.Event_AttackHit{AttackHit: &schema.AttackHit{TargetId: "p-b", Damage: 100, TargetHp: 0, Killed: true}}}, nil)
	a.append("z1_0", claim(1), nil)
	a.append("z1_0", join(1, "s3:1", "p-c", 5, 5), nil)
	logs, _, vs, err := ReadEvents(ctx, js)
	if err != nil || len(vs) > 0 {
		t.Fatal(err, vs)
	}
	urls := []string{pgtest.NewDatabase(t), pgtest.NewDatabase(t)}
	conns := make([]*pgx.Conn, 2)
	for i, u := range urls {
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		if _, err := c.Exec(ctx, miniSchema); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	// z0_0 on shard 0, z1_0 on shard 1, as persist would shard them.
	for z, zl := range logs {
		c := conns[0]
		if z == "z1_0" {
			c = conns[1]
		}
		for _, le := range zl.Events {
			if _, err := c.Exec(ctx, `INSERT INTO events VALUES ($1, $2, $3, $4)`, int64(le.Seq), z, le.Raw, le.Index); err != nil {
				t.Fatal(err)
			}
		}
	}
	f, vs, err := CheckPostgres(ctx, urls, logs, time.Second)
	if err != nil || len(vs) > 0 || f.PGRows != 6 {
		t.Fatalf("equal stores: %+v %v %v", f, err, vs)
	}
	// Lose one row, double another (on the other shard), corrupt a third.
	if _, err := conns[0].Exec(ctx, `DELETE FROM events WHERE seq = (SELECT min(seq) FROM events WHERE zone = 'z0_0')`); err != nil {
		t.Fatal(err)
	}
	if _, err := conns[1].Exec(ctx, `INSERT INTO events SELECT seq + 0, 'z0_0', '\x00' FROM (VALUES (0)) v(x), LATERAL (SELECT max(seq) AS seq FROM events) m`); err != nil {
		t.Fatal(err)
	}
	f, vs, err = CheckPostgres(ctx, urls, logs, 600*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]int{}
	for _, v := range vs {
		checks[v.Check]++
	}
	if f.Missing != 1 || checks["pg-missing"] != 1 || (checks["pg-doubled"]+checks["pg-different"]) == 0 {
		t.Fatalf("broken stores: %+v %v", f, vs)
	}

	// Read models: a correct projection passes, a wrong one is named.
	for _, q := range []string{
		`INSERT INTO players VALUES ('p-a', 'p-a', 'z0_0', 10, 10, 100, true, 1, 0), ('p-b', 'p-b', 'z0_0', 20, 20, 0, true, 0, 1)`,
		`INSERT INTO zone_summaries VALUES ('z0_0', 4, 4, 2, 1)`,
	} {
		if _, err := conns[0].Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`INSERT INTO players VALUES ('p-c', 'p-c', 'z1_0', 5, 5, 100, true, 0, 0)`,
		`INSERT INTO zone_summaries VALUES ('z1_0', 2, 6, 1, 0)`,
	} {
		if _, err := conns[1].Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rf, vs, err := CheckReadModels(ctx, urls, logs)
	if err != nil || len(vs) != 0 {
		t.Fatalf("read models: %+v %v %v", rf, err, vs)
	}
	if _, err := conns[0].Exec(ctx, `UPDATE players SET deaths = 0 WHERE player_id = 'p-b'`); err != nil {
		t.Fatal(err)
	}
	rf, vs, err = CheckReadModels(ctx, urls, logs)
	if err != nil || rf.PlayerMismatch != 1 || len(vs) != 1 || !strings.Contains(vs[0].Detail, "p-b") {
		t.Fatalf("wrong read model not found: %+v %v %v", rf, err, vs)
	}
}

// TestAuditTickRecords: the audit reads tick records (Realm-Schema 2) as
// their events at (seq, index), checks them with zonelog, compares the
// Postgres rows per (seq, index) by count and checksum, names a missing or
// doubled event of a record, and folds a re-join while present as one
// player in the zone.
func TestAuditTickRecords(t *testing.T) {
	_, _, js := natstest.StartWithStreams(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := &appender{t: t, js: js, last: map[string]uint64{}}
	join := func(cmd, player string) *schema.Event {
		return &schema.Event{Fence: 1, CommandId: cmd, PlayerId: player, Body: &schema.Event_PlayerJoined{PlayerJoined: &schema.PlayerJoined{
			Player: &schema.PlayerState{PlayerId: player, Name: player, Hp: 100}}}}
	}
	a.appendRecord("z0_0", 1, 1, claim(1), join("s1:1", "p-a"), join("s2:1", "p-b"))
	a.appendRecord("z0_0", 1, 2, moved(1, "s1:2"), join("s1:3", "p-a")) // p-a re-joins while present
	a.append("z1_0", claim(1), nil)                                     // a legacy message
	logs, n, vs, err := ReadEvents(ctx, js)
	if err != nil || len(vs) > 0 || n != 3 {
		t.Fatalf("read: n=%d %v %v", n, err, vs)
	}
	lf, _, vs := CheckLogs(logs)
	if len(vs) > 0 || lf.Events != 6 || lf.Messages != 3 || lf.Records != 2 || lf.Claims != 2 {
		t.Fatalf("logs: %+v %v", lf, vs)
	}
	if e := logs["z0_0"].Events[4]; e.Seq != 2 || e.Index != 1 || e.Event.CommandId != "s1:3" {
		t.Fatalf("event 4 of z0_0 at %d/%d (%s)", e.Seq, e.Index, e.Event.CommandId)
	}
	_, zones := Fold(logs)
	if zones["z0_0"].Players != 2 || zones["z0_0"].Events != 5 {
		t.Fatalf("folded z0_0 %+v", zones["z0_0"])
	}
	url := pgtest.NewDatabase(t)
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, miniSchema); err != nil {
		t.Fatal(err)
	}
	for z, zl := range logs {
		for _, le := range zl.Events {
			if _, err := c.Exec(ctx, `INSERT INTO events VALUES ($1, $2, $3, $4)`, int64(le.Seq), z, le.Raw, le.Index); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A row of z1_0 below its first message in JetStream: history the
	// world trimmed from the log (issue 16), not compared.
	if _, err := c.Exec(ctx, `INSERT INTO events VALUES (1, 'z1_0', '\x01', 0)`); err != nil {
		t.Fatal(err)
	}
	f, vs, err := CheckPostgres(ctx, []string{url}, logs, time.Second)
	if err != nil || len(vs) > 0 || f.PGRows != 6 || f.LogRows != 6 {
		t.Fatalf("equal: %+v %v %v", f, err, vs)
	}
	// One event of a record lost, another stored twice.
	if _, err := c.Exec(ctx, `DELETE FROM events WHERE seq = 1 AND idx = 2;
		INSERT INTO events SELECT seq, zone, payload, idx FROM events WHERE seq = 2 AND idx = 0`); err != nil {
		t.Fatal(err)
	}
	f, vs, err = CheckPostgres(ctx, []string{url}, logs, 600*time.Millisecond)
	if err != nil || f.Missing != 1 || f.Doubled != 1 {
		t.Fatalf("broken: %+v %v %v", f, err, vs)
	}
	for _, v := range vs {
		if v.Check == "pg-missing" && !strings.Contains(v.Detail, "seq 1 index 2") {
			t.Fatalf("missing row not named: %v", v)
		}
	}
}

package persist

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
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

// pos is an event's address: (stream sequence, index in its record).
type pos struct {
	seq int64
	idx int32
}

// tickPublisher commits tick records as the world does: one message per
// zone tick (Realm-Schema 2), fenced on the zone's previous record.
type tickPublisher struct {
	js   jetstream.JetStream
	mu   sync.Mutex
	n    int
	last map[string]uint64 // zone -> seq of its last record
	rows map[pos]string    // every event in the log -> event id
	msgs map[uint64]string // seq -> zone
	evs  map[uint64][]*schema.Event
}

func newTickPublisher(t *testing.T, url string) (*tickPublisher, *nats.Conn) {
	nc, js := natstest.Connect(t, url)
	return &tickPublisher{js: js, last: map[string]uint64{}, rows: map[pos]string{}, msgs: map[uint64]string{},
		evs: map[uint64][]*schema.Event{}}, nc
}

// publish commits one record of per events in zone, by the given players.
func (p *tickPublisher) publish(ctx context.Context, zone string, players []string, per int) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var evs []*schema.Event
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := 0; i < per; i++ {
		p.n++
		player := players[p.n%len(players)]
		id := fmt.Sprintf("%s/e/%d", zone, p.n)
		if p.n%11 == 1 {
			evs = append(evs, storetest.Joined(id, zone, player, now, 100))
		} else {
			evs = append(evs, storetest.Moved(id, zone, player, now, float32(p.n%1000), float32(i)))
		}
	}
	h, b := storetest.TickMsg(1, uint64(p.n), evs...)
	h.Set(wire.HeaderExpectedLastSubjSeq, fmt.Sprint(p.last[zone]))
	h.Set(wire.HeaderZone, zone)
	ack, err := p.js.PublishMsg(ctx, &nats.Msg{Subject: wire.EventSubject(zone), Header: h, Data: b})
	if err != nil {
		return 0, err
	}
	p.last[zone] = ack.Sequence
	p.msgs[ack.Sequence] = zone
	p.evs[ack.Sequence] = evs
	for i, ev := range evs {
		p.rows[pos{int64(ack.Sequence), int32(i)}] = ev.EventId
	}
	return ack.Sequence, nil
}

// pgEventRows returns (seq, idx) -> how many times it is stored, over the
// databases.
func pgEventRows(t *testing.T, urls ...string) map[pos]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[pos]int{}
	for _, u := range urls {
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatalf("connect %s: %v", u, err)
		}
		rows, err := c.Query(ctx, `SELECT seq, idx FROM events`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var p pos
			if err := rows.Scan(&p.seq, &p.idx); err != nil {
				t.Fatal(err)
			}
			out[p]++
		}
		rows.Close()
		c.Close(ctx)
	}
	return out
}

// TestShardDownPausesOnlyItsShards (issue 15 item 4): one shard's private
// Postgres is stopped while tick records keep coming for every zone. The
// other shard's events keep being stored and acked; only the messages that
// touch the stopped shard wait (carried, kept alive), and after it returns
// both databases hold exactly the log, per (seq, index).
//
// Each zone's players are chosen on the zone's own shard, so a message
// touches one database: a message whose player rows live on the stopped
// shard waits too (read models are part of its commit).
func TestShardDownPausesOnlyItsShards(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	cluster := pgtest.StartCluster(t)
	urls := []string{cluster.NewDatabase(t), pgtest.NewDatabase(t)}
	cfg := testConfig(srv.URL)
	cfg.PGURLs = urls
	m, err := shard.Even([]shard.DB{{Name: "pg0", URL: urls[0]}, {Name: "pg1", URL: urls[1]}})
	if err != nil {
		t.Fatal(err)
	}
	playersOf := map[string][]string{}
	for i := 0; len(playersOf["pg0"]) < 5 || len(playersOf["pg1"]) < 5; i++ {
		p := fmt.Sprintf("player%d", i)
		playersOf[m.DBFor(p)] = append(playersOf[m.DBFor(p)], p)
	}
	var down, up []string
	for _, z := range zones {
		if m.DBFor(z) == "pg0" {
			down = append(down, z)
		} else {
			up = append(up, z)
		}
	}
	if len(down) == 0 || len(up) == 0 {
		t.Fatalf("zones do not span both shards: %v / %v", down, up)
	}
	r := start(t, cfg)
	pub, nc := newTickPublisher(t, srv.URL)
	round := func() {
		for _, z := range zones {
			if _, err := pub.publish(ctx, z, playersOf[m.DBFor(z)], 25); err != nil {
				t.Fatal(err)
			}
		}
	}
	countOn := func(zs []string) int {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		n := 0
		for p := range pub.rows {
			for _, z := range zs {
				if pub.msgs[uint64(p.seq)] == z {
					n++
				}
			}
		}
		return n
	}
	for i := 0; i < 4; i++ {
		round()
	}
	waitfor.True(t, 30*time.Second, func() error {
		if n := len(pgEventRows(t, urls...)); n != len(pub.rows) {
			return fmt.Errorf("%d of %d events stored", n, len(pub.rows))
		}
		return nil
	})

	cluster.Stop()
	for i := 0; i < 6; i++ {
		round()
	}
	// The up shard gets every event of its zones, and those messages are
	// acked, while the down shard's wait.
	wantUp := countOn(up)
	waitfor.True(t, 30*time.Second, func() error {
		if n := len(pgEventRows(t, urls[1])); n != wantUp {
			return fmt.Errorf("up shard has %d of %d events", n, wantUp)
		}
		return nil
	})
	cons, err := pub.js.Consumer(ctx, wire.StreamEvents, wire.DurablePersist)
	if err != nil {
		t.Fatal(err)
	}
	waitfor.True(t, 20*time.Second, func() error {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if want := 6 * len(down); info.NumAckPending != want || info.NumPending != 0 {
			return fmt.Errorf("ack pending %d (want %d: the down shard's messages), pending %d", info.NumAckPending, want, info.NumPending)
		}
		return nil
	})
	floor := request[query.AckFloorReply](t, nc, wire.QueryAckFloor, map[string]any{})
	if floor.Error != "" || floor.AckFloor >= floor.StreamLastSeq || floor.NumAckPending != 6*len(down) {
		t.Fatalf("ack floor with a shard down: %+v", floor)
	}

	cluster.Start()
	round()
	waitfor.True(t, 60*time.Second, func() error {
		if n := len(pgEventRows(t, urls...)); n != len(pub.rows) {
			return fmt.Errorf("%d of %d events stored", n, len(pub.rows))
		}
		return nil
	})
	stored := pgEventRows(t, urls...)
	for p, n := range stored {
		if n != 1 {
			t.Errorf("%v stored %d times", p, n)
		}
		if _, ok := pub.rows[p]; !ok {
			t.Errorf("%v stored but not in the log", p)
		}
	}
	waitfor.True(t, 20*time.Second, func() error {
		f := request[query.AckFloorReply](t, nc, wire.QueryAckFloor, map[string]any{})
		if f.AckFloor != f.StreamLastSeq {
			return fmt.Errorf("ack floor %d, stream last %d", f.AckFloor, f.StreamLastSeq)
		}
		return nil
	})
	t.Logf("up-shard events stored while down: %d; write retries %d", wantUp, r.svc.pipeRetries())
}

// TestZoneRangeQueryFromStore (issue 16 item 3, store side): the events of
// a zone with stream sequence in [from, to] come back from the store in
// (seq, index) order with their payloads, in bounded pages; legacy single
// events and tick records alike.
func TestZoneRangeQueryFromStore(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	cfg := testConfig(srv.URL)
	cfg.PebbleDir = t.TempDir()
	start(t, cfg)
	pub, nc := newTickPublisher(t, srv.URL)
	var seqs []uint64
	for i := 0; i < 12; i++ {
		zone := "z0_0"
		if i%3 == 2 {
			zone = "z1_1"
		}
		seq, err := pub.publish(ctx, zone, []string{"a", "b"}, 7)
		if err != nil {
			t.Fatal(err)
		}
		if zone == "z0_0" {
			seqs = append(seqs, seq)
		}
	}
	waitfor.True(t, 20*time.Second, func() error {
		f := request[query.AckFloorReply](t, nc, wire.QueryAckFloor, map[string]any{})
		if f.Error != "" || f.AckFloor != f.StreamLastSeq || f.StreamLastSeq == 0 {
			return fmt.Errorf("ack floor %+v", f)
		}
		return nil
	})
	from, to := seqs[1], seqs[5]
	var got []pos
	req := map[string]any{"zone": "z0_0", "from_seq": from, "to_seq": to, "limit": 4}
	for page := 0; ; page++ {
		if page > 20 {
			t.Fatal("paging does not end")
		}
		rep := request[query.ZoneRangeReply](t, nc, wire.QueryZoneRange, req)
		if rep.Error != "" || len(rep.Events) > 4 {
			t.Fatalf("page %d: %d events, %q", page, len(rep.Events), rep.Error)
		}
		for _, e := range rep.Events {
			want := pub.evs[e.Seq][e.Index]
			if e.EventID != want.EventId || e.Zone != "z0_0" {
				t.Fatalf("row %d/%d = %s, want %s", e.Seq, e.Index, e.EventID, want.EventId)
			}
			ev := &schema.Event{}
			if err := protoUnmarshal(e.Payload, ev); err != nil || ev.EventId != want.EventId {
				t.Fatalf("payload of %d/%d: %v %v", e.Seq, e.Index, err, ev)
			}
			got = append(got, pos{int64(e.Seq), int32(e.Index)})
		}
		if !rep.More {
			break
		}
		last := rep.Events[len(rep.Events)-1]
		req["after_seq"], req["after_index"], req["has_after"] = last.Seq, last.Index, true
	}
	var want []pos
	for _, s := range seqs[1:6] {
		for i := 0; i < 7; i++ {
			want = append(want, pos{int64(s), int32(i)})
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("range [%d, %d]:\n got %v\nwant %v", from, to, got, want)
	}
	if bad := request[query.ZoneRangeReply](t, nc, wire.QueryZoneRange, map[string]any{"zone": "z0_0", "from_seq": 9, "to_seq": 3}); bad.Error == "" {
		t.Fatal("to_seq < from_seq accepted")
	}
}

func protoUnmarshal(b []byte, ev *schema.Event) error { return proto.Unmarshal(b, ev) }

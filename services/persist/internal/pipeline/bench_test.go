package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/pebblestore"
	"github.com/realmstream/realmstream/services/persist/internal/store"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

const (
	benchEvents    = 200000
	benchBatch     = 1000 // messages per fetch
	benchPerRecord = 25   // events per tick record
)

var benchZones = []string{"z0_0", "z0_1", "z0_2", "z1_0", "z1_1", "z1_2", "z2_0", "z2_1", "z2_2"}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// BenchmarkPipelines runs, in one process on the same NATS server, the same
// Postgres server and the same 200k events (9 zones, 200 players, mostly
// moves) committed as tick records of 25 events (8,000 messages), as the
// world writes them:
//
//	copy    raw pgx CopyFrom of the decoded rows into one events table (no NATS)
//	bare    nats.go pull consumer, Fetch 1000 messages, decode the records,
//	        COPY the rows into one database, one ack (AckAll) per batch; no
//	        idempotency, no sharding, no read models
//	persist this package: durable consumer, two shards, exactly-once
//	        (high-water mark), read models, ack per message after commit
//	pebble  this package into the Pebble store (one synced Pebble batch per
//	        fetched batch)
//
// and reports each as events/s plus persist/bare (target >= 0.9) and
// pebble-ev/s (target >= 50k). Recorded figures need a quiet machine
// (load < 1): see docs/bench/persist.md.
func BenchmarkPipelines(b *testing.B) {
	ctx := context.Background()
	srv := natstest.Start(b)
	nc, js := natstest.Connect(b, srv.URL)
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	recs := publishBench(b, js)
	pg := benchStore(b)
	defer pg.Close()
	pool0 := pg.DBs()[0].Pool
	reset := func() {
		for _, d := range pg.DBs() {
			if _, err := d.Pool.Exec(ctx, `TRUNCATE events, players, player_tallies, zone_summaries; UPDATE persist_hwm SET seq = 0`); err != nil {
				b.Fatal(err)
			}
		}
	}
	var tCopy, tBare, tPersist, tPebble time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		reset()
		b.StartTimer()
		t0 := time.Now()
		rawCopy(b, pool0, recs)
		tCopy += time.Since(t0)

		b.StopTimer()
		reset()
		b.StartTimer()
		t0 = time.Now()
		bare(b, js, pool0)
		tBare += time.Since(t0)

		b.StopTimer()
		reset()
		_ = js.DeleteConsumer(ctx, wire.StreamEvents, wire.DurablePersist)
		b.StartTimer()
		t0 = time.Now()
		runPipeline(b, js, pg)
		tPersist += time.Since(t0)

		b.StopTimer()
		_ = js.DeleteConsumer(ctx, wire.StreamEvents, wire.DurablePersist)
		pb, err := pebblestore.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 = time.Now()
		runPipeline(b, js, pb)
		tPebble += time.Since(t0)
		b.StopTimer()
		pb.Close()
		b.StartTimer()
	}
	_ = nc
	rate := func(d time.Duration) float64 { return float64(benchEvents*b.N) / d.Seconds() }
	b.ReportMetric(rate(tCopy), "copy-ev/s")
	b.ReportMetric(rate(tBare), "bare-ev/s")
	b.ReportMetric(rate(tPersist), "persist-ev/s")
	b.ReportMetric(rate(tPebble), "pebble-ev/s")
	b.ReportMetric(rate(tPersist)/rate(tBare), "persist/bare")
	b.ReportMetric(0, "ns/op")
}

func benchEvent(n int) *schema.Event {
	zone := benchZones[n%len(benchZones)]
	player := fmt.Sprintf("p%d", n%200)
	ts := storetest.Base.Add(time.Duration(n) * time.Millisecond)
	if n%200 < 9 {
		return storetest.Joined(fmt.Sprint("e", n), zone, player, ts, 100)
	}
	return storetest.Moved(fmt.Sprint("e", n), zone, player, ts, float32(n%1000), float32(n%500))
}

// publishBench publishes benchEvents events once, as tick records of
// benchPerRecord events of one zone, and returns them decoded.
func publishBench(b *testing.B, js jetstream.JetStream) []store.Record {
	ctx := context.Background()
	recs := make([]store.Record, 0, benchEvents)
	msgs := 0
	for n := 1; n <= benchEvents; n += benchPerRecord {
		zone := benchZones[msgs%len(benchZones)]
		var evs []*schema.Event
		for i := n; i < n+benchPerRecord && i <= benchEvents; i++ {
			ev := benchEvent(i)
			ev.Zone = zone
			evs = append(evs, ev)
		}
		h, data := storetest.TickMsg(1, uint64(msgs), evs...)
		msg := &nats.Msg{Subject: wire.EventSubject(zone), Data: data, Header: h}
		if _, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(10*time.Second)); err != nil {
			b.Fatal(err)
		}
		msgs++
		recs = append(recs, store.DecodeMessage(uint64(msgs), msg.Subject, h, data, time.Now())...)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		b.Fatal("publish did not complete")
	}
	s, _ := js.Stream(ctx, wire.StreamEvents)
	info, _ := s.Info(ctx)
	if info.State.Msgs != uint64(msgs) || len(recs) != benchEvents {
		b.Fatalf("stream has %d messages (want %d), %d events", info.State.Msgs, msgs, len(recs))
	}
	return recs
}

var benchCols = []string{"seq", "idx", "ts", "zone", "logical", "event_id", "player_id", "type", "fence", "payload"}

func row(r *store.Record) []any {
	return []any{int64(r.Seq), int32(r.Index), time.Unix(0, r.TSNs).UTC(), r.Zone, int16(0), r.EventID, r.PlayerID, r.Type, int64(r.Fence), r.Payload}
}

func rawCopy(b *testing.B, pool interface {
	CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error)
}, recs []store.Record) {
	for i := 0; i < len(recs); i += benchBatch * benchPerRecord { // the rows of one fetched batch
		chunk := recs[i:min(i+benchBatch*benchPerRecord, len(recs))]
		if _, err := pool.CopyFrom(context.Background(), pgx.Identifier{"events"}, benchCols,
			pgx.CopyFromSlice(len(chunk), func(j int) ([]any, error) { return row(&chunk[j]), nil })); err != nil {
			b.Fatal(err)
		}
	}
}

// bare is the baseline pipeline.
func bare(b *testing.B, js jetstream.JetStream, pool interface {
	CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error)
}) {
	ctx := context.Background()
	_ = js.DeleteConsumer(ctx, wire.StreamEvents, "bench-bare")
	cons, err := js.CreateConsumer(ctx, wire.StreamEvents, jetstream.ConsumerConfig{Durable: "bench-bare",
		AckPolicy: jetstream.AckAllPolicy, MaxAckPending: 4 * benchBatch, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		b.Fatal(err)
	}
	got := 0
	for got < benchEvents {
		batch, err := cons.Fetch(benchBatch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			b.Fatal(err)
		}
		var recs []store.Record
		var last jetstream.Msg
		for m := range batch.Messages() {
			meta, _ := m.Metadata()
			recs = append(recs, store.DecodeMessage(meta.Sequence.Stream, m.Subject(), m.Headers(), m.Data(), meta.Timestamp)...)
			last = m
		}
		if len(recs) == 0 {
			continue
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"events"}, benchCols,
			pgx.CopyFromSlice(len(recs), func(j int) ([]any, error) { return row(&recs[j]), nil })); err != nil {
			b.Fatal(err)
		}
		if err := last.Ack(); err != nil {
			b.Fatal(err)
		}
		got += len(recs)
	}
}

func runPipeline(b *testing.B, js jetstream.JetStream, w Writer) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := New(ctx, js, Config{BatchSize: benchBatch, BatchWait: 50 * time.Millisecond}, w, quiet())
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Minute)
	for p.Stats.Events.Load() < benchEvents {
		if time.Now().After(deadline) {
			b.Fatalf("pipeline stuck at %d", p.Stats.Events.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if p.Stats.Inserted.Load() != benchEvents {
		b.Fatalf("inserted %d", p.Stats.Inserted.Load())
	}
	cancel()
	<-done
}

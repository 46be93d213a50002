package pipeline

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/pgstore"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

// BenchmarkTracing is the cost of tracing at the persist benchmark's shape
// (BenchmarkPipelines: 200k events, tick records of 25, batches of 1000
// messages, two Postgres shards, exactly-once, read models). Each traced
// mode is measured against tracing off in the same iteration, the two runs
// back to back in alternating order, so that the machine's drift (a shared
// machine's load changes within seconds) falls on both:
//
//	off        no provider (the global no-op), no trace context in events: tracing off
//	ratio=0.01 every 100th event carries a sampled trace context (prod's ratio)
//	ratio=0.1  every 10th event (staging's ratio)
//	ratio=1    every event: a persist.row span per event, the worst case (dev)
//
// A record holding a traced event carries a traceparent, as the world's
// commit span would. Spans go through the SDK's batch processor and the
// real OTLP/HTTP exporter to an in-process receiver that discards them.
// Each run gets its own NATS server and fresh databases. It reports the
// traced mode's events/s (ev/s), off's (off-ev/s), their ratio (x-off: the
// issue's budget: above 0.95 at the deployed ratio), the export rate, and
// the CPU time of this process per event in both modes (cpu-ns/ev,
// off-cpu-ns/ev: the pipeline, the in-process NATS server, the exporter and
// receiver; not Postgres), which a loaded machine disturbs less than ev/s.
func BenchmarkTracing(b *testing.B) {
	for _, mode := range []struct {
		name  string
		every int // every n-th event carries a trace context
	}{{"ratio=0.01", 100}, {"ratio=0.1", 10}, {"ratio=1", 1}} {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			// The collector is another process in a deployment: the
			// receiver here counts the export requests and discards them
			// undecoded, so that only the service's side is measured.
			var bytes atomic.Int64
			exports := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, _ := io.Copy(io.Discard, r.Body)
				bytes.Add(n)
				w.Header().Set("Content-Type", "application/x-protobuf")
			}))
			defer exports.Close()
			exp, err := telemetry.NewExporter(ctx, exports.URL)
			if err != nil {
				b.Fatal(err)
			}
			tp, shutdown := telemetry.Setup("persist-bench", exp)
			var off, traced, offCPU, tracedCPU time.Duration
			for i := 0; i < b.N; i++ {
				runs := []func(){
					func() { w, c := runTraced(b, noop.NewTracerProvider(), 0); off, offCPU = off+w, offCPU+c },
					func() { w, c := runTraced(b, tp, mode.every); traced, tracedCPU = traced+w, tracedCPU+c },
				}
				if i%2 == 1 {
					runs[0], runs[1] = runs[1], runs[0]
				}
				for _, run := range runs {
					run()
				}
			}
			_ = shutdown(ctx)
			rate := func(d time.Duration) float64 { return float64(benchEvents*b.N) / d.Seconds() }
			b.ReportMetric(rate(traced), "ev/s")
			b.ReportMetric(rate(off), "off-ev/s")
			b.ReportMetric(rate(traced)/rate(off), "x-off")
			perEv := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(benchEvents*b.N) }
			b.ReportMetric(perEv(tracedCPU), "cpu-ns/ev")
			b.ReportMetric(perEv(offCPU), "off-cpu-ns/ev")
			b.ReportMetric(float64(bytes.Load())/traced.Seconds()/1e6, "export-MB/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// runTraced stores the benchmark's events (every n-th traced, none for
// n = 0) through a pipeline with tp on a fresh NATS server and fresh
// databases, and returns the time the pipeline took and the process's CPU
// time meanwhile; the timer runs only meanwhile.
func runTraced(b *testing.B, tp trace.TracerProvider, every int) (wall, cpu time.Duration) {
	ctx := context.Background()
	b.StopTimer()
	defer b.StartTimer()
	srv := natstest.Start(b)
	defer srv.Shutdown()
	_, js := natstest.Connect(b, srv.URL)
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	publishTraced(b, js, every)
	pg := benchStore(b)
	defer pg.Close()
	b.StartTimer()
	t0, c0 := time.Now(), cpuTime()
	runPipelineWith(b, js, pg, Config{BatchSize: benchBatch, BatchWait: 50 * time.Millisecond, TracerProvider: tp, StoreName: "postgres"})
	if f, ok := tp.(interface{ ForceFlush(context.Context) error }); ok {
		_ = f.ForceFlush(ctx) // the run's spans are exported within it
	}
	wall, cpu = time.Since(t0), cpuTime()-c0
	b.StopTimer()
	return wall, cpu
}

// publishTraced publishes the benchmark's events as tick records, every
// n-th event with a sampled trace context (none for n = 0), and each record
// holding one with a traceparent as the world's commit span would.
func publishTraced(b *testing.B, js jetstream.JetStream, every int) {
	msgs := 0
	for n := 1; n <= benchEvents; n += benchPerRecord {
		zone, h, data := tracedRecord(msgs, n, min(n+benchPerRecord-1, benchEvents), every)
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: wire.EventSubject(zone), Data: data, Header: h}, jetstream.WithStallWait(10*time.Second)); err != nil {
			b.Fatal(err)
		}
		msgs++
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		b.Fatal("publish did not complete")
	}
}

// tracedRecord is tick record m of the benchmarks' shape: events first to
// last (benchEvent, in zone benchZones[m]), every n-th with a sampled trace
// context (none for every = 0), and the record's own traceparent, as the
// world's commit span puts it, when one of its events is traced.
func tracedRecord(m, first, last, every int) (zone string, h nats.Header, data []byte) {
	zone = benchZones[m%len(benchZones)]
	var evs []*schema.Event
	traced := false
	for i := first; i <= last; i++ {
		ev := benchEvent(i)
		ev.Zone, ev.CommandId = zone, fmt.Sprintf("s%d:%d", i%200, i)
		if every > 0 && i%every == 0 {
			ev.TraceContext = telemetry.EncodeSpanContext(trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{1, byte(i), byte(i >> 8), byte(i >> 16)}, SpanID: trace.SpanID{2, byte(i), byte(i >> 8)}, TraceFlags: trace.FlagsSampled}))
			traced = true
		}
		evs = append(evs, ev)
	}
	h, data = storetest.TickMsg(1, uint64(m), evs...)
	if traced {
		telemetry.Inject(trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{3, byte(m), byte(m >> 8)}, SpanID: trace.SpanID{4, byte(m)}, TraceFlags: trace.FlagsSampled})), h)
	}
	return zone, h, data
}

// benchStore is a two-shard Postgres store on fresh databases, migrated.
func benchStore(b *testing.B) *pgstore.Store {
	ctx := context.Background()
	var dbs []shard.DB
	for i := range 2 {
		dbs = append(dbs, shard.DB{Name: fmt.Sprintf("pg%d", i), URL: pgtest.NewDatabase(b)})
	}
	m, _ := shard.Even(dbs)
	pg, err := pgstore.Open(ctx, pgstore.StaticMap{M: m}, pgstore.Options{}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	pm := &pgstore.Partman{Premake: 3, Log: quiet(), Now: func() time.Time { return storetest.Base }}
	for _, d := range pg.DBs() {
		if err := pgstore.Migrate(ctx, d.Pool, quiet()); err != nil {
			b.Fatal(err)
		}
		if _, err := pm.Run(ctx, d.Pool); err != nil {
			b.Fatal(err)
		}
	}
	if err := pg.SeedOwnership(ctx); err != nil {
		b.Fatal(err)
	}
	return pg
}

func runPipelineWith(b *testing.B, js jetstream.JetStream, w Writer, cfg Config) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := New(ctx, js, cfg, w, quiet())
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Minute)
	for p.Stats.Inserted.Load() < benchEvents { // Events counts redelivered messages again
		if time.Now().After(deadline) {
			b.Fatalf("pipeline stuck at %d", p.Stats.Events.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if p.Stats.Inserted.Load() > benchEvents {
		b.Fatalf("inserted %d", p.Stats.Inserted.Load())
	}
	cancel()
	<-done
}

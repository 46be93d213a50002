package pipeline

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/store"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

// headerMsg is a fetched message as batchTrace sees it: its headers only.
type headerMsg struct {
	jetstream.Msg
	h nats.Header
}

func (m headerMsg) Headers() nats.Header { return m.h }

// tracedBatch is one fetched batch of the persist benchmark's shape
// (benchBatch tick records of benchPerRecord events), every n-th event with
// a sampled trace context (none for n = 0) and each record holding one with
// a traceparent.
func tracedBatch(every int) *fetched {
	f := &fetched{}
	for m := 0; m < benchBatch; m++ {
		first := m*benchPerRecord + 1
		zone, h, data := tracedRecord(m, first, first+benchPerRecord-1, every)
		seq := uint64(m + 1)
		f.add(headerMsg{h: h}, seq, store.DecodeMessage(seq, wire.EventSubject(zone), h, data, storetest.Base))
	}
	return f
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBatchTrace is the tracing work of one written batch alone
// (batchTrace.begin and end, no store, no NATS), with spans exported by the
// real OTLP/HTTP exporter to a receiver that discards them; the batch
// processor blocks instead of dropping, so every span's export is paid. It
// reports the process's CPU per event (cpu-ns/ev: the exporter's goroutines
// included, unlike ns/op) and allocations per batch:
//
//	off        the no-op provider (tracing off)
//	unsampled  a real provider, no event or record carries a trace context
//	ratio=0.01 every 100th event sampled (prod's ratio)
//	ratio=0.1  every 10th event sampled, every record traced (as in BenchmarkTracing)
//	ratio=1    every event sampled
func BenchmarkBatchTrace(b *testing.B) {
	for _, mode := range []struct {
		name  string
		sdk   bool
		every int
	}{{"off", false, 0}, {"unsampled", true, 0}, {"ratio=0.01", true, 100}, {"ratio=0.1", true, 10}, {"ratio=1", true, 1}} {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			var tp trace.TracerProvider = noop.NewTracerProvider()
			var flush func()
			if mode.sdk {
				exports := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "application/x-protobuf")
				}))
				defer exports.Close()
				exp, err := telemetry.NewExporter(ctx, exports.URL)
				if err != nil {
					b.Fatal(err)
				}
				sdk := sdktrace.NewTracerProvider(sdktrace.WithSampler(telemetry.Sampler()), sdktrace.WithBatcher(exp, sdktrace.WithBlocking()))
				defer func() { _ = sdk.Shutdown(ctx) }()
				tp, flush = sdk, func() { _ = sdk.ForceFlush(ctx) }
			}
			f := tracedBatch(mode.every)
			bt := newBatchTrace(tp, "postgres")
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				bt.begin(ctx, f)
				bt.end(f, nil, 0, nil)
			}
			if flush != nil {
				flush()
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*len(f.recs)), "cpu-ns/ev")
		})
	}
}

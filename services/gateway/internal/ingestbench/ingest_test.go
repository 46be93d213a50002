package ingestbench

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natsembed"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/gateway"
)

func TestPayloadIs64Bytes(t *testing.T) {
	for _, seq := range []uint64{3, 1000, 1 << 20} {
		if n := len(Payload(seq)); n < 60 || n > 66 {
			t.Fatalf("payload of seq %d is %d bytes", seq, n)
		}
	}
}

// cpuTime is the CPU time (user+system) of this process so far: the clients,
// the pipelines and the embedded NATS server all run in it, so CPU per message
// compares the pipelines even when other work shares the machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// batchMean reads the gateway's publisher batch-size histogram from /metrics.
func batchMean(b *testing.B, addr string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum, count float64
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "realm_gateway_publish_batch_size_sum "); ok {
			sum, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, "realm_gateway_publish_batch_size_count "); ok {
			count, _ = strconv.ParseFloat(v, 64)
		}
	}
	if count == 0 {
		return 0
	}
	return sum / count
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

type env struct {
	url    string
	js     jetstream.JetStream
	gw     *gateway.Service
	bare   *Bare
	shaped *Bare
}

func setup(b *testing.B, sync natsembed.SyncPolicy, window int) *env {
	srv, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: b.TempDir(), Sync: sync, ServerName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	url := srv.ClientURL()
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	cfg := gateway.DefaultConfig()
	cfg.NATSURL = url
	cfg.HTTPAddr, cfg.TCPAddr, cfg.WSAddr = "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.InstanceID = "bench"
	cfg.Dev = true
	cfg.Rate, cfg.Burst = 1e9, 1e9
	cfg.MaxPending = window
	cfg.RingSize = 16384
	cfg.SendQueue = 8192
	cfg.MaxFrame = 4096
	// No update frames flow here for a held Ack to ride, so a held Ack only
	// waits (--ack-hold, 50 ms by default): with a bounded window per client
	// that caps the gateway at window/hold, while the bare pipelines answer
	// at once. Measure the ingest path with acks written at once, like them;
	// INGEST_ACK_HOLD_MS sets the gateway's default hold back for a run.
	cfg.AckHold = time.Duration(envInt("INGEST_ACK_HOLD_MS", 0)) * time.Millisecond
	// INGEST_COMMAND_BATCH=1 runs the gateway with --command-batch (a zone's
	// fresh commands share one JetStream message, docs/command-batches.md):
	// the bare pipelines keep one message per command, so its ratio is what
	// batching buys at the gateway, not a like-for-like shape.
	cfg.CommandBatch = envInt("INGEST_COMMAND_BATCH", 0) == 1
	gw, err := gateway.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	gctx, gcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(gctx) }()
	b.Cleanup(func() { gcancel(); <-done })
	select {
	case <-gw.Ready():
	case err := <-done:
		b.Fatal(err)
	}
	bare, err := StartBare(url, window, false)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(bare.Close)
	shaped, err := StartBare(url, window, true)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(shaped.Close)
	return &env{url: url, js: js, gw: gw, bare: bare, shaped: shaped}
}

// reset gives the next pipeline the same starting point: a fresh CMD stream
// (a purge keeps JetStream's duplicate-window map of earlier message ids,
// which would slow whichever pipeline runs last) and a collected heap.
func (e *env) reset(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.js.DeleteStream(ctx, wire.StreamCommands); err != nil {
		b.Fatal(err)
	}
	if err := wire.EnsureStreams(ctx, e.js, wire.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
}

// BenchmarkIngest compares, in one run on one embedded NATS server per sync
// policy, the same ~64-byte packets from the same N TCP clients through (a)
// the gateway and (b) the bare pipeline, and (c) the ceiling of one nats.go
// client publishing asynchronously. One iteration pushes INGEST_MSGS messages
// through each; metrics are msgs/s, p99 latency and the ratios.
//
//	go test -run '^$' -bench BenchmarkIngest -benchtime 3x ./services/gateway/internal/ingestbench/
func BenchmarkIngest(b *testing.B) {
	clients := envInt("INGEST_CLIENTS", 32)
	window := envInt("INGEST_WINDOW", 8192) // total in flight, split over the clients
	for _, sp := range []struct {
		name string
		sync natsembed.SyncPolicy
		msgs int
	}{
		{"default", natsembed.SyncDefault, envInt("INGEST_MSGS", 200_000)},
		{"always", natsembed.SyncAlways, envInt("INGEST_MSGS_ALWAYS", 50_000)},
	} {
		b.Run("sync="+sp.name, func(b *testing.B) {
			e := setup(b, sp.sync, window)
			ctx := context.Background()
			gwc, err := Dial(e.gw.TCPAddr(), clients, true, "z0_0")
			if err != nil {
				b.Fatal(err)
			}
			defer gwc.Close()
			barec, err := Dial(e.bare.Addr(), clients, false, "")
			if err != nil {
				b.Fatal(err)
			}
			defer barec.Close()
			shapedc, err := Dial(e.shaped.Addr(), clients, false, "")
			if err != nil {
				b.Fatal(err)
			}
			defer shapedc.Close()
			perClient := max(1, window/clients)
			var ceil, bare, shaped, gw Result
			var ceilCPU, bareCPU, shapedCPU, gwCPU time.Duration
			only := os.Getenv("INGEST_ONLY") // profile one pipeline: ceiling, bare, shaped or gateway
			timed := func(cpu *time.Duration, f func() (Result, error)) Result {
				c0 := cpuTime()
				r, err := f()
				if err != nil {
					b.Fatal(err)
				}
				*cpu += cpuTime() - c0
				return r
			}
			add := func(dst *Result, r Result) {
				dst.Msgs += r.Msgs
				dst.Elapsed += r.Elapsed
				dst.Busy += r.Busy
				dst.Errors += r.Errors
				dst.P99 = max(dst.P99, r.P99)
				dst.P50 = max(dst.P50, r.P50)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Rotate the order every iteration so no pipeline always runs
				// first or last.
				runs := []func(){
					func() {
						if only == "" || only == "ceiling" {
							e.reset(b)
							add(&ceil, timed(&ceilCPU, func() (Result, error) { return Ceiling(ctx, e.url, sp.msgs, window) }))
						}
					},
					func() {
						if only == "" || only == "bare" {
							e.reset(b)
							add(&bare, timed(&bareCPU, func() (Result, error) { return barec.Run(ctx, sp.msgs, perClient) }))
						}
					},
					func() {
						if only == "" || only == "shaped" {
							e.reset(b)
							add(&shaped, timed(&shapedCPU, func() (Result, error) { return shapedc.Run(ctx, sp.msgs, perClient) }))
						}
					},
					func() {
						if only == "" || only == "gateway" {
							e.reset(b)
							add(&gw, timed(&gwCPU, func() (Result, error) { return gwc.Run(ctx, sp.msgs, perClient) }))
						}
					},
				}
				for k := range runs {
					runs[(k+i)%len(runs)]()
				}
			}
			b.StopTimer()
			b.ReportMetric(ceil.MsgsPerSec(), "ceiling_msgs/s")
			b.ReportMetric(bare.MsgsPerSec(), "bare_msgs/s")
			b.ReportMetric(gw.MsgsPerSec(), "gateway_msgs/s")
			perMsg := func(cpu time.Duration, r Result) float64 {
				if r.Msgs == 0 {
					return 0
				}
				return float64(cpu.Microseconds()) / float64(r.Msgs)
			}
			b.ReportMetric(perMsg(ceilCPU, ceil), "ceiling_cpu_us/msg")
			b.ReportMetric(perMsg(bareCPU, bare), "bare_cpu_us/msg")
			b.ReportMetric(perMsg(gwCPU, gw), "gateway_cpu_us/msg")
			b.ReportMetric(perMsg(shapedCPU, shaped), "bareshaped_cpu_us/msg")
			b.ReportMetric(shaped.MsgsPerSec(), "bareshaped_msgs/s")
			b.ReportMetric(gw.MsgsPerSec()/shaped.MsgsPerSec(), "gateway/bareshaped")
			b.ReportMetric(gw.MsgsPerSec()/bare.MsgsPerSec(), "gateway/bare")
			b.ReportMetric(gw.MsgsPerSec()/ceil.MsgsPerSec(), "gateway/ceiling")
			b.ReportMetric(float64(ceil.P99.Microseconds())/1e3, "ceiling_p99_ms")
			b.ReportMetric(float64(bare.P99.Microseconds())/1e3, "bare_p99_ms")
			b.ReportMetric(float64(gw.P99.Microseconds())/1e3, "gateway_p99_ms")
			b.ReportMetric(float64(gw.P50.Microseconds())/1e3, "gateway_p50_ms")
			b.ReportMetric(float64(gw.Busy+gw.Errors), "gateway_busy+errors")
			b.ReportMetric(batchMean(b, e.gw.HTTPAddr()), "gateway_batch_mean")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// FuzzParseAnswer: the benchmark client's partial ServerPacket decoder never
// panics and agrees with proto on well-formed input.
func FuzzParseAnswer(f *testing.F) {
	for _, p := range []*schema.ServerPacket{
		{AckSeq: 7, Body: &schema.ServerPacket_Ack{Ack: &schema.Ack{StreamSeq: 9}}},
		{AckSeq: 1 << 40, Body: &schema.ServerPacket_Busy{Busy: &schema.Busy{RetryAfterMs: 5}}},
		{AckSeq: 3, Body: &schema.ServerPacket_Error{Error: &schema.Error{Code: 1, Message: "x"}}},
	} {
		b, _ := proto.Marshal(p)
		f.Add(b)
	}
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, _, err := ParseAnswer(b)
		var p schema.ServerPacket
		if err == nil && proto.Unmarshal(b, &p) == nil && p.AckSeq != seq {
			t.Fatalf("seq %d, proto says %d", seq, p.AckSeq)
		}
	})
}

package deploy

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestMeasureSyncInterval measures what JetStream's durability setting costs
// on this machine's disk (issue 17 #8): an embedded nats-server with a file
// store at each sync_interval (and sync: always), R1, 256-byte messages,
// (a) one publisher waiting for each PubAck (latency), (b) async publish
// with 256 in flight (throughput, as the gateway and world publish).
// Run it on purpose: REALM_SYNC_BENCH=1 go test -run TestMeasureSyncInterval -v
// and note the load average with the figures.
func TestMeasureSyncInterval(t *testing.T) {
	if os.Getenv("REALM_SYNC_BENCH") == "" {
		t.Skip("set REALM_SYNC_BENCH=1 to measure (writes to disk for ~1 minute)")
	}
	dir := os.Getenv("REALM_SYNC_BENCH_DIR") // a disk like production's; default the test's temp dir
	type setting struct {
		name     string
		interval time.Duration
		always   bool
	}
	for _, s := range []setting{{"2m (default)", 2 * time.Minute, false}, {"10s", 10 * time.Second, false},
		{"2s", 2 * time.Second, false}, {"1s", time.Second, false}, {"100ms", 100 * time.Millisecond, false}, {"always", 0, true}} {
		store := t.TempDir()
		if dir != "" {
			var err error
			if store, err = os.MkdirTemp(dir, "syncbench"); err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(store)
		}
		o := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: store, NoLog: true, NoSigs: true,
			SyncInterval: s.interval, SyncAlways: s.always}
		srv, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		go srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("not ready")
		}
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "B", Subjects: []string{"b.>"}, Storage: jetstream.FileStorage}); err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, 256)
		const nSync = 2000
		lat := make([]time.Duration, 0, nSync)
		start := time.Now()
		for i := 0; i < nSync; i++ {
			t0 := time.Now()
			if _, err := js.Publish(ctx, fmt.Sprintf("b.%d", i%9), msg); err != nil {
				t.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		syncRate := float64(nSync) / time.Since(start).Seconds()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		const nAsync = 50000
		start = time.Now()
		for i := 0; i < nAsync; i++ {
			if _, err := js.PublishAsync(fmt.Sprintf("b.%d", i%9), msg, jetstream.WithStallWait(time.Minute)); err != nil {
				t.Fatal(err)
			}
			if i%256 == 255 {
				<-js.PublishAsyncComplete()
			}
		}
		<-js.PublishAsyncComplete()
		asyncRate := float64(nAsync) / time.Since(start).Seconds()
		t.Logf("sync_interval %-12s  acked publish p50 %7v p99 %7v (%6.0f msg/s one at a time)  async 256 in flight %7.0f msg/s",
			s.name, lat[nSync/2].Round(time.Microsecond), lat[nSync*99/100].Round(time.Microsecond), syncRate, asyncRate)
		cancel()
		nc.Close()
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

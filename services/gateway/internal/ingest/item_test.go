package ingest

import (
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/realmstream/realmstream/libs/wire"
)

// TestEnqueueAllocatesNothing: a reader's share of a command (a pooled item,
// its headers, the ring) allocates nothing once the pool is warm.
func TestEnqueueAllocatesNothing(t *testing.T) {
	p := New(Config{RingSize: 1024, MaxPending: 64, BatchSize: 16, PublishRetries: 1}, Metrics{
		Batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "b"}), Retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "r"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "l"}), AcksDup: prometheus.NewCounter(prometheus.CounterOpts{Name: "d"}),
		AcksFresh: prometheus.NewCounter(prometheus.CounterOpts{Name: "f"})}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	buf := make([]*Item, 16)
	payload := []byte("0123456789abcdef0123456789abcdef")
	subject := wire.CommandSubject("z0_0")
	one := func() {
		it := NewItem()
		it.Buf = append(it.Buf[:0], payload...)
		it.Seq = 7
		it.SetHeaders("s0123:7", "s0123", "p-x", "z0_0", "abcdef")
		it.Msg.Subject, it.Msg.Data = subject, it.Buf
		if err := p.Enqueue(it); err != nil {
			t.Fatal(err)
		}
		n := p.ring.DequeueBatch(buf)
		for _, it := range buf[:n] {
			it.Free()
		}
	}
	for range 10 {
		one()
	}
	// Under -race the path still runs (above and here), but sync.Pool drops
	// items on purpose, so only a normal build can count allocations.
	if a := testing.AllocsPerRun(1000, one); a != 0 && !raceEnabled {
		t.Fatalf("an enqueued command allocates %v times", a)
	}
	if got := p.Len(); got != 0 {
		t.Fatalf("ring holds %d", got)
	}
}

package bots

import (
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond) // 1µs .. 10ms, uniform
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5000 * time.Microsecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.Quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d < -0.035 || d > 0.035 {
			t.Errorf("q%.3f = %v, want %v ±3.5%%", c.q, got, c.want)
		}
	}
	if h.Count() != 10000 || h.Max() != 10*time.Millisecond {
		t.Fatalf("count %d max %v", h.Count(), h.Max())
	}
	snap := h.Snapshot()
	h.Record(time.Second)
	if d := h.Sub(snap); d.Count() != 1 || d.Quantile(0.5) < 960*time.Millisecond {
		t.Fatalf("interval: count %d p50 %v", d.Count(), d.Quantile(0.5))
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 {
		t.Fatal("empty histogram")
	}
	h.Record(100 * time.Hour) // far beyond any latency: still bucketed, max kept
	if h.Quantile(1) != 100*time.Hour {
		t.Fatalf("max %v", h.Quantile(1))
	}
}

func TestBucketBounds(t *testing.T) {
	for _, ns := range []int64{0, 1, 31, 32, 33, 63, 64, 1000, 1 << 20, 1<<40 + 12345, 1<<62 + 1} {
		i := bucketOf(ns)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucket %d of %d out of range", i, ns)
		}
		if up := bucketUpper(i); up < ns || (i > 0 && bucketUpper(i-1) >= ns) {
			t.Fatalf("%d in bucket %d [%d, %d]", ns, i, bucketUpper(i-1), up)
		}
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(1)
		for pb.Next() {
			d = d*7 + 13
			h.Record(d % (50 * time.Millisecond))
		}
	})
}

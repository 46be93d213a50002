package swarm

import (
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5000 * time.Microsecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.Quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d < -0.025 || d > 0.025 {
			t.Errorf("q%.3f = %v, want %v ±2%%", c.q, got, c.want)
		}
	}
	if h.Count() != 10000 || h.Max() != 10*time.Millisecond {
		t.Fatalf("count %d max %v", h.Count(), h.Max())
	}
	snap := h.Snapshot()
	h.Record(time.Second)
	if d := h.Sub(snap); d.Count() != 1 || d.Quantile(0.5) < 980*time.Millisecond {
		t.Fatalf("interval: count %d p50 %v", d.Count(), d.Quantile(0.5))
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 {
		t.Fatal("empty histogram")
	}
}

package bots

import (
	"math"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond) // 1µs .. 10ms, uniform
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}} {
		got := h.quantile(c.q)
		if rel := math.Abs(float64(got-c.want)) / float64(c.want); rel > 0.05 {
			t.Errorf("q%.3f = %v, want %v ±5%%", c.q, got, c.want)
		}
	}
	if h.quantile(1) != 10*time.Millisecond {
		t.Errorf("max quantile %v", h.quantile(1))
	}
	s := h.summary()
	if s.Count != 10000 || s.Max != 10 {
		t.Errorf("summary %+v", s)
	}
	var empty histogram
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram")
	}
	h.record(time.Hour) // beyond the last bucket: clamped, max kept
	if h.quantile(1) != time.Hour {
		t.Errorf("max %v", h.quantile(1))
	}
}

func TestProgressLine(t *testing.T) {
	p := Progress{Elapsed: 3 * time.Second, Connected: 2, Bots: 3, Sent: 10, Acked: 9, AckP99: time.Millisecond}
	if s := p.String(); s == "" || s[:2] != "t=" {
		t.Fatalf("line %q", s)
	}
}

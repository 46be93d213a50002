package telemetry

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestFiguresWindowed(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total"}, []string{"code"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h_seconds", Buckets: []float64{0.001, 0.01, 0.1, 1}})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
	reg.MustRegister(c, h, g)
	f := NewFigures(reg, FigureSpec{Name: "cps", Metric: "c_total", Kind: Rate}, FigureSpec{Name: "err", Metric: "c_total", Kind: Rate, ByLabel: "code"},
		FigureSpec{Name: "p99", Metric: "h_seconds", Kind: P99Ms}, FigureSpec{Name: "g", Metric: "g", Kind: Value})
	t0 := time.Unix(1000, 0)
	c.WithLabelValues("busy").Add(5)
	for i := 0; i < 100; i++ {
		h.Observe(0.5) // a slow start...
	}
	g.Set(7)
	f.Sample(t0)
	c.WithLabelValues("busy").Add(20)
	c.WithLabelValues("bad").Add(10)
	for i := 0; i < 1000; i++ {
		h.Observe(0.005) // ...then fast: the windowed p99 forgets the start
	}
	got := f.Sample(t0.Add(10 * time.Second))
	want := map[string]float64{"cps": 3, "err.busy": 2, "err.bad": 1, "p99": 10, "g": 7}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	// Nothing observed in the next window: p99 0, rates 0.
	got = f.Sample(t0.Add(20 * time.Second))
	if got["p99"] != 0 || got["cps"] != 0 {
		t.Errorf("idle window: %v", got)
	}
}

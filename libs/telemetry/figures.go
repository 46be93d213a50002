package telemetry

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// FigureKind says how a heartbeat figure is computed from a metric.
type FigureKind int

const (
	// Rate is a counter's increase per second since the previous sample.
	Rate FigureKind = iota
	// P99Ms is a histogram's 99th percentile, in milliseconds, of the
	// observations since the previous sample (the upper bound of the bucket
	// holding it; 0 when nothing was observed).
	P99Ms
	// Value is a gauge's (or counter's) current value.
	Value
)

// FigureSpec names one heartbeat figure. With ByLabel set, one figure per
// value of that label is produced, named Name + "." + value; otherwise the
// metric's series are summed.
type FigureSpec struct {
	Name    string
	Metric  string
	Kind    FigureKind
	ByLabel string
}

// Figures turns a service's Prometheus registry into the windowed figures of
// its heartbeats (schema.Heartbeat.figures): rates and p99s over the interval
// since the previous Sample, so the monitor shows what happens now, not since
// the process started. Safe for concurrent use.
type Figures struct {
	g     prometheus.Gatherer
	specs []FigureSpec
	mu    sync.Mutex
	at    time.Time
	prev  map[string]float64   // counters by figure name
	hist  map[string][]float64 // cumulative bucket counts by figure name
	upper map[string][]float64 // bucket upper bounds by figure name
	born  time.Time            // NewFigures: the process start, near enough
}

// NewFigures returns a sampler of specs over g.
func NewFigures(g prometheus.Gatherer, specs ...FigureSpec) *Figures {
	return &Figures{g: g, specs: specs, prev: map[string]float64{}, hist: map[string][]float64{}, upper: map[string][]float64{}, born: time.Now()}
}

// Sample returns the figures now, windowed since the previous call (the first
// call's rates and p99s are over the process's life so far).
func (f *Figures) Sample(now time.Time) map[string]float64 {
	mfs, err := f.g.Gather()
	// uptime_s lets the monitor tell a restart (it went down) from a gap.
	out := map[string]float64{"uptime_s": now.Sub(f.born).Seconds()}
	if err != nil && len(mfs) == 0 {
		return out
	}
	byName := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dt := now.Sub(f.at).Seconds()
	first := f.at.IsZero()
	f.at = now
	for _, sp := range f.specs {
		mf := byName[sp.Metric]
		if mf == nil {
			continue
		}
		groups := map[string][]*dto.Metric{}
		for _, m := range mf.GetMetric() {
			key := sp.Name
			if sp.ByLabel != "" {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == sp.ByLabel {
						key = sp.Name + "." + lp.GetValue()
					}
				}
			}
			groups[key] = append(groups[key], m)
		}
		for key, ms := range groups {
			switch sp.Kind {
			case Value:
				v := 0.0
				for _, m := range ms {
					v += m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
				out[key] = v
			case Rate:
				v := 0.0
				for _, m := range ms {
					v += m.GetCounter().GetValue()
				}
				p, seen := f.prev[key]
				f.prev[key] = v
				switch {
				case first || dt <= 0:
					out[key] = 0
				case !seen || v < p: // a new series counts from 0; a smaller value is a reset
					out[key] = v / dt
				default:
					out[key] = (v - p) / dt
				}
			case P99Ms:
				out[key] = f.p99(key, ms)
			}
		}
	}
	return out
}

func (f *Figures) p99(key string, ms []*dto.Metric) float64 {
	var upper []float64
	var cum []float64
	for _, m := range ms {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		for i, b := range h.GetBucket() {
			if i >= len(cum) {
				cum = append(cum, 0)
				upper = append(upper, b.GetUpperBound())
			}
			cum[i] += float64(b.GetCumulativeCount())
		}
	}
	total := 0.0
	for _, m := range ms {
		total += float64(m.GetHistogram().GetSampleCount())
	}
	prev := f.hist[key]
	f.hist[key] = append(append([]float64(nil), cum...), total)
	f.upper[key] = upper
	delta := make([]float64, len(cum))
	dTotal := total
	if len(prev) == len(cum)+1 && prev[len(cum)] <= total {
		dTotal = total - prev[len(cum)]
		for i := range cum {
			delta[i] = cum[i] - prev[i]
		}
	} else {
		copy(delta, cum)
	}
	if dTotal <= 0 {
		return 0
	}
	idx := sort.Search(len(delta), func(i int) bool { return delta[i] >= 0.99*dTotal })
	if idx >= len(upper) || math.IsInf(upper[idx], 1) {
		if len(upper) == 0 {
			return 0
		}
		return upper[len(upper)-1] * 1000 // above the last finite bucket: report its bound
	}
	return upper[idx] * 1000
}

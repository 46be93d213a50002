package bots

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram is a lock-free log-linear latency histogram (HDR style): 32
// linear sub-buckets per power of two of nanoseconds, so a percentile is
// within ~3% of the exact value, memory is constant (16 KB) and recording is
// a few bit operations and one atomic add, whatever the run length. Every
// bot of a swarm records into the same Histogram.
type Histogram struct {
	buckets [histBuckets]atomic.Int64
	count   atomic.Int64
	sum     atomic.Int64 // nanoseconds
	max     atomic.Int64
}

const (
	subBits     = 5
	subCount    = 1 << subBits
	histBuckets = (64-subBits)*subCount + subCount
)

// bucketOf maps a duration in ns to its bucket: values below 32 ns have a
// bucket each; above, the bucket is (exponent, top 5 bits below the leading one).
func bucketOf(ns int64) int {
	if ns < subCount {
		if ns < 0 {
			return 0
		}
		return int(ns)
	}
	v := uint64(ns)
	e := bits.Len64(v) - 1 // >= subBits
	sub := int(v>>(e-subBits)) & (subCount - 1)
	return (e-subBits+1)*subCount + sub
}

// bucketUpper is the largest value of bucket i.
func bucketUpper(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	e := i/subCount + subBits - 1
	sub := i % subCount
	return int64((uint64(subCount+sub+1) << (e - subBits)) - 1)
}

// Record adds one sample.
func (h *Histogram) Record(d time.Duration) {
	ns := int64(d)
	if ns < 0 {
		ns = 0
	}
	h.buckets[bucketOf(ns)].Add(1)
	h.count.Add(1)
	h.sum.Add(ns)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

// Count is the number of samples.
func (h *Histogram) Count() int64 { return h.count.Load() }

// Quantile returns the q-quantile (0..1), 0 without samples.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := int64(q * float64(n))
	if float64(rank) < q*float64(n) {
		rank++
	}
	if rank < 1 {
		rank = 1
	}
	var seen int64
	m := h.max.Load()
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			return time.Duration(min(bucketUpper(i), m))
		}
	}
	return time.Duration(m)
}

// Mean is the average sample.
func (h *Histogram) Mean() time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Max is the largest sample.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Snapshot copies the counters (for interval percentiles: Sub).
func (h *Histogram) Snapshot() *Histogram {
	c := &Histogram{}
	for i := range h.buckets {
		if v := h.buckets[i].Load(); v != 0 {
			c.buckets[i].Store(v)
		}
	}
	c.count.Store(h.count.Load())
	c.sum.Store(h.sum.Load())
	c.max.Store(h.max.Load())
	return c
}

// Sub returns h minus an earlier snapshot (max is kept from h).
func (h *Histogram) Sub(old *Histogram) *Histogram {
	c := &Histogram{}
	for i := range h.buckets {
		if v := h.buckets[i].Load() - old.buckets[i].Load(); v != 0 {
			c.buckets[i].Store(v)
		}
	}
	c.count.Store(h.count.Load() - old.count.Load())
	c.sum.Store(h.sum.Load() - old.sum.Load())
	c.max.Store(h.max.Load())
	return c
}

// Latency is a distribution summary in milliseconds.
type Latency struct {
	Samples int64   `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	P999    float64 `json:"p999_ms"`
	Mean    float64 `json:"mean_ms"`
	Max     float64 `json:"max_ms"`
}

// Summary summarises h.
func (h *Histogram) Summary() Latency {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Latency{Samples: h.Count(), P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Mean: ms(h.Mean()), Max: ms(h.Max())}
}

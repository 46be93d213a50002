package bots

import (
	"math"
	"sync/atomic"
	"time"
)

// histogram is a lock-free latency histogram with logarithmic buckets of ~4%
// width from 1µs to ~60s: cheap enough to record every sample from every bot
// and read percentiles while they run.
type histogram struct {
	counts [nBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

const (
	growth   = 1.04
	nBuckets = 460 // growth^460 µs ≈ 68 s
)

var logGrowth = math.Log(growth)

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us < 1 {
		return 0
	}
	i := int(math.Log(us)/logGrowth) + 1
	if i >= nBuckets {
		i = nBuckets - 1
	}
	return i
}

// upper returns the upper bound of bucket i.
func upper(i int) time.Duration {
	if i == 0 {
		return time.Microsecond
	}
	return time.Duration(math.Pow(growth, float64(i)) * float64(time.Microsecond))
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(d)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// quantile returns the upper bound of the bucket holding quantile q (0..1).
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			u, m := upper(i), time.Duration(h.max.Load())
			if u > m || i == nBuckets-1 { // the top bucket is open-ended
				return m
			}
			return u
		}
	}
	return time.Duration(h.max.Load())
}

// Percentiles summarises a latency distribution in milliseconds.
type Percentiles struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func (h *histogram) summary() Percentiles {
	return Percentiles{
		Count: h.n.Load(),
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		P999:  ms(h.quantile(0.999)),
		Max:   ms(time.Duration(h.max.Load())),
	}
}

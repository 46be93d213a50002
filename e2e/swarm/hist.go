package swarm

import (
	"math"
	"sync/atomic"
	"time"
)

// Histogram is a lock-free log-bucketed latency histogram: buckets grow by
// 2% from 1µs to about 100s, so any percentile is within 2% of the exact
// value, memory is constant (about 1k counters) and recording is one atomic
// add, whatever the run length.
type Histogram struct {
	buckets [histBuckets]atomic.Int64
	count   atomic.Int64
	sum     atomic.Int64 // nanoseconds
	max     atomic.Int64
}

const (
	histGrowth  = 1.02
	histBuckets = 940 // 1.02^940 µs ≈ 1.2e8 µs = 120 s
)

var logGrowth = math.Log(histGrowth)

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	i := int(math.Log(us) / logGrowth)
	if i >= histBuckets {
		i = histBuckets - 1
	}
	return i
}

// upper bound of bucket i.
func bucketValue(i int) time.Duration {
	return time.Duration(math.Pow(histGrowth, float64(i+1)) * float64(time.Microsecond))
}

// Record adds one sample.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.buckets[bucketOf(d)].Add(1)
	h.count.Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
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
	rank := int64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			v := bucketValue(i)
			if m := time.Duration(h.max.Load()); v > m {
				v = m
			}
			return v
		}
	}
	return time.Duration(h.max.Load())
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
		c.buckets[i].Store(h.buckets[i].Load())
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
		c.buckets[i].Store(h.buckets[i].Load() - old.buckets[i].Load())
	}
	c.count.Store(h.count.Load() - old.count.Load())
	c.sum.Store(h.sum.Load() - old.sum.Load())
	c.max.Store(h.max.Load())
	return c
}

package telemetry

import (
	"sync"
	"testing"
	"time"
)

// TestSpanLimit: a full bucket allows a burst of perSec, then refuses (and
// counts) until time refills it at perSec a second, never above perSec.
func TestSpanLimit(t *testing.T) {
	now := time.Unix(1000, 0)
	var drops int
	l := newSpanLimit(100, func() { drops++ }, func() time.Time { return now })
	allowed := func(n int) int {
		k := 0
		for range n {
			if l.Allow() {
				k++
			}
		}
		return k
	}
	if k := allowed(150); k != 100 || l.Dropped() != 50 || drops != 50 {
		t.Fatalf("burst: %d allowed, %d dropped (%d callbacks), want 100 and 50", k, l.Dropped(), drops)
	}
	now = now.Add(100 * time.Millisecond) // 10 tokens
	if k := allowed(20); k != 10 {
		t.Fatalf("after 100ms: %d allowed, want 10", k)
	}
	now = now.Add(time.Hour) // refills to perSec only
	if k := allowed(1000); k != 100 || l.Dropped() != 50+10+900 {
		t.Fatalf("after an hour: %d allowed (want 100), %d dropped", k, l.Dropped())
	}
	var unlimited *SpanLimit
	if !unlimited.Allow() || unlimited.Dropped() != 0 {
		t.Fatal("a nil SpanLimit limits")
	}
	if d := NewSpanLimit(0, nil); d.lim.Limit() != DefaultRootSpansPerSec {
		t.Fatalf("default rate %v", d.lim.Limit())
	}
}

// TestSpanLimitConcurrent: zones share one bucket; run with -race.
func TestSpanLimitConcurrent(t *testing.T) {
	l := NewSpanLimit(1000, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 8 {
		wg.Go(func() {
			k := 0
			for range 500 {
				if l.Allow() {
					k++
				}
			}
			mu.Lock()
			total += k
			mu.Unlock()
		})
	}
	wg.Wait()
	// 4000 tries against 1000 tokens plus what refilled meanwhile.
	if total < 1000 || int64(total)+l.Dropped() != 4000 {
		t.Fatalf("%d allowed, %d dropped", total, l.Dropped())
	}
}

package lock_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/redistest"
)

type cycleFunc func(ctx context.Context, name string) error

// tally accumulates the cycles of one implementation.
type tally struct {
	ops     int
	elapsed time.Duration
	lat     []time.Duration
}

// round runs n acquire+release cycles over g goroutines, each on its own lock
// name (uncontended: this measures the cost of a cycle).
func (t *tally) round(b *testing.B, g, n int, tag string, cycle cycleFunc) {
	ctx := context.Background()
	per := max(n/g, 1)
	lat := make([][]time.Duration, g)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("bench:%s:%d:%d", tag, i, start.UnixNano())
			l := make([]time.Duration, 0, per)
			for k := 0; k < per; k++ {
				t0 := time.Now()
				if err := cycle(ctx, name); err != nil {
					b.Error(err)
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	t.elapsed += time.Since(start)
	for _, l := range lat {
		t.ops += len(l)
		t.lat = append(t.lat, l...)
	}
}

func (t *tally) opsPerSec() float64 { return float64(t.ops) / t.elapsed.Seconds() }

func (t *tally) p99() time.Duration {
	slices.Sort(t.lat)
	if len(t.lat) == 0 {
		return 0
	}
	return t.lat[len(t.lat)*99/100]
}

// BenchmarkAcquireRelease compares a lease cycle of this package (SET NX PX
// + INCR fence in one script, renewal goroutine and deadline timer started,
// compare-and-delete release) with redsync (SET NX, Lua release) on the same
// Redis and pool, at 1 and 32 goroutines. The two alternate in rounds of
// 1000 cycles inside one benchmark so both see the same machine load (the
// machine is shared); it reports ops/s and p99 of each and the ratios.
func BenchmarkAcquireRelease(b *testing.B) {
	redistest.Shared(b)
	c := redis.NewClient(&redis.Options{Addr: redistest.Addr(), PoolSize: 64, MinIdleConns: 32})
	defer c.Close()
	locker, err := lock.New(lock.NewRedisStore(c, "realmbench:"), lock.Options{TTL: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	rs := redsync.New(goredis.NewPool(c))
	ours := func(ctx context.Context, name string) error {
		ls, err := locker.TryAcquire(ctx, name)
		if err != nil {
			return err
		}
		return ls.Release(ctx)
	}
	theirs := func(ctx context.Context, name string) error {
		m := rs.NewMutex(name, redsync.WithExpiry(5*time.Second), redsync.WithTries(1))
		if err := m.LockContext(ctx); err != nil {
			return err
		}
		_, err := m.UnlockContext(ctx)
		return err
	}
	for _, g := range []int{1, 32} {
		b.Run(fmt.Sprintf("g=%d", g), func(b *testing.B) {
			var a, r tally
			for done := 0; done < b.N; done += 1000 {
				n := min(1000, b.N-done)
				a.round(b, g, n, "realm", ours)
				r.round(b, g, n, "redsync", theirs)
			}
			b.ReportMetric(a.opsPerSec(), "realm-ops/s")
			b.ReportMetric(r.opsPerSec(), "redsync-ops/s")
			b.ReportMetric(a.opsPerSec()/r.opsPerSec(), "ops-ratio")
			b.ReportMetric(float64(a.p99().Microseconds()), "realm-p99-µs")
			b.ReportMetric(float64(r.p99().Microseconds()), "redsync-p99-µs")
		})
	}
}

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

type benchResult struct {
	opsPerSec float64
	p99       time.Duration
}

// runCycles runs b.N acquire+release cycles over g goroutines, each on its
// own lock name (uncontended: this measures the cost of a cycle).
func runCycles(b *testing.B, g int, cycle func(ctx context.Context, name string) error) benchResult {
	ctx := context.Background()
	lat := make([][]time.Duration, g)
	per := (b.N + g - 1) / g
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < g; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("bench:%d:%d:%d", time.Now().UnixNano(), i, b.N)
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
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := benchResult{opsPerSec: float64(len(all)) / elapsed.Seconds()}
	if len(all) > 0 {
		r.p99 = all[len(all)*99/100]
	}
	b.ReportMetric(r.opsPerSec, "ops/s")
	b.ReportMetric(float64(r.p99.Microseconds()), "p99-µs")
	return r
}

// BenchmarkAcquireRelease compares a lease cycle of this package (SET NX PX
// + INCR fence in one script, renewal goroutine and deadline timer started,
// compare-and-delete release) with redsync (SET NX, Lua release) on the same
// Redis, at 1 and 32 goroutines; the ratio sub-benchmark reports ours/redsync
// throughput.
func BenchmarkAcquireRelease(b *testing.B) {
	redistest.Shared(b)
	c := redis.NewClient(&redis.Options{Addr: redistest.Addr(), PoolSize: 64, MinIdleConns: 32})
	defer c.Close()
	locker, err := lock.New(lock.NewRedisStore(c, "realmbench:"), lock.Options{TTL: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	rs := redsync.New(goredis.NewPool(c))
	for _, g := range []int{1, 32} {
		var ours, theirs benchResult
		b.Run(fmt.Sprintf("impl=realm/g=%d", g), func(b *testing.B) {
			ours = runCycles(b, g, func(ctx context.Context, name string) error {
				ls, err := locker.TryAcquire(ctx, name)
				if err != nil {
					return err
				}
				return ls.Release(ctx)
			})
		})
		b.Run(fmt.Sprintf("impl=redsync/g=%d", g), func(b *testing.B) {
			theirs = runCycles(b, g, func(ctx context.Context, name string) error {
				m := rs.NewMutex(name, redsync.WithExpiry(5*time.Second), redsync.WithTries(1))
				if err := m.LockContext(ctx); err != nil {
					return err
				}
				_, err := m.UnlockContext(ctx)
				return err
			})
		})
		b.Run(fmt.Sprintf("ratio/g=%d", g), func(b *testing.B) {
			if theirs.opsPerSec > 0 {
				b.ReportMetric(ours.opsPerSec/theirs.opsPerSec, "realm/redsync-ops")
				b.ReportMetric(float64(ours.p99)/float64(max(theirs.p99, 1)), "realm/redsync-p99")
			}
		})
	}
}

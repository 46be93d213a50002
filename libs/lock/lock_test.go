package lock_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/lock/locktest"
	"github.com/realmstream/realmstream/libs/redistest"
)

func TestTableConformance(t *testing.T) {
	locktest.Run(t, func(t *testing.T) lock.Store { return lock.NewTable() })
}

func TestRedisConformance(t *testing.T) {
	c := redistest.Shared(t)
	locktest.Run(t, func(t *testing.T) lock.Store { return lock.NewRedisStore(c, "realmtest:lock:") })
}

// TestLeaseTimingFakeClock checks renewal cadence and the local deadline with
// a fake clock (LOCK-T1): testing/synctest runs the lease's timers in a
// bubble where time only advances when every goroutine is blocked.
func TestLeaseTimingFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		counting := &countingStore{Store: lock.NewTable()}
		frozen := &locktest.Frozen{Store: counting}
		l, err := lock.New(frozen, lock.Options{TTL: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ls, err := l.TryAcquire(ctx, "z")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		if got := counting.renews; got != 10 {
			t.Fatalf("renewals in 10s at TTL/3=1s: %d, want 10", got)
		}
		if !ls.Valid() {
			t.Fatal("lease lost while renewing")
		}
		frozen.Freeze()
		<-ls.Done()
		// Last renewal at 10s; validity = 3s - 0 - 1% drift (30ms) - margin (2ms + 60ms).
		want := 10*time.Second + 3*time.Second - 30*time.Millisecond - 62*time.Millisecond
		if got := time.Since(start); got != want {
			t.Fatalf("context ended %v after acquire, want %v", got, want)
		}
		if !errors.Is(ls.Err(), lock.ErrLost) {
			t.Fatalf("cause %v", ls.Err())
		}
	})
}

type countingStore struct {
	lock.Store
	renews int
}

func (c *countingStore) Renew(ctx context.Context, name, value string, ttl time.Duration) error {
	c.renews++
	return c.Store.Renew(ctx, name, value, ttl)
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []lock.Options{
		{TTL: time.Millisecond},
		{TTL: time.Second, RenewEvery: 900 * time.Millisecond},
		{TTL: time.Second, DriftFactor: 0.5},
		{TTL: time.Second, RetryMin: 10 * time.Millisecond, RetryMax: time.Millisecond},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if err := (lock.Options{}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRedisConfig(t *testing.T) {
	if err := (lock.RedisConfig{}).Validate(); err == nil {
		t.Fatal("empty config accepted")
	}
	if err := (lock.RedisConfig{SentinelMaster: "m"}).Validate(); err == nil {
		t.Fatal("sentinel without addresses accepted")
	}
	c, err := lock.NewRedisClient(lock.RedisConfig{SentinelMaster: "m", SentinelAddrs: lock.SplitAddrs(" 127.0.0.1:1, 127.0.0.1:2 ,")})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c, err = lock.NewRedisClient(lock.RedisConfig{Addr: redistest.Addr(), PoolSize: 4, MinIdleConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

// Package locktest is the conformance suite of lock.Store implementations:
// every store (Redis, in-process table) runs Run and must behave the same.
// Only tests import it.
package locktest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/lock"
)

// Run runs the suite. newStore returns a store for one subtest; lease names
// are unique per subtest so a shared server can be used.
func Run(t *testing.T, newStore func(t *testing.T) lock.Store) {
	ctx := context.Background()
	name := func(t *testing.T) string {
		return strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + fmt.Sprint(time.Now().UnixNano())
	}
	locker := func(t *testing.T, s lock.Store, ttl time.Duration, owner string) *lock.Locker {
		l, err := lock.New(s, lock.Options{TTL: ttl, Owner: owner, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	t.Run("LOCK-1 exclusive and compare-and-act", func(t *testing.T) {
		s, n := newStore(t), name(t)
		f1, err := s.TryAcquire(ctx, n, "a", time.Second)
		if err != nil || f1 == 0 {
			t.Fatalf("first acquire: fence %d, %v", f1, err)
		}
		if _, err := s.TryAcquire(ctx, n, "b", time.Second); !errors.Is(err, lock.ErrHeld) {
			t.Fatalf("second acquire: %v, want ErrHeld", err)
		}
		if err := s.Renew(ctx, n, "b", time.Second); !errors.Is(err, lock.ErrNotHeld) {
			t.Fatalf("renew by non-owner: %v, want ErrNotHeld", err)
		}
		if err := s.Release(ctx, n, "b"); !errors.Is(err, lock.ErrNotHeld) {
			t.Fatalf("release by non-owner: %v, want ErrNotHeld", err)
		}
		if err := s.Renew(ctx, n, "a", time.Second); err != nil {
			t.Fatalf("renew by owner: %v", err)
		}
		if err := s.Release(ctx, n, "a"); err != nil {
			t.Fatalf("release by owner: %v", err)
		}
		if err := s.Release(ctx, n, "a"); !errors.Is(err, lock.ErrNotHeld) {
			t.Fatalf("double release: %v, want ErrNotHeld", err)
		}
		f2, err := s.TryAcquire(ctx, n, "b", time.Second)
		if err != nil || f2 <= f1 {
			t.Fatalf("re-acquire: fence %d (previous %d), %v: want a greater fence", f2, f1, err)
		}
		_ = s.Release(ctx, n, "b")
	})

	t.Run("LOCK-5 fences strictly increase", func(t *testing.T) {
		s, n := newStore(t), name(t)
		var last uint64
		for i := 0; i < 20; i++ {
			f, err := s.TryAcquire(ctx, n, fmt.Sprint("v", i), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if f <= last {
				t.Fatalf("fence %d after %d", f, last)
			}
			last = f
			if err := s.Release(ctx, n, fmt.Sprint("v", i)); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("store expiry", func(t *testing.T) {
		s, n := newStore(t), name(t)
		if _, err := s.TryAcquire(ctx, n, "a", 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := s.TryAcquire(ctx, n, "b", time.Second)
			if err == nil {
				break
			}
			if !errors.Is(err, lock.ErrHeld) || time.Now().After(deadline) {
				t.Fatalf("acquire after expiry: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := s.Renew(ctx, n, "a", time.Second); !errors.Is(err, lock.ErrNotHeld) {
			t.Fatalf("renew of expired lease: %v, want ErrNotHeld", err)
		}
	})

	t.Run("LOCK-3 auto-renew keeps the lease past its TTL", func(t *testing.T) {
		s, n := newStore(t), name(t)
		// TTL 1s, renewed every TTL/3: a renewal may be late by ~600 ms
		// (a loaded CI machine delayed a 150 ms TTL's past expiry).
		a := locker(t, s, time.Second, "a")
		ls, err := a.TryAcquire(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2500 * time.Millisecond) // more than 2 TTLs: only renewals keep it
		if !ls.Valid() {
			t.Fatalf("lease not valid after renewals: %v", ls.Err())
		}
		if _, err := s.TryAcquire(ctx, n, "b", time.Second); !errors.Is(err, lock.ErrHeld) {
			t.Fatalf("other acquire while renewed: %v, want ErrHeld", err)
		}
		if err := ls.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(ls.Err(), lock.ErrReleased) {
			t.Fatalf("context cause after release: %v", ls.Err())
		}
	})

	t.Run("LOCK-4 context ends before the store can expire the lease", func(t *testing.T) {
		inner, n := newStore(t), name(t)
		s := &Frozen{Store: inner}
		ttl := 300 * time.Millisecond
		a := locker(t, s, ttl, "a")
		start := time.Now()
		ls, err := a.TryAcquire(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		s.Freeze() // renewals now fail: like a partition from the store
		if d := ls.Deadline(); !d.Before(start.Add(ttl)) {
			t.Fatalf("local deadline %v after acquire start, not before the TTL %v", d.Sub(start), ttl)
		}
		// Valid() is what write paths check: it turns false at the local
		// deadline even if the machine is too loaded to fire timers on time.
		var lastValid time.Time
		for ls.Valid() {
			lastValid = time.Now()
			time.Sleep(time.Millisecond)
		}
		if !lastValid.Before(start.Add(ttl)) {
			t.Fatalf("lease still valid %v after acquire start, not before the TTL %v", lastValid.Sub(start), ttl)
		}
		<-ls.Done()
		cancelled := time.Now()
		if !errors.Is(ls.Err(), lock.ErrLost) {
			t.Fatalf("cause %v, want ErrLost", ls.Err())
		}
		// The store still holds it until the TTL: nobody else can have it yet.
		var got time.Time
		for time.Since(start) < 5*time.Second {
			if _, err := inner.TryAcquire(ctx, n, "b", time.Second); err == nil {
				got = time.Now()
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if got.IsZero() || !got.After(cancelled) {
			t.Fatalf("other owner at %v, old lease cancelled at %v", got.Sub(start), cancelled.Sub(start))
		}
	})

	t.Run("LOCK-3 takeover is detected at the next renewal", func(t *testing.T) {
		s, n := newStore(t), name(t)
		var lostCalls atomic.Int32
		a, err := lock.New(s, lock.Options{TTL: 300 * time.Millisecond, OnLost: func(string, error) { lostCalls.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		ls, err := a.TryAcquire(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		// Someone deletes and takes it (e.g. a Redis failover lost the key).
		if err := s.Release(ctx, n, ls.Token()); err != nil {
			t.Fatal(err)
		}
		fb, err := s.TryAcquire(ctx, n, "b", time.Second)
		if err != nil || fb <= ls.Fence() {
			t.Fatalf("takeover: fence %d (old %d) %v", fb, ls.Fence(), err)
		}
		select {
		case <-ls.Done():
		case <-time.After(2 * time.Second):
			t.Fatal("lease context not cancelled after takeover")
		}
		if !errors.Is(ls.Err(), lock.ErrLost) {
			t.Fatalf("cause %v", ls.Err())
		}
		if err := ls.Release(ctx); !errors.Is(err, lock.ErrNotHeld) {
			t.Fatalf("release of a lost lease: %v, want ErrNotHeld", err)
		}
		if err := s.Renew(ctx, n, "b", time.Second); err != nil {
			t.Fatalf("the new owner's lease was harmed by the old one's release: %v", err)
		}
		for i := 0; lostCalls.Load() == 0 && i < 100; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if lostCalls.Load() != 1 {
			t.Fatalf("OnLost called %d times", lostCalls.Load())
		}
	})

	t.Run("LOCK-9 Acquire waits for a release", func(t *testing.T) {
		s, n := newStore(t), name(t)
		a, b := locker(t, s, time.Second, "a"), locker(t, s, time.Second, "b")
		la, err := a.TryAcquire(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan *lock.Lease, 1)
		go func() {
			lb, err := b.Acquire(ctx, n)
			if err != nil {
				t.Error(err)
			}
			got <- lb
		}()
		time.Sleep(50 * time.Millisecond)
		select {
		case <-got:
			t.Fatal("acquired while held")
		default:
		}
		_ = la.Release(ctx)
		select {
		case lb := <-got:
			if lb.Fence() <= la.Fence() {
				t.Fatalf("fence %d after %d", lb.Fence(), la.Fence())
			}
			_ = lb.Release(ctx)
		case <-time.After(3 * time.Second):
			t.Fatal("waiter did not get the lease after release")
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		lc, err := a.TryAcquire(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		defer lc.Release(ctx)
		if _, err := b.Acquire(cctx, n); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Acquire with expiring context: %v", err)
		}
	})

	t.Run("LOCK-2 mutual exclusion under contention", func(t *testing.T) {
		s, n := newStore(t), name(t)
		var inside, maxInside atomic.Int32
		var wg sync.WaitGroup
		var fences sync.Map
		for g := 0; g < 8; g++ {
			l := locker(t, s, time.Second, fmt.Sprint("g", g))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					ls, err := l.Acquire(ctx, n)
					if err != nil {
						t.Error(err)
						return
					}
					if _, dup := fences.LoadOrStore(ls.Fence(), true); dup {
						t.Errorf("fence %d handed out twice", ls.Fence())
					}
					v := inside.Add(1)
					if v > maxInside.Load() {
						maxInside.Store(v)
					}
					time.Sleep(time.Millisecond)
					inside.Add(-1)
					if err := ls.Release(ctx); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		if maxInside.Load() != 1 {
			t.Fatalf("%d holders at once", maxInside.Load())
		}
	})
}

// Frozen wraps a Store; after Freeze its Renew calls fail, as if the holder
// were cut off from the store (the lease then runs out locally).
type Frozen struct {
	lock.Store
	frozen atomic.Bool
}

// Freeze makes renewals fail.
func (f *Frozen) Freeze() { f.frozen.Store(true) }

// Thaw lets renewals through again.
func (f *Frozen) Thaw() { f.frozen.Store(false) }

// Renew fails while frozen.
func (f *Frozen) Renew(ctx context.Context, name, value string, ttl time.Duration) error {
	if f.frozen.Load() {
		return errors.New("locktest: frozen")
	}
	return f.Store.Renew(ctx, name, value, ttl)
}

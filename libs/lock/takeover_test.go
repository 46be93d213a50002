package lock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/redistest"
)

// TestTakeOverDead, on both stores: a lease whose holder is known dead is
// taken at once with a greater fence, the old holder's lease ends at its next
// renewal, a live holder's lease is not taken (ErrHeld), and a free name is
// simply acquired.
func TestTakeOverDead(t *testing.T) {
	stores := map[string]func(t *testing.T) lock.Store{
		"table": func(t *testing.T) lock.Store { return lock.NewTable() },
		"redis": func(t *testing.T) lock.Store { return lock.NewRedisStore(redistest.Start(t).Client(), "") },
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			st := mk(t)
			ctx := context.Background()
			opts := func(owner string) lock.Options { return lock.Options{TTL: 3 * time.Second, Owner: owner} }
			a, _ := lock.New(st, opts("a"))
			b, _ := lock.New(st, opts("b"))
			la, err := a.TryAcquire(ctx, "z")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.TakeOverDead(ctx, "z", func(string) bool { return false }); !errors.Is(err, lock.ErrHeld) {
				t.Fatalf("live holder: %v, want ErrHeld", err)
			}
			var asked string
			start := time.Now()
			lb, err := b.TakeOverDead(ctx, "z", func(owner string) bool { asked = owner; return owner == "a" })
			if err != nil {
				t.Fatalf("dead holder: %v", err)
			}
			if asked != "a" || lb.Fence() <= la.Fence() {
				t.Fatalf("asked about %q, fence %d after %d", asked, lb.Fence(), la.Fence())
			}
			if took := time.Since(start); took > time.Second {
				t.Fatalf("take over took %v: it must not wait for the TTL", took)
			}
			select {
			case <-la.Done():
			case <-time.After(2 * a.RenewEvery()):
				t.Fatal("the old lease did not end at its next renewal")
			}
			if !lb.Valid() {
				t.Fatal("the new lease is not valid")
			}
			_ = lb.Release(ctx)
			lc, err := a.TakeOverDead(ctx, "z", func(string) bool { t.Error("asked about a free name"); return false })
			if err != nil || lc.Fence() <= lb.Fence() {
				t.Fatalf("free name: %v fence %v", err, lc)
			}
			_ = lc.Release(ctx)
		})
	}
}

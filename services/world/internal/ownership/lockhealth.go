package ownership

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/realmstream/realmstream/libs/lock"
)

// lockFailLimit is the number of consecutive lock store calls that failed
// (store unreachable, not "held"/"not held") after which, once no call has
// succeeded for a renew interval, the instance leaves the membership.
const lockFailLimit = 3

// lockHealth records whether the lock store answers. Every call through
// healthStore updates it; the controller reads it.
//
// Why: an instance cut from Redis loses its leases and stops its zones, but
// its NATS membership heartbeat goes on; rendezvous hashing would keep
// assigning it those zones and nobody else would acquire them until Redis
// came back. An unhealthy instance leaves the membership instead, and
// rejoins when a probe of the store succeeds (docs/world.md).
type lockHealth struct {
	mu       sync.Mutex
	failures int       // consecutive calls that failed
	lastOK   time.Time // last call the store answered (start time initially)
}

func newLockHealth() *lockHealth { return &lockHealth{lastOK: time.Now()} }

// record notes the outcome of one store call.
func (h *lockHealth) record(err error) {
	switch {
	case err == nil, errors.Is(err, lock.ErrHeld), errors.Is(err, lock.ErrNotHeld):
		h.mu.Lock()
		h.failures, h.lastOK = 0, time.Now()
		h.mu.Unlock()
	case errors.Is(err, context.Canceled):
		// The caller gave up (e.g. a renewal cut short by a release): says
		// nothing about the store.
	default:
		h.mu.Lock()
		h.failures++
		h.mu.Unlock()
	}
}

// unhealthy reports whether the store has been failing: lockFailLimit
// consecutive failures and no answer for renew (a renew interval), or any
// failure and no answer for ttl.
func (h *lockHealth) unhealthy(renew, ttl time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failures == 0 {
		return false
	}
	silent := time.Since(h.lastOK)
	return h.failures >= lockFailLimit && silent >= renew || silent >= ttl
}

// healthStore is a lock.Store that reports every outcome to h.
type healthStore struct {
	lock.Store
	h *lockHealth
}

func (s healthStore) TryAcquire(ctx context.Context, name, value string, ttl time.Duration) (uint64, error) {
	f, err := s.Store.TryAcquire(ctx, name, value, ttl)
	s.h.record(err)
	return f, err
}

func (s healthStore) Renew(ctx context.Context, name, value string, ttl time.Duration) error {
	err := s.Store.Renew(ctx, name, value, ttl)
	s.h.record(err)
	return err
}

func (s healthStore) Release(ctx context.Context, name, value string) error {
	err := s.Store.Release(ctx, name, value)
	s.h.record(err)
	return err
}

// Holder implements lock.Breaker when the wrapped store does.
func (s healthStore) Holder(ctx context.Context, name string) (string, error) {
	b, ok := s.Store.(lock.Breaker)
	if !ok {
		return "", lock.ErrNoBreaker
	}
	v, err := b.Holder(ctx, name)
	s.h.record(err)
	return v, err
}

// TakeOver implements lock.Breaker when the wrapped store does.
func (s healthStore) TakeOver(ctx context.Context, name, old, value string, ttl time.Duration) (uint64, error) {
	b, ok := s.Store.(lock.Breaker)
	if !ok {
		return 0, lock.ErrNoBreaker
	}
	f, err := b.TakeOver(ctx, name, old, value, ttl)
	s.h.record(err)
	return f, err
}

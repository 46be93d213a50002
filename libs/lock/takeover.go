package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Breaker is a Store that can hand a lease held by a known-dead holder to a
// new one at once, instead of letting it run out its TTL. Both stores of this
// package implement it.
type Breaker interface {
	// Holder returns the value holding name, "" when nobody holds it.
	Holder(ctx context.Context, name string) (string, error)
	// TakeOver replaces the lease held by old with value for ttl and returns
	// a fencing token greater than every one before (as TryAcquire does). It
	// returns ErrNotHeld when old no longer holds name (it was released,
	// expired or moved: try TryAcquire again).
	TakeOver(ctx context.Context, name, old, value string, ttl time.Duration) (uint64, error)
}

// Owner returns the owner id written in a lease value (see Options.Owner).
func Owner(value string) string {
	_, owner, _ := strings.Cut(value, ":")
	return owner
}

// ErrNoBreaker means the store cannot take a lease over.
var ErrNoBreaker = errors.New("lock: the store cannot take a lease over")

// TakeOverDead acquires name, taking it from its holder at once when dead
// says the holder's owner id belongs to a dead process (a crashed instance
// whose membership heartbeat ended). Fencing is unchanged: the new lease gets
// a greater token; the old holder, if it were alive after all, finds its
// lease gone at its next renewal (ErrNotHeld) and its context ends; and the
// storage-side check (the event log's expected sequence) still refuses any
// append it had in flight. With a live (or unknown) holder it returns ErrHeld.
func (l *Locker) TakeOverDead(ctx context.Context, name string, dead func(owner string) bool) (*Lease, error) {
	b, ok := l.store.(Breaker)
	if !ok {
		return nil, ErrNoBreaker
	}
	old, err := b.Holder(ctx, name)
	if err != nil {
		return nil, err
	}
	if old == "" {
		return l.TryAcquire(ctx, name)
	}
	if !dead(Owner(old)) {
		return nil, ErrHeld
	}
	token := l.newToken()
	start := time.Now()
	l.opts.Metrics.attempt()
	fence, err := b.TakeOver(ctx, name, old, token, l.opts.TTL)
	if err != nil {
		if !errors.Is(err, ErrNotHeld) {
			l.opts.Metrics.failure()
		}
		return nil, err
	}
	return l.newLease(ctx, name, token, fence, start)
}

// Holder implements Breaker.
func (t *Table) Holder(ctx context.Context, name string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.held(name, time.Now()); ok {
		return e.value, nil
	}
	return "", nil
}

// TakeOver implements Breaker.
func (t *Table) TakeOver(ctx context.Context, name, old, value string, ttl time.Duration) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if e, ok := t.held(name, now); !ok || e.value != old {
		return 0, ErrNotHeld
	}
	t.leases[name] = tableEntry{value: value, expires: now.Add(ttl)}
	t.fences[name]++
	return t.fences[name], nil
}

// takeOverScript: compare the old token, then SET the new one PX and INCR
// the fence, atomically.
var takeOverScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return redis.call('INCR', KEYS[2])
end
return 0`)

// Holder implements Breaker.
func (s *RedisStore) Holder(ctx context.Context, name string) (string, error) {
	v, err := s.c.Get(ctx, s.keys(name)[0]).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lock: redis holder of %s: %w", name, err)
	}
	return v, nil
}

// TakeOver implements Breaker.
func (s *RedisStore) TakeOver(ctx context.Context, name, old, value string, ttl time.Duration) (uint64, error) {
	n, err := takeOverScript.Run(ctx, s.c, s.keys(name), old, value, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("lock: redis take over %s: %w", name, err)
	}
	if n == 0 {
		return 0, ErrNotHeld
	}
	return uint64(n), nil
}

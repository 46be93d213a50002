// Package lock provides leases with fencing tokens: the ownership of a named
// resource (a world zone) for a bounded time, renewed automatically, with a
// context that is cancelled before the lease can have expired.
//
// A Store keeps the leases: the Redis store (SET NX PX to acquire, Lua
// compare-and-renew and compare-and-release, INCR per name for the fence) for
// several processes, and the in-process Table for the one-machine stack. Both
// pass the same conformance suite (package locktest).
//
// What a lease does NOT guarantee: mutual exclusion in real time. A holder can
// be paused (GC, SIGSTOP, VM migration) past its lease, Redis can lose a key on
// restart or failover, and a clock can jump. The lease is an efficiency
// mechanism (normally exactly one owner works on a zone); safety comes from the
// resource: every write of a zone is fenced by the storage (JetStream's
// Nats-Expected-Last-Subject-Sequence), see docs/world.md.
//
// Concurrency: a Locker is safe for concurrent use. A Lease is safe for
// concurrent use (its state is behind its own mutex); its renewals run on a
// timer re-armed after each one, so at most one runs at a time and a lease
// costs no goroutine between renewals.
package lock

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Errors of the lock package.
var (
	// ErrHeld means the lease is held by someone else.
	ErrHeld = errors.New("lock: held by another owner")
	// ErrNotHeld means the caller's token no longer holds the lease (it expired,
	// was released, or was taken over).
	ErrNotHeld = errors.New("lock: not held (expired or taken over)")
	// ErrLost is the cause of a lease context cancelled because the lease was lost
	// or could not be renewed before its local validity ended.
	ErrLost = errors.New("lock: lease lost")
	// ErrReleased is the cause of a lease context cancelled by Release or Abandon.
	ErrReleased = errors.New("lock: lease released")
)

// Store keeps leases. value is the owner's random token; a Store compares it on
// renew and release. Implementations must be safe for concurrent use.
type Store interface {
	// TryAcquire takes name for ttl if nobody holds it and returns a fencing
	// token strictly greater than every token it returned before for name
	// (as long as the store keeps its data). It returns ErrHeld when held.
	TryAcquire(ctx context.Context, name, value string, ttl time.Duration) (fence uint64, err error)
	// Renew extends the lease to ttl from now if value still holds it, else ErrNotHeld.
	Renew(ctx context.Context, name, value string, ttl time.Duration) error
	// Release deletes the lease if value holds it, else ErrNotHeld.
	Release(ctx context.Context, name, value string) error
}

// Options configure a Locker.
type Options struct {
	// TTL of a lease. Default 5s.
	TTL time.Duration
	// RenewEvery is the renewal period; default TTL/3 (must be <= TTL/2).
	RenewEvery time.Duration
	// DriftFactor is the share of TTL assumed lost to clock drift (redsync's 0.01). Default 0.01.
	DriftFactor float64
	// Margin is subtracted from the validity on top of the drift: the lease
	// context is cancelled this long before the earliest moment the store can
	// expire the key. Default 2ms + TTL/50.
	Margin time.Duration
	// Owner is an owner id written next to the token (e.g. the instance id).
	Owner string
	// RetryMin and RetryMax bound the randomized wait between attempts of
	// Acquire. Default 50ms and 250ms.
	RetryMin, RetryMax time.Duration
	// Metrics receives counters; nil means none.
	Metrics *Metrics
	// OnLost is called (in its own goroutine) when a lease is lost.
	OnLost func(name string, err error)
}

func (o Options) withDefaults() Options {
	if o.TTL == 0 {
		o.TTL = 5 * time.Second
	}
	if o.RenewEvery == 0 {
		o.RenewEvery = o.TTL / 3
	}
	if o.DriftFactor == 0 {
		o.DriftFactor = 0.01
	}
	if o.Margin == 0 {
		o.Margin = 2*time.Millisecond + o.TTL/50
	}
	if o.RetryMin == 0 {
		o.RetryMin = 50 * time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 250 * time.Millisecond
	}
	return o
}

// Validate checks the options (after defaults).
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.TTL < 10*time.Millisecond:
		return fmt.Errorf("lock: ttl %v: want >= 10ms", o.TTL)
	case o.RenewEvery <= 0 || o.RenewEvery > o.TTL/2:
		return fmt.Errorf("lock: renew every %v: want 0 < renew <= ttl/2 (%v)", o.RenewEvery, o.TTL/2)
	case o.DriftFactor < 0 || o.DriftFactor > 0.2:
		return fmt.Errorf("lock: drift factor %v: want 0..0.2", o.DriftFactor)
	case o.validity(0) <= o.RenewEvery:
		return fmt.Errorf("lock: ttl %v minus drift and margin leaves no time after the first renewal at %v", o.TTL, o.RenewEvery)
	case o.RetryMin <= 0 || o.RetryMax < o.RetryMin:
		return fmt.Errorf("lock: retry %v..%v: want 0 < min <= max", o.RetryMin, o.RetryMax)
	}
	return nil
}

// validity is how long after the start of a successful acquire or renew call
// (which took elapsed) the lease is surely still held by the store.
func (o Options) validity(elapsed time.Duration) time.Duration {
	return o.TTL - elapsed - time.Duration(float64(o.TTL)*o.DriftFactor) - o.Margin
}

// Locker hands out leases from a Store.
type Locker struct {
	store Store
	opts  Options
}

// New returns a Locker over store.
func New(store Store, opts Options) (*Locker, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Locker{store: store, opts: opts.withDefaults()}, nil
}

// TTL returns the lease TTL.
func (l *Locker) TTL() time.Duration { return l.opts.TTL }

// RenewEvery returns the renewal period.
func (l *Locker) RenewEvery() time.Duration { return l.opts.RenewEvery }

// newToken returns 128 random bits in hex plus the owner id.
func (l *Locker) newToken() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return hex.EncodeToString(b[:]) + ":" + l.opts.Owner
}

// TryAcquire makes one attempt. It returns ErrHeld when someone holds name.
func (l *Locker) TryAcquire(ctx context.Context, name string) (*Lease, error) {
	token := l.newToken()
	start := time.Now() // monotonic reading
	l.opts.Metrics.attempt()
	fence, err := l.store.TryAcquire(ctx, name, token, l.opts.TTL)
	if err != nil {
		if !errors.Is(err, ErrHeld) {
			l.opts.Metrics.failure()
		}
		return nil, err
	}
	return l.newLease(ctx, name, token, fence, start)
}

// newLease starts the renewal of a lease acquired at start.
func (l *Locker) newLease(ctx context.Context, name, token string, fence uint64, start time.Time) (*Lease, error) {
	valid := l.opts.validity(time.Since(start))
	if valid <= 0 {
		// The call took so long that the lease may already be gone.
		_ = l.store.Release(context.WithoutCancel(ctx), name, token)
		l.opts.Metrics.failure()
		return nil, fmt.Errorf("lock: acquire of %s took %v, longer than the lease validity", name, time.Since(start))
	}
	l.opts.Metrics.acquired(time.Since(start))
	ls := &Lease{l: l, name: name, token: token, fence: fence}
	ls.ctx, ls.cancel = context.WithCancelCause(context.Background())
	ls.mu.Lock()
	ls.deadline = start.Add(valid)
	ls.timer = time.AfterFunc(valid, func() { ls.lose(fmt.Errorf("%w: validity of %s ended without a renewal", ErrLost, name)) })
	ls.renewTimer = time.AfterFunc(l.opts.RenewEvery, ls.renew)
	ls.mu.Unlock()
	return ls, nil
}

// Acquire waits until it holds name or ctx ends. Between attempts it waits a
// random time in [RetryMin, RetryMax), doubling the upper bound's base on each
// failure, so many waiters neither hammer the store nor retry in lockstep.
func (l *Locker) Acquire(ctx context.Context, name string) (*Lease, error) {
	wait := l.opts.RetryMin
	for {
		ls, err := l.TryAcquire(ctx, name)
		if err == nil {
			return ls, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		d := wait + rand.N(l.opts.RetryMax-l.opts.RetryMin+1)
		if wait < l.opts.RetryMax {
			wait *= 2
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// Lease is one held lease. Its Context is cancelled when the lease is lost,
// released, or its local validity ends without a successful renewal; the
// cancellation happens before the store can expire the key (validity = TTL -
// call time - drift - margin, on the monotonic clock), so work guarded by the
// context stops in time unless the process itself is paused.
type Lease struct {
	l        *Locker
	name     string
	token    string
	fence    uint64
	ctx      context.Context
	cancel   context.CancelCauseFunc
	stopOnce sync.Once

	mu         sync.Mutex // guards deadline, timer, renewTimer, ended
	deadline   time.Time
	timer      *time.Timer // fires at the deadline: the lease is lost
	renewTimer *time.Timer // fires every RenewEvery (re-armed after each renewal)
	ended      bool
}

// Name returns the lease name.
func (ls *Lease) Name() string { return ls.name }

// Fence returns the fencing token of this lease.
func (ls *Lease) Fence() uint64 { return ls.fence }

// Token returns the owner token stored in the lease.
func (ls *Lease) Token() string { return ls.token }

// Context is cancelled (cause ErrLost or ErrReleased) when the lease ends.
func (ls *Lease) Context() context.Context { return ls.ctx }

// Done is Context().Done().
func (ls *Lease) Done() <-chan struct{} { return ls.ctx.Done() }

// Err returns nil while the lease is valid, else the cause of its end.
func (ls *Lease) Err() error { return context.Cause(ls.ctx) }

// Deadline returns the local validity deadline (monotonic).
func (ls *Lease) Deadline() time.Time {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.deadline
}

// Valid reports whether now is before the local deadline and the lease was
// neither lost nor released. Write paths check it before each write.
func (ls *Lease) Valid() bool {
	if ls.ctx.Err() != nil {
		return false
	}
	return time.Now().Before(ls.Deadline())
}

// renew runs on the renew timer's goroutine, one at a time (the timer is
// re-armed only after a renewal completes).
func (ls *Lease) renew() {
	if ls.ctx.Err() != nil {
		return
	}
	remaining := time.Until(ls.Deadline())
	if remaining <= 0 {
		return
	}
	// A renewal that answers after the deadline is useless: bound the call.
	ctx, cancel := context.WithTimeout(ls.ctx, remaining)
	start := time.Now()
	err := ls.l.store.Renew(ctx, ls.name, ls.token, ls.l.opts.TTL)
	cancel()
	switch {
	case err == nil:
		ls.extend(start)
	case errors.Is(err, ErrNotHeld):
		ls.l.opts.Metrics.renewFailure()
		ls.lose(fmt.Errorf("%w: %s was taken over or expired in the store", ErrLost, ls.name))
		return
	default:
		// Transient (network, Redis down): keep trying until the local
		// deadline; the deadline timer cancels the context when it passes.
		ls.l.opts.Metrics.renewFailure()
	}
	ls.mu.Lock()
	if !ls.ended {
		ls.renewTimer.Reset(ls.l.opts.RenewEvery)
	}
	ls.mu.Unlock()
}

func (ls *Lease) extend(start time.Time) {
	valid := ls.l.opts.validity(time.Since(start))
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.ended || valid <= 0 {
		return
	}
	if nd := start.Add(valid); nd.After(ls.deadline) {
		ls.deadline = nd
		ls.timer.Reset(time.Until(nd))
	}
}

func (ls *Lease) lose(err error) {
	ls.mu.Lock()
	first := !ls.ended
	ls.ended = true
	ls.timer.Stop()
	ls.renewTimer.Stop()
	ls.mu.Unlock()
	if !first {
		return
	}
	ls.l.opts.Metrics.lost()
	ls.cancel(err)
	if f := ls.l.opts.OnLost; f != nil {
		go f(ls.name, err)
	}
}

// end stops the renewal and cancels the context; it reports whether this
// call was the first to end the lease by release or abandon.
func (ls *Lease) end() bool {
	first := false
	ls.stopOnce.Do(func() {
		first = true
		ls.mu.Lock()
		ls.ended = true
		ls.timer.Stop()
		ls.renewTimer.Stop()
		ls.mu.Unlock()
		ls.cancel(ErrReleased) // no effect when already lost
		// A renewal already running is a compare-and-expire of our own token;
		// after a release it finds nothing and ends the (ended) lease again,
		// harmlessly.
	})
	return first
}

// Release stops renewing and deletes the lease in the store if this token
// still holds it (compare-and-delete: it never deletes another owner's lease).
// It returns ErrNotHeld when the store no longer had this token.
func (ls *Lease) Release(ctx context.Context) error {
	if !ls.end() {
		return nil
	}
	return ls.l.store.Release(ctx, ls.name, ls.token)
}

// Abandon stops renewing without touching the store: the lease expires by
// TTL. It is what a crash looks like and what an owner does when the store is
// unreachable.
func (ls *Lease) Abandon() { ls.end() }

package mpsc

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// ErrReleased is returned by the enqueue methods of a Producer after its
// Release: the handle gave its lane back and must not be used any more.
var ErrReleased = errors.New("mpsc: producer handle released")

// lane is a single-producer ring: the hand-off of one Producer handle to the
// consumer. Only the handle that owns the lane writes tail (and vals ahead of
// it), only the consumer writes head; Close sets closedBit in tail.
//
// One atomic per item: the owner writes vals[t&mask], then publishes with
// CAS(tail, t, t+1). There is no claim to make (nobody else appends to the
// lane), and the CAS, not a plain store, is what keeps Close exact: once Close
// has set closedBit the owner's CAS fails, so the set of accepted items is
// frozen by the Or just as on the shared lane.
type lane[T any] struct {
	_ [cacheLine]byte
	// tail: positions < tail&^closedBit are published. Written by the
	// owner's CAS and by Close's Or; read by the consumer once per drain.
	tail atomic.Uint64
	_    [cacheLine - 8]byte
	// head: positions < head are consumed and their slots free. Written by
	// the consumer once per drain; read by the owner only when its cached
	// copy says the lane is full.
	head atomic.Uint64
	_    [cacheLine - 8]byte
	// waiting is 1 while the owner is armed to park on a full lane; the
	// consumer (after freeing slots) or Close wins the 1 -> 0 transition and
	// sends the token on wake. Written only on slow paths.
	waiting atomic.Int32
	_       [cacheLine - 4]byte
	vals    []T
	mask    uint64
	wake    chan struct{} // capacity 1: the owner's wake-up token
	_       [cacheLine - 40]byte
}

// wakeOwner wakes the lane's owner if, and only if, it armed parking.
func (l *lane[T]) wakeOwner() {
	if l.waiting.Load() != 0 && l.waiting.CompareAndSwap(1, 0) {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// drain moves up to len(buf) published items of the lane into buf, oldest
// first, zeroing the slots when T holds pointers, and frees them with one
// store of head. Consumer only.
func (l *lane[T]) drain(buf []T, clear bool) int {
	h := l.head.Load()
	n := int((l.tail.Load() &^ closedBit) - h) // acquire: the values below tail
	if n == 0 {
		return 0
	}
	n = min(n, len(buf))
	vals, mask := l.vals, l.mask
	var zero T
	for k := range n {
		i := (h + uint64(k)) & mask
		buf[k] = vals[i]
		if clear {
			vals[i] = zero
		}
	}
	l.head.Store(h + uint64(n)) // release: the slots to the owner's next lap
	l.wakeOwner()               // store head, then load waiting
	return n
}

// ready reports whether the lane has a published, unconsumed item.
func (l *lane[T]) ready() bool { return l.tail.Load()&^closedBit != l.head.Load() }

// drained reports whether the lane is closed and empty.
func (l *lane[T]) drained() bool {
	t := l.tail.Load()
	return t&closedBit != 0 && l.head.Load() == t&^closedBit
}

// Producer is an enqueue handle. A handle from Ring.Producer owns one of
// the ring's producer lanes while lanes are free, so its enqueues contend
// with no other producer: one atomic per item and no cache line shared with
// another producer. When every lane is taken the handle uses the shared lane
// (the same as Ring.TryEnqueue). Either way, the items of one handle are
// dequeued in the order they were enqueued.
//
// A Producer must be used by one goroutine at a time (a connection's reader
// goroutine, say): it keeps the lane's tail and a cached copy of its head
// without synchronisation. Release returns the lane for another handle.
type Producer[T any] struct {
	r    *Ring[T]
	l    *lane[T] // nil: the shared lane
	vals []T
	mask uint64
	size uint64 // lane capacity
	head uint64 // a lower bound of l.head (head only grows)
	idx  int    // index in r.lanes, -1 for the shared lane
	gone bool   // released
}

// Producer returns an enqueue handle that owns a free producer lane, or
// uses the shared lane when none is free (or the ring has none, as one
// from New). Release the handle when its goroutine is done with it.
func (r *Ring[T]) Producer() *Producer[T] {
	p := &Producer[T]{r: r, idx: -1}
	r.lmu.Lock()
	if n := len(r.free); n > 0 {
		p.idx = r.free[n-1]
		r.free = r.free[:n-1]
	}
	r.lmu.Unlock()
	if p.idx >= 0 {
		l := &r.lanes[p.idx]
		p.l, p.vals, p.mask, p.size = l, l.vals, l.mask, l.mask+1
		// The lane may still hold items of its previous owner: they stay
		// ahead of ours (the mutex orders their tail store before our load).
		p.head = l.head.Load()
	}
	return p
}

// Release gives the handle's lane back to the ring. Items it enqueued stay
// and are dequeued as usual; later enqueues on the handle return
// ErrReleased. Release is idempotent.
func (p *Producer[T]) Release() {
	if p.gone {
		return
	}
	p.gone = true
	if p.l == nil {
		return
	}
	p.l, p.vals = nil, nil
	p.r.lmu.Lock()
	p.r.free = append(p.r.free, p.idx)
	p.r.lmu.Unlock()
}

// Lane reports whether the handle owns a producer lane (false: it uses the
// shared lane).
func (p *Producer[T]) Lane() bool { return p.l != nil }

// TryEnqueue appends v if the handle's lane has a free slot, never
// blocking: nil, ErrFull (retryable), ErrClosed or ErrReleased.
func (p *Producer[T]) TryEnqueue(v T) error {
	err := p.tryEnqueue(&v)
	if err == ErrFull {
		p.r.stats.full.Add(1)
	}
	return err
}

// Enqueue appends v, blocking while the handle's lane is full (yield a
// little, then park until the consumer frees a slot). It returns nil,
// ctx.Err(), ErrClosed or ErrReleased; the item is enqueued if and only if
// the result is nil.
func (p *Producer[T]) Enqueue(ctx context.Context, v T) error {
	if err := p.tryEnqueue(&v); err != ErrFull {
		return err
	}
	if p.l == nil {
		return p.r.enqueueSlow(ctx, &v, p)
	}
	return p.enqueueSlow(ctx, &v)
}

// enqueueSlow is Enqueue on a full lane: yield a little, then park until the
// consumer drains this lane. The owner is the lane's only possible waiter,
// so the consumer wakes exactly the producer whose lane it freed.
func (p *Producer[T]) enqueueSlow(ctx context.Context, v *T) (err error) {
	r, l := p.r, p.l
	r.stats.full.Add(1)
	start := time.Now()
	defer func() { r.stats.waitNanos.Add(uint64(time.Since(start))) }()
	for i := 0; i < producerSpins; i++ {
		runtime.Gosched()
		if err = p.tryEnqueue(v); err != ErrFull {
			return err
		}
	}
	done := ctx.Done()
	for {
		// Arm, then re-check (tryEnqueue loads head when full): pairs with
		// the consumer's "store head, then load waiting" in drain, and
		// Close's "set closedBit, then load waiting".
		l.waiting.Store(1)
		if err = p.tryEnqueue(v); err != ErrFull {
			l.waiting.Store(0)
			return err
		}
		r.stats.producerParks.Add(1)
		select {
		case <-l.wake:
			// The waker cleared waiting. A token may be stale (left by a
			// wake that raced our re-check): the loop re-checks.
		case <-done:
			l.waiting.Store(0)
			// A token sent meanwhile stays in the channel; the next
			// park of this lane's owner takes it and re-checks.
			return ctx.Err()
		}
		if err = p.tryEnqueue(v); err != ErrFull {
			return err
		}
	}
}

// tryEnqueue is the lane fast path: no claim, one CAS to publish.
func (p *Producer[T]) tryEnqueue(v *T) error {
	l := p.l
	if l == nil {
		if p.gone {
			return ErrReleased
		}
		return p.r.tryEnqueue(v)
	}
	t := l.tail.Load()
	if t&closedBit != 0 {
		return ErrClosed
	}
	// t - head cannot be negative: head <= tail and only we move tail.
	if t-p.head >= p.size {
		p.head = l.head.Load() // acquire: the consumer is done with the slot
		if t-p.head >= p.size {
			return ErrFull
		}
	}
	i := t & p.mask
	p.vals[i] = *v
	if !l.tail.CompareAndSwap(t, t+1) { // publish: release of vals[i]
		// Only Close changes tail under us. The slot is past tail, so the
		// consumer never reads it; clear it for the GC.
		var zero T
		p.vals[i] = zero
		return ErrClosed
	}
	if p.r.sleeping.Load() != 0 {
		p.r.signalConsumer()
	}
	return nil
}

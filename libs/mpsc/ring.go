// Package mpsc is a bounded, lock-free, multi-producer single-consumer ring
// buffer: the queue between the gateway's connection goroutines (many
// producers) and its one JetStream publisher (the consumer).
//
// # Algorithm
//
// The ring is Dmitry Vyukov's bounded queue with one sequence number per slot,
// specialised for one consumer. Slot i of a ring of capacity C (a power of two,
// mask = C-1) carries seq, which tells whose turn the slot is:
//
//	seq == pos          the slot is free for the producer that claims position pos
//	seq == pos+1        position pos is published: the consumer may read it
//	seq == pos+C        the consumer freed it; it is free for position pos+C
//
// A producer loads tail (the next position to claim), loads the seq of slot
// tail&mask and computes dif = int64(seq) - int64(tail) with SIGNED arithmetic
// (with uint64 "dif < 0" would be dead code and a full ring would look like
// contention: the classic port bug that staticcheck SA4003 catches):
//
//	dif == 0  the slot is free for this lap: CAS tail -> tail+1 claims it,
//	          then write the payload, then publish with seq.Store(pos+1)
//	dif <  0  the slot still holds the item from the previous lap: full
//	dif >  0  another producer claimed pos meanwhile: reload tail and retry
//
// The consumer owns head. It reads slot head&mask when seq == head+1, copies
// the payload out, zeroes the slot (no pointer stays reachable for the GC) and
// frees it with seq.Store(head+C).
//
// # Memory ordering
//
// Go's sync/atomic operations are sequentially consistent, and the Go memory
// model (go.dev/ref/mem) makes an atomic store "synchronized before" any atomic
// load that observes it. The payload is a plain (non-atomic) field and is only
// ever handed over through the slot's seq:
//
//   - producer: write payload, then seq.Store(pos+1) (release);
//     consumer: seq.Load() == pos+1 (acquire), then read payload.
//     So the consumer's read happens after the producer's write.
//   - consumer: read + zero payload, then seq.Store(pos+C);
//     next-lap producer: seq.Load() == pos+C, then write payload.
//     So the next write happens after the previous read (no torn reuse).
//   - Only the producer whose CAS on tail succeeded for pos writes slot
//     pos&mask in that lap, so writers of one slot never overlap (the CAS
//     serialises claims; seq prevents ABA because it grows every lap).
//
// The race detector models exactly these edges, so -race checks the payload
// hand-off, not only the atomics.
//
// # Guarantees and the documented relaxation
//
// Every enqueue that returned nil is dequeued exactly once, in the order of
// the claims (the successful CAS on tail), which implies per-producer FIFO.
// The ring is NOT linearizable for "empty": a producer that has claimed
// position p but not yet published it (for example, it was preempted between
// the CAS and seq.Store) hides p and every later position, even positions
// whose enqueue has already returned. DequeueBatch then returns fewer items
// (possibly 0) and Wait keeps parking until p is published; the items are not
// lost, only delayed until that producer runs again. Len counts claimed
// positions and may include such unpublished items.
//
// # Close
//
// The closed flag is the top bit of tail, so Close and a claim are one atomic
// word: a CAS of tail that succeeded before Close's atomic OR belongs to the
// accepted set (it will be published and dequeued), a CAS after it fails and
// the producer returns ErrClosed. Wait returns ErrClosed only when the flag is
// set and head has reached the tail value frozen by Close, so the consumer
// drains every accepted item, even those still unpublished at Close time.
//
// # Parking
//
// The consumer spins briefly, then arms a flag (sleeping = 1), re-checks the
// head slot and the closed flag, and only then blocks on a channel of
// capacity 1. A producer, after publishing, loads the flag and signals only if
// it wins the 1 -> 0 transition the consumer armed. Both sides do "store mine,
// then load theirs" with sequentially consistent atomics, so at least one of
// them sees the other: either the consumer's re-check sees the publish, or the
// producer sees the armed flag. No wake-up is lost and an idle consumer costs
// no CPU. Producers blocked on a full ring (Enqueue) park the same way, on a
// counted token channel the consumer feeds after freeing slots.
package mpsc

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrFull is returned by TryEnqueue when every slot holds an undelivered
	// item. It is retryable: the consumer frees slots as it drains.
	ErrFull = errors.New("mpsc: ring is full")
	// ErrClosed is returned by enqueues after Close, and by Wait once the ring
	// is closed and every accepted item has been dequeued (the io.EOF of the
	// ring).
	ErrClosed = errors.New("mpsc: ring is closed")
)

// cacheLine is the padding unit between hot fields. 128 bytes covers the
// 64-byte line and the adjacent-line prefetcher on x86 and the 128-byte lines
// of some arm64 parts.
const cacheLine = 128

// closedBit is the top bit of tail; positions never reach it (2^63 claims).
const closedBit = uint64(1) << 63

// maxCapacity bounds New's argument so the rounded capacity fits an int on
// every platform.
const maxCapacity = 1 << 30

// Spin budgets before parking. Each spin iteration yields the processor
// (runtime.Gosched): on a 2-core machine a consumer that spins without
// yielding starves the producers it is waiting for.
const (
	consumerSpins = 64
	producerSpins = 16
)

// slot is one cell of the ring. seq is the Vyukov sequence number; val is
// only touched by the side whose turn seq says it is.
type slot[T any] struct {
	seq atomic.Uint64
	val T
}

// Ring is a bounded lock-free MPSC queue of T. Any number of goroutines may
// call TryEnqueue, Enqueue, Close, Len, Cap and Stats concurrently; exactly one
// goroutine at a time (the consumer) may call DequeueBatch and Wait.
//
// Field layout: the read-only header, tail (written by every producer's CAS),
// head (written by the consumer) and the parking flags (written only on slow
// paths) each sit on their own cache line, so producers and the consumer do
// not invalidate each other's lines except through the slots themselves.
type Ring[T any] struct {
	_ [cacheLine]byte

	// Read-only after New.
	slots []slot[T]
	mask  uint64
	wake  chan struct{} // consumer wake-up, capacity 1
	pwake chan struct{} // producer wake-up tokens (zero-size elements, no buffer memory)
	_     [cacheLine]byte

	// tail is the next position producers claim, with closedBit.
	tail atomic.Uint64
	_    [cacheLine - 8]byte

	// head is the next position the consumer reads. Only the consumer
	// writes it; Len reads it.
	head atomic.Uint64
	_    [cacheLine - 8]byte

	// sleeping is 1 while the consumer is armed to park. Producers read it
	// after every publish; it is written only when the consumer parks.
	sleeping atomic.Int32
	// pwaiting counts producers registered to park (guarded by pmu for
	// writes, read without it by the consumer after each batch).
	pwaiting atomic.Int32
	_        [cacheLine - 8]byte

	pmu sync.Mutex // serialises producer registration against wake-all

	stats struct {
		full          atomic.Uint64
		producerParks atomic.Uint64
		waitNanos     atomic.Uint64
		consumerParks atomic.Uint64
	}
}

// New returns an empty ring whose capacity is capacity rounded up to a power
// of two (at least 2). It panics if capacity < 1 or capacity > 1<<30: a ring
// size is a programming decision, not runtime input.
func New[T any](capacity int) *Ring[T] {
	if capacity < 1 || capacity > maxCapacity {
		panic("mpsc: capacity must be in [1, 1<<30]")
	}
	c := 2
	for c < capacity {
		c <<= 1
	}
	r := &Ring[T]{
		slots: make([]slot[T], c),
		mask:  uint64(c - 1),
		wake:  make(chan struct{}, 1),
		// A channel of struct{} allocates no element buffer, so a huge
		// capacity is free and sends of owed tokens never block.
		pwake: make(chan struct{}, maxCapacity),
	}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// Cap returns the capacity (a power of two).
func (r *Ring[T]) Cap() int { return len(r.slots) }

// Len returns the number of claimed, not yet dequeued positions, clamped to
// [0, Cap]. It includes items claimed but not yet published, and is a
// snapshot: meant for metrics (queue depth), not for decisions.
func (r *Ring[T]) Len() int {
	h := r.head.Load()
	t := r.tail.Load() &^ closedBit
	if t <= h {
		return 0
	}
	if n := t - h; n < uint64(len(r.slots)) {
		return int(n)
	}
	return len(r.slots)
}

// Closed reports whether Close has been called.
func (r *Ring[T]) Closed() bool { return r.tail.Load()&closedBit != 0 }

// TryEnqueue appends v if a slot is free. It never blocks: it returns nil,
// ErrFull (retryable) or ErrClosed. A failed CAS caused by another producer
// is retried, never reported as full.
func (r *Ring[T]) TryEnqueue(v T) error {
	if err := r.tryEnqueue(v); err != nil {
		if err == ErrFull {
			r.stats.full.Add(1)
		}
		return err
	}
	return nil
}

func (r *Ring[T]) tryEnqueue(v T) error {
	t := r.tail.Load()
	for {
		if t&closedBit != 0 {
			return ErrClosed
		}
		s := &r.slots[t&r.mask]
		seq := s.seq.Load()
		switch dif := int64(seq) - int64(t); {
		case dif == 0:
			if r.tail.CompareAndSwap(t, t+1) {
				s.val = v
				s.seq.Store(t + 1) // publish: release of val
				r.signalConsumer()
				return nil
			}
			t = r.tail.Load()
		case dif < 0:
			// seq == t+1-C: position t-C is still unconsumed. Since tail >= t
			// and head <= t-C at the load of seq, the ring was full then.
			return ErrFull
		default:
			// Another producer claimed t (and maybe published it): move on.
			t = r.tail.Load()
		}
	}
}

// signalConsumer wakes the consumer if, and only if, it armed parking. The
// CAS makes exactly one producer pay for the channel send.
func (r *Ring[T]) signalConsumer() {
	if r.sleeping.Load() != 0 && r.sleeping.CompareAndSwap(1, 0) {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Enqueue appends v, blocking while the ring is full: it retries briefly,
// then parks until the consumer frees a slot. It returns nil, ctx.Err() if
// ctx is done first, or ErrClosed. An item is enqueued if and only if the
// result is nil; a free slot wins over a done ctx.
func (r *Ring[T]) Enqueue(ctx context.Context, v T) error {
	err := r.tryEnqueue(v)
	if err != ErrFull {
		return err
	}
	r.stats.full.Add(1)
	start := time.Now()
	defer func() { r.stats.waitNanos.Add(uint64(time.Since(start))) }()
	for i := 0; i < producerSpins; i++ {
		runtime.Gosched()
		if err = r.tryEnqueue(v); err != ErrFull {
			return err
		}
	}
	done := ctx.Done()
	for {
		// Register, then re-check: pairs with the consumer's "free slot,
		// then load pwaiting" in wakeProducers.
		r.pmu.Lock()
		r.pwaiting.Add(1)
		r.pmu.Unlock()
		if err = r.tryEnqueue(v); err != ErrFull {
			r.unregisterProducer()
			return err
		}
		r.stats.producerParks.Add(1)
		select {
		case <-r.pwake:
			// Our token: registration already consumed by the waker.
		case <-done:
			r.unregisterProducer()
			return ctx.Err()
		}
		if err = r.tryEnqueue(v); err != ErrFull {
			return err
		}
	}
}

// unregisterProducer withdraws a registration that has not received its
// token. If a waker already counted it (pwaiting was reset), the token is in
// the channel or about to be sent; take one so the count stays balanced.
func (r *Ring[T]) unregisterProducer() {
	r.pmu.Lock()
	if r.pwaiting.Load() > 0 {
		r.pwaiting.Add(-1)
		r.pmu.Unlock()
		return
	}
	r.pmu.Unlock()
	<-r.pwake
}

// wakeProducers hands one token to every registered producer. Called by the
// consumer after freeing slots and by Close.
func (r *Ring[T]) wakeProducers() {
	if r.pwaiting.Load() == 0 {
		return
	}
	r.pmu.Lock()
	n := r.pwaiting.Load()
	r.pwaiting.Store(0)
	r.pmu.Unlock()
	for ; n > 0; n-- {
		r.pwake <- struct{}{}
	}
}

// DequeueBatch moves up to len(buf) published items, oldest first, into buf
// and returns how many. It never blocks and returns 0 when the next position
// is not yet published (see the relaxation in the package comment). Dequeued
// slots are zeroed. Only the single consumer may call it.
func (r *Ring[T]) DequeueBatch(buf []T) int {
	h := r.head.Load()
	n := 0
	var zero T
	for n < len(buf) {
		s := &r.slots[h&r.mask]
		if int64(s.seq.Load())-int64(h+1) < 0 {
			break // not yet published
		}
		buf[n] = s.val // acquire: ordered after the producer's write
		s.val = zero
		s.seq.Store(h + r.mask + 1) // free for the next lap
		h++
		n++
	}
	if n > 0 {
		r.head.Store(h)
		r.wakeProducers()
	}
	return n
}

// ready reports whether the consumer's next position is published.
func (r *Ring[T]) ready() bool {
	h := r.head.Load()
	return int64(r.slots[h&r.mask].seq.Load())-int64(h+1) >= 0
}

// drained reports whether the ring is closed and every accepted position has
// been dequeued.
func (r *Ring[T]) drained() bool {
	t := r.tail.Load()
	return t&closedBit != 0 && r.head.Load() == t&^closedBit
}

// Wait blocks the consumer until an item can be dequeued (nil), ctx is done
// (ctx.Err()), or the ring is closed and drained (ErrClosed). It spins
// briefly, then parks with no CPU use until a producer publishes the next
// position or Close is called. Only the single consumer may call it.
func (r *Ring[T]) Wait(ctx context.Context) error {
	for i := 0; i < consumerSpins; i++ {
		if r.ready() {
			return nil
		}
		if r.drained() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		runtime.Gosched()
	}
	done := ctx.Done()
	for {
		// Arm, then re-check: pairs with the producer's "publish, then load
		// sleeping" in signalConsumer, and Close's "set bit, then load".
		r.sleeping.Store(1)
		if r.ready() {
			r.sleeping.Store(0)
			return nil
		}
		if r.drained() {
			r.sleeping.Store(0)
			return ErrClosed
		}
		r.stats.consumerParks.Add(1)
		select {
		case <-r.wake:
			// The signaller cleared sleeping. The wake may be stale (a
			// token from an earlier arming, or for a position behind an
			// unpublished one): loop and re-check.
		case <-done:
			r.sleeping.Store(0)
			return ctx.Err()
		}
	}
}

// Close stops accepting items: every later enqueue returns ErrClosed, and
// producers parked in Enqueue wake up with ErrClosed. Items already accepted
// stay in the ring; the consumer drains them and then Wait returns ErrClosed.
// Close is idempotent and safe to call concurrently with everything.
func (r *Ring[T]) Close() {
	if r.tail.Or(closedBit)&closedBit != 0 {
		return
	}
	if r.sleeping.CompareAndSwap(1, 0) {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	r.wakeProducers()
}

// Stats are counters for metrics (QUEUE-7). They are updated only on slow
// paths, so keeping them costs nothing on the fast path.
type Stats struct {
	Len           int           // current depth (see Len)
	Full          uint64        // enqueue attempts that found the ring full
	ProducerParks uint64        // times a blocked Enqueue parked
	EnqueueWait   time.Duration // total time Enqueue spent blocked on a full ring
	ConsumerParks uint64        // times Wait parked the consumer
}

// Stats returns a snapshot of the counters.
func (r *Ring[T]) Stats() Stats {
	return Stats{
		Len:           r.Len(),
		Full:          r.stats.full.Load(),
		ProducerParks: r.stats.producerParks.Load(),
		EnqueueWait:   time.Duration(r.stats.waitNanos.Load()),
		ConsumerParks: r.stats.consumerParks.Load(),
	}
}

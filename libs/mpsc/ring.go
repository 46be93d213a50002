// Package mpsc is a bounded, lock-free, multi-producer single-consumer ring
// buffer: the queue between the gateway's connection goroutines (many
// producers) and its one JetStream publisher (the consumer).
//
// # Algorithm
//
// The ring is Dmitry Vyukov's bounded queue with one sequence number per slot,
// specialised for one consumer, with the consumer's side of the hand-off
// published once per batch (as the LMAX Disruptor's gating sequence does)
// instead of once per slot. Positions p = 0, 1, 2, ... map to slot p&mask of
// a ring of capacity C (a power of two, mask = C-1). Two words order
// everything:
//
//	tail      next position to claim (plus the closed flag, see Close)
//	head      next position the consumer reads; written only by the consumer
//	seqs[i]   == uint32(p+1) once position p (p&mask == i) is published;
//	          the previous lap's value (p+1-C) means "not yet"
//
// A producer loads t = tail and checks for space with SIGNED arithmetic,
// int64(t - head) >= C means full. t may be stale, so t - head may even be
// negative: as uint64 it would look like a huge "full" (and a uint64 "dif <
// 0" is dead code, the classic port bug that staticcheck SA4003 catches). If
// there is room it claims t with CAS(tail, t, t+1) (a failed CAS means
// another producer claimed t: reload and retry, never "full"), writes
// vals[t&mask] and publishes with seqs[t&mask].Store(uint32(t+1)).
//
// The consumer reads position h while int32(seqs[h&mask] - uint32(h+1)) >= 0,
// copies the value out and, if T holds pointers, zeroes the slot (no pointer
// stays reachable for the GC; a pointer-free slot is left as it is, so the
// consumer only reads the line the next producer writes), and after the batch
// stores head = h+n once: that single store frees the n slots. Compared with
// a per-slot "free" store this saves one full-fence atomic per item on the
// consumer, which was the bottleneck in the first benchmarks
// (docs/bench/mpsc.md).
//
// Sequence numbers are 32 bits (16 per cache line, half the traffic of 64):
// when the consumer looks at position h, slot h&mask holds either h+1 or the
// value of the lap before, h+1-C, and C <= 2^30 keeps the two apart in 32-bit
// signed arithmetic. Sequence numbers and values are two arrays (not an
// array of {seq, val} structs): the consumer polls 16 sequence numbers per
// cache line and 64-byte
// values stay aligned to one line each, which measured slightly faster than
// the interleaved layout, and faster than padding every slot to a cache line
// (which moves more lines per item).
//
// # Memory ordering
//
// Go's sync/atomic operations are sequentially consistent, and the Go memory
// model (go.dev/ref/mem) makes an atomic store "synchronized before" any atomic
// load that observes it. Values are plain (non-atomic) memory and only change
// hands through these edges:
//
//   - producer: write vals[i], then seqs[i].Store(p+1) (release);
//     consumer: seqs[i].Load() == p+1 (acquire), then read vals[i].
//     So the consumer's read happens after the producer's write.
//   - consumer: read (and zero) vals[i] for position p, then head.Store(h)
//     with h > p; next-lap producer of position p+C: head.Load() >= p+1
//     (that is what "not full" means for p+C), then write vals[i].
//     So the next write happens after the previous read and zeroing.
//   - Only the producer whose CAS on tail succeeded for p writes slot p&mask
//     in that lap, so writers of one slot never overlap. A slot's sequence
//     grows by C every lap and the consumer reads slot h&mask only after it
//     consumed h-C, so the only stale value it can see is h+1-C, never
//     mistaken for a publication (no ABA; C <= 2^30 < 2^31).
//
// The race detector models exactly these edges, so -race checks the value
// hand-off, not only the atomics.
//
// # Guarantees and the documented relaxation
//
// Every enqueue that returned nil is dequeued exactly once, in the order of
// the claims (the successful CAS on tail), which implies per-producer FIFO.
// The ring is NOT linearizable for "empty": a producer that has claimed
// position p but not yet published it (for example, it was preempted between
// the CAS and its seqs store) hides p and every later position, even positions
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
	"reflect"
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

// Spin budgets before parking. The consumer polls the lanes a few times,
// then yields the processor a few times (runtime.Gosched: a producer that
// the last batch woke, or that is ready to publish, runs meanwhile), and
// only then parks: a park costs a channel receive plus the producer's
// wake-up, about the time of several yields, and an early park made the
// consumer park ~15 times per 1000 items when lanes are small
// (docs/bench/mpsc.md). It never spins long: on a 2-core machine a spinning
// consumer takes the processor from the producers it waits for, and every
// poll of a lane pulls the line its producer writes next (8 polls measured
// faster than 64 at 4 and 16 producers, docs/mpsc.md). A blocked producer
// yields a few times before parking, so that the consumer can run and make
// room.
const (
	consumerSpins  = 8
	consumerYields = 8
	producerSpins  = 16
)

// Gathering (docs/mpsc.md, "Third round"). A drain that filled less than
// half of the caller's buffer means the consumer is chasing producers that
// run on the other processor, taking each item as soon as it is published:
// then every item moves its value line and its lane's tail line between the
// cores twice (~50 ns each here), and the ring ran at a third of the
// mutex ring's speed. So the next DequeueBatch after such a small drain
// first yields once (producers waiting for a processor run and fill their
// lanes) and then lets gatherWindow pass since the small drain, polling no
// shared line, so that it takes a batch, not an item. The caller's own work
// between the two calls counts towards the window: a publisher that spends
// more than gatherWindow on a batch never waits. The protocol (claim,
// publish, head, parking) is unchanged; this only delays the consumer's
// next read.
const gatherWindow = 2 * time.Microsecond

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
	seqs  []atomic.Uint32 // seqs[i] is the sequence number of vals[i], mod 2^32
	vals  []T
	mask  uint64
	clear bool          // T holds pointers: zero dequeued slots for the GC
	wake  chan struct{} // consumer wake-up, capacity 1
	pwake chan struct{} // producer wake-up tokens (zero-size elements, no buffer memory)
	lanes []lane[T]     // producer lanes (lane.go); nil for a ring from New
	_     [cacheLine]byte

	// tail is the next position producers claim, with closedBit.
	tail atomic.Uint64
	_    [cacheLine - 8]byte

	// head is the next position the consumer reads. Only the consumer
	// writes it; Len reads it.
	head atomic.Uint64
	// cursor is the lane DequeueBatch starts at (0: the shared lane, k:
	// lanes[k-1]): the one after the last lane that gave items. Consumer
	// only.
	cursor int
	// gatherAt is when the last DequeueBatch drained a small batch (zero:
	// it did not). Consumer only.
	gatherAt time.Time
	spun     uint64 // spinDelay's results, so its loop is not optimised away
	_        [cacheLine - 48]byte

	// sleeping is 1 while the consumer is armed to park. Producers read it
	// after every publish; it is written only when the consumer parks.
	sleeping atomic.Int32
	// pwaiting counts producers registered to park (guarded by pmu for
	// writes, read without it by the consumer after each batch).
	pwaiting atomic.Int32
	_        [cacheLine - 8]byte

	pmu sync.Mutex // serialises producer registration against wake-all

	lmu  sync.Mutex // guards free
	free []int      // indexes of unowned lanes (Producer takes, Release gives back)

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
		seqs:  make([]atomic.Uint32, c),
		vals:  make([]T, c),
		mask:  uint64(c - 1),
		clear: hasPointers(reflect.TypeFor[T]()),
		wake:  make(chan struct{}, 1),
		// A channel of struct{} allocates no element buffer, so a huge
		// capacity is free and sends of owed tokens never block.
		pwake: make(chan struct{}, maxCapacity),
	}
	// seq starts at 0: "not published" for every position p >= 0, since
	// 0 - (p+1) < 0.
	return r
}

// NewLanes returns a ring with a shared lane of capacity (as New) and
// lanes producer lanes of laneCapacity each (rounded up to a power of two, at
// least 2), which Producer hands out one per handle. It panics on a capacity
// outside [1, 1<<30] or a negative lanes.
func NewLanes[T any](capacity, lanes, laneCapacity int) *Ring[T] {
	if lanes < 0 || laneCapacity < 1 || laneCapacity > maxCapacity {
		panic("mpsc: lanes must be >= 0 and laneCapacity in [1, 1<<30]")
	}
	r := New[T](capacity)
	c := 2
	for c < laneCapacity {
		c <<= 1
	}
	r.lanes = make([]lane[T], lanes)
	r.free = make([]int, 0, lanes)
	for k := lanes - 1; k >= 0; k-- {
		r.lanes[k].vals = make([]T, c)
		r.lanes[k].mask = uint64(c - 1)
		r.lanes[k].wake = make(chan struct{}, 1)
		r.free = append(r.free, k) // lane 0 is handed out first
	}
	return r
}

// Cap returns the capacity: the shared lane's (a power of two) plus every
// producer lane's.
func (r *Ring[T]) Cap() int {
	c := len(r.seqs)
	for k := range r.lanes {
		c += len(r.lanes[k].vals)
	}
	return c
}

// Len returns the number of claimed, not yet dequeued positions, clamped to
// [0, Cap]. It includes items claimed but not yet published, and is a
// snapshot: meant for metrics (queue depth), not for decisions.
func (r *Ring[T]) Len() int {
	n := clampLen(r.head.Load(), r.tail.Load(), len(r.seqs))
	for k := range r.lanes {
		l := &r.lanes[k]
		n += clampLen(l.head.Load(), l.tail.Load(), len(l.vals))
	}
	return n
}

// clampLen is tail - head (closedBit removed) clamped to [0, c].
func clampLen(h, t uint64, c int) int {
	t &^= closedBit
	if t <= h {
		return 0
	}
	if n := t - h; n < uint64(c) {
		return int(n)
	}
	return c
}

// Closed reports whether Close has been called.
func (r *Ring[T]) Closed() bool { return r.tail.Load()&closedBit != 0 }

// TryEnqueue appends v if a slot is free. It never blocks: it returns nil,
// ErrFull (retryable) or ErrClosed. A failed CAS caused by another producer
// is retried, never reported as full.
func (r *Ring[T]) TryEnqueue(v T) error {
	err := r.tryEnqueue(&v)
	if err == ErrFull {
		r.stats.full.Add(1)
	}
	return err
}

// tryEnqueue takes a pointer so that a large T is copied once, into its
// slot (v does not escape: it is only read).
func (r *Ring[T]) tryEnqueue(v *T) error {
	seqs, vals, mask := r.seqs, r.vals, r.mask
	t := r.tail.Load()
	for {
		if t&closedBit != 0 {
			return ErrClosed
		}
		// Signed difference: t may be stale (other producers claimed
		// more, the consumer moved head past t); then dif is small or
		// negative and the CAS below fails and reloads.
		if dif := int64(t - r.head.Load()); dif >= int64(len(seqs)) {
			// tail >= t >= head + C when head was loaded: full then.
			return ErrFull
		}
		if r.tail.CompareAndSwap(t, t+1) {
			i := t & mask
			vals[i] = *v
			seqs[i].Store(uint32(t + 1)) // publish: release of val
			if r.sleeping.Load() != 0 {
				r.signalConsumer()
			}
			return nil
		}
		t = r.tail.Load()
	}
}

// signalConsumer wakes the consumer if, and only if, it armed parking. The
// CAS makes exactly one producer pay for the channel send.
func (r *Ring[T]) signalConsumer() {
	if r.sleeping.CompareAndSwap(1, 0) {
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
	if err := r.tryEnqueue(&v); err != ErrFull {
		return err
	}
	return r.enqueueSlow(ctx, &v, nil)
}

// try is the non-blocking enqueue of the shared lane (p == nil) or of p's
// lane. Both load the lane's head from memory before they report ErrFull.
// (A switch, not a func value: v would escape through a func value.)
func (r *Ring[T]) try(p *Producer[T], v *T) error {
	if p == nil {
		return r.tryEnqueue(v)
	}
	return p.tryEnqueue(v)
}

// enqueueSlow is Enqueue on a full lane (the shared one if p is nil, else
// p's): yield a little, then park.
func (r *Ring[T]) enqueueSlow(ctx context.Context, v *T, p *Producer[T]) (err error) {
	r.stats.full.Add(1)
	start := time.Now()
	defer func() { r.stats.waitNanos.Add(uint64(time.Since(start))) }()
	for i := 0; i < producerSpins; i++ {
		runtime.Gosched()
		if err = r.try(p, v); err != ErrFull {
			return err
		}
	}
	done := ctx.Done()
	for {
		// Register, then re-check (try loads head): pairs with the
		// consumer's "store head, then load pwaiting" in DequeueBatch and
		// wakeProducers.
		r.pmu.Lock()
		r.pwaiting.Add(1)
		r.pmu.Unlock()
		if err = r.try(p, v); err != ErrFull {
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
		if err = r.try(p, v); err != ErrFull {
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
// slots are zeroed when T holds pointers. Only the single consumer may call
// it.
func (r *Ring[T]) DequeueBatch(buf []T) int {
	if !r.gatherAt.IsZero() {
		r.gather()
	}
	var n int
	if len(r.lanes) == 0 {
		n = r.drainShared(buf)
	} else {
		// Visit the shared lane (0) and the producer lanes (1..) at most
		// once, round-robin: the next call starts after the last lane that
		// gave items, so a lane that fills every batch cannot starve the
		// others.
		m, c := len(r.lanes)+1, r.cursor
		for k := 0; k < m && n < len(buf); k++ {
			j := c + k
			if j >= m {
				j -= m
			}
			var got int
			if j == 0 {
				got = r.drainShared(buf[n:])
			} else {
				got = r.lanes[j-1].drain(buf[n:], r.clear)
			}
			if got > 0 {
				n += got
				if r.cursor = j + 1; r.cursor == m {
					r.cursor = 0
				}
			}
		}
	}
	if n > 0 {
		r.wakeProducers()
	}
	if n > 0 && n < len(buf)/2 {
		r.gatherAt = time.Now()
	}
	return n
}

// gather waits before the drain that follows a small one: one yield, then
// until gatherWindow has passed since it (see gatherWindow).
func (r *Ring[T]) gather() {
	at := r.gatherAt
	r.gatherAt = time.Time{}
	runtime.Gosched()
	for time.Since(at) < gatherWindow {
		r.spun += spinDelay()
	}
}

// spinDelay burns a few dozen nanoseconds without touching memory.
//
//go:noinline
func spinDelay() uint64 {
	x := uint64(1)
	for i := range uint64(32) {
		x = x*31 + i
	}
	return x
}

// drainShared is DequeueBatch of the shared lane.
func (r *Ring[T]) drainShared(buf []T) int {
	seqs, vals, mask, clear := r.seqs, r.vals, r.mask, r.clear
	h := r.head.Load()
	n := 0
	var zero T
	for n < len(buf) {
		p := h + uint64(n)
		i := p & mask
		if int32(seqs[i].Load()-uint32(p+1)) < 0 {
			break // not yet published
		}
		buf[n] = vals[i] // acquire: ordered after the producer's write
		if clear {
			vals[i] = zero
		}
		n++
	}
	if n > 0 {
		// One release for the whole batch: frees n slots at once.
		r.head.Store(h + uint64(n))
	}
	return n
}

// ready reports whether some lane's next position is published.
func (r *Ring[T]) ready() bool {
	h := r.head.Load()
	if int32(r.seqs[h&r.mask].Load()-uint32(h+1)) >= 0 {
		return true
	}
	for k := range r.lanes {
		if r.lanes[k].ready() {
			return true
		}
	}
	return false
}

// drained reports whether the ring is closed and every accepted position of
// every lane has been dequeued.
func (r *Ring[T]) drained() bool {
	t := r.tail.Load()
	if t&closedBit == 0 || r.head.Load() != t&^closedBit {
		return false
	}
	for k := range r.lanes {
		if !r.lanes[k].drained() {
			return false
		}
	}
	return true
}

// Wait blocks the consumer until an item can be dequeued (nil), ctx is done
// (ctx.Err()), or the ring is closed and drained (ErrClosed). It spins
// briefly, then parks with no CPU use until a producer publishes the next
// position or Close is called. Only the single consumer may call it.
func (r *Ring[T]) Wait(ctx context.Context) error {
	done := ctx.Done()
	if r.drained() {
		return ErrClosed
	}
	// Poll only the head slot while spinning: loading tail (for drained)
	// would pull the producers' hottest line on every iteration.
	for i := 0; i < consumerSpins; i++ {
		if r.ready() {
			return nil
		}
	}
	// Then yield: a producer the last batch woke (it is runnable, most
	// likely on this P's run queue) publishes while we are off the
	// processor, which costs a fraction of a park and its wake-up.
	for i := 0; i < consumerYields; i++ {
		runtime.Gosched()
		if r.ready() {
			return nil
		}
	}
	select {
	case <-done:
		if r.ready() {
			return nil
		}
		return ctx.Err()
	default:
	}
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
	again := r.tail.Or(closedBit)&closedBit != 0
	// Every call closes every lane before it returns (a second Close may
	// overtake the first), but only the first wakes the parked goroutines.
	for k := range r.lanes {
		r.lanes[k].tail.Or(closedBit)
	}
	if again {
		return
	}
	for k := range r.lanes {
		r.lanes[k].wakeOwner() // set closedBit, then load waiting
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

// hasPointers reports whether values of t contain pointers the GC traces.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	default: // pointers, strings, slices, maps, chans, funcs, interfaces
		return true
	}
}

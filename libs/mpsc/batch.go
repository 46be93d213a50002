package mpsc

import "context"

// Producer-side batching (issue 12): a producer that has several items at
// once (a connection reader with the packets of one read) hands them over
// with one claim and one publication instead of one per item. On a lane the
// owner writes the slots and publishes them all with one CAS of tail; on the
// shared lane one CAS claims len positions and each slot is then published
// with its sequence number, as a single enqueue publishes its one slot. The
// protocol is otherwise the single-item one (the same full test, the same
// closedBit, the same wake-up after publishing), so order, exactly-once and
// Close carry over: the batch's items are consecutive positions of one
// claim. (The SPIN models check the single-item protocol; a batch is that
// protocol with k positions per claim, checked here by TestBatchStress and
// FuzzBatchOps.)

// TryEnqueueBatch appends the longest prefix of vs that fits, without
// blocking, and returns its length n. n < len(vs) comes with ErrFull
// (retryable: vs[n:] was not enqueued) or ErrClosed; n == len(vs) with nil.
// The items are dequeued consecutively, in order.
func (r *Ring[T]) TryEnqueueBatch(vs []T) (int, error) {
	n, err := r.tryEnqueueBatch(vs)
	if err == ErrFull {
		r.stats.full.Add(1)
	}
	return n, err
}

func (r *Ring[T]) tryEnqueueBatch(vs []T) (int, error) {
	if len(vs) == 0 {
		return 0, nil
	}
	seqs, vals, mask := r.seqs, r.vals, r.mask
	c := int64(len(seqs))
	t := r.tail.Load()
	for {
		if t&closedBit != 0 {
			return 0, ErrClosed
		}
		// Signed, as in tryEnqueue: a stale t makes the room look larger
		// and the CAS below fail.
		room := c - int64(t-r.head.Load())
		if room <= 0 {
			return 0, ErrFull
		}
		k := min(int64(len(vs)), room)
		if r.tail.CompareAndSwap(t, t+uint64(k)) {
			for j := range uint64(k) {
				p := t + j
				vals[p&mask] = vs[j]
				seqs[p&mask].Store(uint32(p + 1)) // publish in claim order
			}
			if r.sleeping.Load() != 0 {
				r.signalConsumer()
			}
			if int(k) < len(vs) {
				return int(k), ErrFull
			}
			return int(k), nil
		}
		t = r.tail.Load()
	}
}

// EnqueueBatch appends all of vs, blocking while the ring is full as Enqueue
// does. It returns how many were enqueued (a prefix of vs) and nil, ctx.Err()
// or ErrClosed; all of vs was enqueued if and only if the error is nil.
func (r *Ring[T]) EnqueueBatch(ctx context.Context, vs []T) (int, error) {
	return enqueueBatch(ctx, vs, r.tryEnqueueBatch, r.Enqueue)
}

// TryEnqueueBatch appends the longest prefix of vs that fits in the handle's
// lane (or the shared lane), without blocking: as Ring.TryEnqueueBatch, and
// ErrReleased after Release. On a lane the whole prefix is published with
// one atomic.
func (p *Producer[T]) TryEnqueueBatch(vs []T) (int, error) {
	n, err := p.tryEnqueueBatch(vs)
	if err == ErrFull {
		p.r.stats.full.Add(1)
	}
	return n, err
}

func (p *Producer[T]) tryEnqueueBatch(vs []T) (int, error) {
	l := p.l
	if l == nil {
		if p.gone {
			return 0, ErrReleased
		}
		return p.r.tryEnqueueBatch(vs)
	}
	if len(vs) == 0 {
		return 0, nil
	}
	t := l.tail.Load()
	if t&closedBit != 0 {
		return 0, ErrClosed
	}
	// head <= tail and only we move tail, so t - head is in [0, size].
	room := p.size - (t - p.head)
	if room < uint64(len(vs)) {
		p.head = l.head.Load() // acquire: the consumer is done with those slots
		if room = p.size - (t - p.head); room == 0 {
			return 0, ErrFull
		}
	}
	k := min(uint64(len(vs)), room)
	for j := range k {
		p.vals[(t+j)&p.mask] = vs[j]
	}
	if !l.tail.CompareAndSwap(t, t+k) { // publish all k: release of the slots
		// Only Close changes tail under us; the slots are past tail, so
		// the consumer never reads them: clear them for the GC.
		var zero T
		for j := range k {
			p.vals[(t+j)&p.mask] = zero
		}
		return 0, ErrClosed
	}
	if p.r.sleeping.Load() != 0 {
		p.r.signalConsumer()
	}
	if int(k) < len(vs) {
		return int(k), ErrFull
	}
	return int(k), nil
}

// EnqueueBatch appends all of vs to the handle's lane, blocking while it is
// full as Enqueue does: the count enqueued (a prefix of vs) and nil,
// ctx.Err(), ErrClosed or ErrReleased.
func (p *Producer[T]) EnqueueBatch(ctx context.Context, vs []T) (int, error) {
	return enqueueBatch(ctx, vs, p.tryEnqueueBatch, p.Enqueue)
}

// enqueueBatch enqueues what fits, and when the lane is full blocks on the
// next item with the single-item Enqueue (its yield-then-park path), then
// goes on with batches.
func enqueueBatch[T any](ctx context.Context, vs []T, try func([]T) (int, error), one func(context.Context, T) error) (int, error) {
	n := 0
	for n < len(vs) {
		k, err := try(vs[n:])
		n += k
		switch {
		case err == nil:
			return n, nil
		case err != ErrFull:
			return n, err
		}
		if err := one(ctx, vs[n]); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

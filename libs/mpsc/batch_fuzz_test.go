package mpsc

import (
	"context"
	"errors"
	"testing"
)

// FuzzBatchOps is the model-based test of producer batching: on a ring with
// one lane, a handle that owns the lane and the shared lane without a handle
// enqueue batches (TryEnqueueBatch, and EnqueueBatch with a done ctx) and
// single items between dequeues of any size and a Close; a model of the two
// FIFOs and the consumer's round-robin must give the same counts, errors,
// items, Len and Closed. `go test -fuzz=FuzzBatchOps -fuzztime=30s
// ./libs/mpsc/` explores.
//
// ops is read as a byte stream: op = b % 6, then one argument byte.
func FuzzBatchOps(f *testing.F) {
	f.Add(uint8(2), uint8(3), []byte{0, 4, 1, 5, 2, 3, 0, 2, 2, 20, 1, 9, 5, 4, 2, 7, 3, 0, 0, 1, 2, 20})
	f.Add(uint8(0), uint8(0), []byte{1, 3, 0, 3, 5, 5, 4, 0, 2, 1, 2, 1, 3, 0, 1, 1, 0, 2, 2, 9})
	f.Fuzz(func(t *testing.T, sharedCap, laneCap uint8, ops []byte) {
		r := NewLanes[uint64](int(sharedCap%8)+1, 1, int(laneCap%8)+1)
		p := r.Producer()
		if !p.Lane() {
			t.Fatal("the first handle has no lane")
		}
		caps := []int{len(r.seqs), len(r.lanes[0].vals)} // queue 0: shared, 1: the lane
		q := make([][]uint64, 2)
		cursor, closed, next := 0, false, uint64(1)
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		buf := make([]uint64, 20)
		vs := make([]uint64, 8)
		// batch checks one batch call on queue qi of k items that returned
		// n and err; full is the error of a batch cut short by a full lane.
		batch := func(i, qi, k, n int, err, full error) {
			want, wantErr := min(k, caps[qi]-len(q[qi])), error(nil)
			switch {
			case k == 0:
				want = 0
			case closed:
				want, wantErr = 0, ErrClosed
			case want < k:
				wantErr = full
			}
			if n != want || !errors.Is(err, wantErr) {
				t.Fatalf("op %d batch of %d on queue %d (%d of %d queued): got %d, %v; want %d, %v", i, k, qi, len(q[qi]), caps[qi], n, err, want, wantErr)
			}
			q[qi] = append(q[qi], vs[:n]...)
		}
		fill := func(k int) []uint64 {
			for j := range k {
				vs[j] = next
				next++
			}
			return vs[:k]
		}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%6, int(ops[i+1])
			k := arg % (len(vs) + 1)
			switch op {
			case 0: // TryEnqueueBatch on the lane
				n, err := p.TryEnqueueBatch(fill(k))
				batch(i, 1, k, n, err, ErrFull)
			case 1: // TryEnqueueBatch on the shared lane
				n, err := r.TryEnqueueBatch(fill(k))
				batch(i, 0, k, n, err, ErrFull)
			case 2: // DequeueBatch of arg%21 slots
				checkDequeue(t, i, r, buf[:arg%(len(buf)+1)], q, &cursor)
			case 3:
				r.Close()
				closed = true
			case 4: // EnqueueBatch with a done ctx: what fits, then the ctx's error
				if arg%2 == 0 {
					n, err := p.EnqueueBatch(cancelled, fill(k))
					batch(i, 1, k, n, err, context.Canceled)
				} else {
					n, err := r.EnqueueBatch(cancelled, fill(k))
					batch(i, 0, k, n, err, context.Canceled)
				}
			case 5: // a single item on the lane, between batches
				err := p.TryEnqueue(fill(1)[0])
				batch(i, 1, 1, map[bool]int{true: 1, false: 0}[err == nil], err, ErrFull)
			}
			if r.Len() != len(q[0])+len(q[1]) {
				t.Fatalf("op %d Len = %d, want %d", i, r.Len(), len(q[0])+len(q[1]))
			}
			if r.Closed() != closed {
				t.Fatalf("op %d Closed = %v", i, r.Closed())
			}
		}
	})
}

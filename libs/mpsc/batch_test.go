package mpsc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// batcher is what TestEnqueueBatchEdges needs of a ring or a handle.
type batcher interface {
	TryEnqueueBatch([]int) (int, error)
	EnqueueBatch(context.Context, []int) (int, error)
}

// TestEnqueueBatchEdges: a batch is cut at the exact free room (ErrFull with
// the prefix length), dequeued in order after what was there, empty batches
// are no-ops, and after Close a batch gets (0, ErrClosed); for the shared
// lane and for a producer lane.
func TestEnqueueBatchEdges(t *testing.T) {
	shared := New[int](8)
	lanes := NewLanes[int](2, 1, 8)
	h := lanes.Producer()
	defer h.Release()
	for _, tc := range []struct {
		name string
		r    *Ring[int]
		q    batcher
	}{{"shared", shared, shared}, {"lane", lanes, h}} {
		t.Run(tc.name, func(t *testing.T) {
			if n, err := tc.q.TryEnqueueBatch(nil); n != 0 || err != nil {
				t.Fatalf("empty batch: %d, %v", n, err)
			}
			buf := make([]int, 16)
			next := 0
			batch := func(k int) []int {
				vs := make([]int, k)
				for i := range vs {
					vs[i] = next + i
				}
				return vs
			}
			for lap := 0; lap < 20; lap++ {
				if n, err := tc.q.TryEnqueueBatch(batch(5)); n != 5 || err != nil {
					t.Fatalf("lap %d: 5 into an empty ring of 8: %d, %v", lap, n, err)
				}
				next += 5
				if n, err := tc.q.TryEnqueueBatch(batch(5)); n != 3 || !errors.Is(err, ErrFull) {
					t.Fatalf("lap %d: 5 into 3 free slots: %d, %v; want 3, ErrFull", lap, n, err)
				}
				next += 3
				if n, err := tc.q.TryEnqueueBatch(batch(1)); n != 0 || !errors.Is(err, ErrFull) {
					t.Fatalf("lap %d: 1 into a full ring: %d, %v", lap, n, err)
				}
				got := tc.r.DequeueBatch(buf[:3])
				got += tc.r.DequeueBatch(buf[3:])
				if got != 8 {
					t.Fatalf("lap %d: dequeued %d, want 8", lap, got)
				}
				for i := range 8 {
					if want := next - 8 + i; buf[i] != want {
						t.Fatalf("lap %d: item %d = %d, want %d", lap, i, buf[i], want)
					}
				}
			}
			// A blocking batch larger than the ring: the consumer drains
			// while it waits.
			done := make(chan error, 1)
			go func() {
				n, err := tc.q.EnqueueBatch(context.Background(), batch(20))
				if n != 20 && err == nil {
					err = fmt.Errorf("EnqueueBatch enqueued %d of 20", n)
				}
				done <- err
			}()
			ctx := context.Background()
			for got := 0; got < 20; {
				k := tc.r.DequeueBatch(buf)
				for i := range k {
					if want := next + got + i; buf[i] != want {
						t.Fatalf("blocking batch: item %d = %d, want %d", got+i, buf[i], want)
					}
				}
				got += k
				if k == 0 {
					if err := tc.r.Wait(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			tc.r.Close()
			if n, err := tc.q.TryEnqueueBatch(batch(2)); n != 0 || !errors.Is(err, ErrClosed) {
				t.Fatalf("after Close: %d, %v", n, err)
			}
			if n, err := tc.q.EnqueueBatch(ctx, batch(2)); n != 0 || !errors.Is(err, ErrClosed) {
				t.Fatalf("blocking, after Close: %d, %v", n, err)
			}
		})
	}
	h.Release()
	if n, err := h.TryEnqueueBatch([]int{1}); n != 0 || !errors.Is(err, ErrReleased) {
		t.Fatalf("released handle: %d, %v", n, err)
	}
}

// TestBatchStress: producers on lanes and on the shared lane (more
// producers than lanes) enqueue random batches of 1..12 with EnqueueBatch
// and TryEnqueueBatch retry loops through small lanes, while the consumer
// drains in batches and parks, and Close races the end: every item whose
// enqueue was counted is dequeued exactly once and in per-producer order.
// Run under -race it also checks the batch hand-off of the slots.
func TestBatchStress(t *testing.T) {
	const producers, lanes = 6, 3
	for _, capacity := range []int{2, 8, 64} {
		t.Run(fmt.Sprint("cap=", capacity), func(t *testing.T) {
			r := NewLanes[item](capacity, lanes, capacity)
			ctx := context.Background()
			var wg sync.WaitGroup
			var accepted atomic.Int64
			per := map[int]int{2: 20000, 8: 40000, 64: 80000}[capacity]
			for p := range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					h := r.Producer()
					defer h.Release()
					rng := rand.New(rand.NewPCG(uint64(p), 1))
					vs := make([]item, 12)
					seq := int32(0)
					for int(seq) < per {
						k := 1 + rng.IntN(len(vs))
						for i := range k {
							vs[i] = item{int32(p), seq + int32(i)}
						}
						var n int
						var err error
						if p%2 == 0 {
							n, err = h.EnqueueBatch(ctx, vs[:k])
						} else {
							for {
								var m int
								m, err = h.TryEnqueueBatch(vs[n:k])
								n += m
								if !errors.Is(err, ErrFull) {
									break
								}
								runtime.Gosched() // let the consumer run
							}
						}
						seq += int32(n)
						accepted.Add(int64(n))
						if err != nil {
							if !errors.Is(err, ErrClosed) {
								t.Errorf("producer %d: %v", p, err)
							}
							return
						}
					}
				}()
			}
			c := newChecker(t, producers)
			buf := make([]item, 7)
			closeAt := producers * per * 9 / 10
			closed := false
			for {
				n := r.DequeueBatch(buf)
				c.add(buf[:n])
				if !closed && c.n >= closeAt {
					r.Close()
					closed = true
				}
				if n == 0 {
					if err := r.Wait(ctx); errors.Is(err, ErrClosed) {
						break
					} else if err != nil {
						t.Fatal(err)
					}
				}
			}
			wg.Wait()
			if got, want := int64(c.n), accepted.Load(); got != want {
				t.Fatalf("dequeued %d items, producers had %d accepted", got, want)
			}
		})
	}
}

// TestBatchZeroAllocs: batch enqueues allocate nothing, on the shared lane
// and on a lane, pointer and 64-byte items.
func TestBatchZeroAllocs(t *testing.T) {
	ctx := context.Background()
	r := NewLanes[*int](64, 1, 64)
	h := r.Producer()
	defer h.Release()
	v := new(int)
	vs := []*int{v, v, v, v}
	buf := make([]*int, 64)
	if a := testing.AllocsPerRun(1000, func() {
		_, _ = r.TryEnqueueBatch(vs)
		_, _ = r.EnqueueBatch(ctx, vs)
		_, _ = h.TryEnqueueBatch(vs)
		_, _ = h.EnqueueBatch(ctx, vs)
		r.DequeueBatch(buf)
	}); a != 0 {
		t.Errorf("pointer items: %v allocs per op", a)
	}
	b := NewLanes[[8]uint64](64, 1, 64)
	hb := b.Producer()
	defer hb.Release()
	bs := make([][8]uint64, 4)
	bbuf := make([][8]uint64, 64)
	if a := testing.AllocsPerRun(1000, func() {
		_, _ = b.TryEnqueueBatch(bs)
		_, _ = hb.EnqueueBatch(ctx, bs)
		b.DequeueBatch(bbuf)
	}); a != 0 {
		t.Errorf("64-byte items: %v allocs per op", a)
	}
}

package mpsc

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/realmstream/realmstream/libs/waitfor"
)

// TestMain fails the package if any test leaves a goroutine behind
// (QUEUE-T5): parked producers and consumers must all be released by Close
// or their context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNewRoundsCapacity(t *testing.T) {
	for _, tc := range []struct{ in, want int }{
		{1, 2}, {2, 2}, {3, 4}, {4, 4}, {5, 8}, {1000, 1024}, {1024, 1024}, {1 << 20, 1 << 20},
	} {
		if got := New[int](tc.in).Cap(); got != tc.want {
			t.Errorf("New(%d).Cap() = %d, want %d", tc.in, got, tc.want)
		}
	}
	for _, bad := range []int{0, -1, maxCapacity + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%d) did not panic", bad)
				}
			}()
			New[int](bad)
		}()
	}
}

// TestFullEmptyEdges walks a small ring through many laps, filling it to
// exactly Cap (then ErrFull) and draining it to exactly empty (then 0), and
// checks FIFO order, Len and that dequeued slots are zeroed.
func TestFullEmptyEdges(t *testing.T) {
	for _, capacity := range []int{1, 2, 4, 8} {
		t.Run(fmt.Sprint("cap=", capacity), func(t *testing.T) {
			r := New[*int](capacity)
			c := r.Cap()
			buf := make([]*int, c+3)
			next, want := 0, 0
			for lap := 0; lap < 50; lap++ {
				if n := r.DequeueBatch(buf); n != 0 {
					t.Fatalf("lap %d: empty ring dequeued %d", lap, n)
				}
				for i := 0; i < c; i++ {
					v := next
					if err := r.TryEnqueue(&v); err != nil {
						t.Fatalf("lap %d: enqueue %d of %d: %v", lap, i, c, err)
					}
					next++
					if r.Len() != i+1 {
						t.Fatalf("Len = %d, want %d", r.Len(), i+1)
					}
				}
				if err := r.TryEnqueue(nil); !errors.Is(err, ErrFull) {
					t.Fatalf("lap %d: enqueue into full ring: %v, want ErrFull", lap, err)
				}
				// Drain in uneven batches (1, then the rest).
				got := r.DequeueBatch(buf[:1])
				got += r.DequeueBatch(buf[1:])
				if got != c {
					t.Fatalf("lap %d: dequeued %d, want %d", lap, got, c)
				}
				for i := 0; i < c; i++ {
					if *buf[i] != want {
						t.Fatalf("lap %d: item %d = %d, want %d", lap, i, *buf[i], want)
					}
					want++
				}
				if r.Len() != 0 {
					t.Fatalf("Len = %d after drain", r.Len())
				}
				for i := range r.vals {
					if r.vals[i] != nil {
						t.Fatalf("slot %d still holds a pointer after dequeue", i)
					}
				}
			}
			if s := r.Stats(); s.Full != 50 {
				t.Errorf("Stats.Full = %d, want 50", s.Full)
			}
		})
	}
}

func TestDequeueBatchEmptyBuffer(t *testing.T) {
	r := New[int](4)
	if err := r.TryEnqueue(1); err != nil {
		t.Fatal(err)
	}
	if n := r.DequeueBatch(nil); n != 0 {
		t.Fatalf("DequeueBatch(nil) = %d", n)
	}
	if r.Len() != 1 {
		t.Fatalf("Len = %d, want 1", r.Len())
	}
}

// TestUnpublishedClaimHidesLaterItems checks the documented relaxation: a
// claimed but unpublished position makes the ring look empty even though a
// later enqueue has completed, and nothing is lost once it is published.
func TestUnpublishedClaimHidesLaterItems(t *testing.T) {
	r := New[int](4)
	// Simulate a producer preempted between its CAS and its publish.
	r.tail.Store(1)
	if err := r.TryEnqueue(2); err != nil {
		t.Fatal(err)
	}
	buf := make([]int, 4)
	if n := r.DequeueBatch(buf); n != 0 {
		t.Fatalf("dequeued %d past an unpublished claim", n)
	}
	if r.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (claimed positions)", r.Len())
	}
	r.vals[0] = 1
	r.seqs[0].Store(1)
	if n := r.DequeueBatch(buf); n != 2 || buf[0] != 1 || buf[1] != 2 {
		t.Fatalf("after publish: n=%d buf=%v", n, buf[:n])
	}
}

func TestCloseDrainsThenErrClosed(t *testing.T) {
	r := New[int](8)
	for i := 0; i < 5; i++ {
		if err := r.TryEnqueue(i); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	r.Close() // idempotent
	if !r.Closed() {
		t.Fatal("Closed() = false after Close")
	}
	if err := r.TryEnqueue(9); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryEnqueue after Close: %v", err)
	}
	if err := r.Enqueue(context.Background(), 9); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue after Close: %v", err)
	}
	ctx := context.Background()
	if err := r.Wait(ctx); err != nil {
		t.Fatalf("Wait with items left: %v", err)
	}
	buf := make([]int, 8)
	if n := r.DequeueBatch(buf); n != 5 {
		t.Fatalf("drained %d, want 5", n)
	}
	for i := 0; i < 3; i++ { // stays ended
		if err := r.Wait(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Wait after drain: %v, want ErrClosed", err)
		}
	}
}

// TestCloseWaitsForUnpublishedClaim: a position claimed before Close but
// published after it must still be delivered before Wait reports ErrClosed.
func TestCloseWaitsForUnpublishedClaim(t *testing.T) {
	r := New[int](4)
	r.tail.Store(1) // claimed, not published
	r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with an unpublished accepted item: %v, want DeadlineExceeded", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- r.Wait(context.Background()) }()
	waitfor.True(t, 5*time.Second, func() error {
		if r.sleeping.Load() == 0 {
			return errors.New("consumer not parked yet")
		}
		return nil
	})
	r.vals[0] = 7
	r.seqs[0].Store(1)
	r.signalConsumer()
	if err := <-errc; err != nil {
		t.Fatalf("Wait after late publish: %v", err)
	}
	buf := make([]int, 4)
	if n := r.DequeueBatch(buf); n != 1 || buf[0] != 7 {
		t.Fatalf("got %v", buf[:n])
	}
	if err := r.Wait(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after drain: %v", err)
	}
}

// TestConsumerWokenAfterParking parks the consumer, then enqueues: Wait
// must return nil and the item must be there.
func TestConsumerWokenAfterParking(t *testing.T) {
	r := New[int](16)
	for round := 1; round <= 20; round++ {
		errc := make(chan error, 1)
		go func() { errc <- r.Wait(context.Background()) }()
		waitfor.True(t, 5*time.Second, func() error {
			if got := r.Stats().ConsumerParks; got < uint64(round) {
				return fmt.Errorf("consumer parks = %d, want %d", got, round)
			}
			return nil
		})
		if err := r.TryEnqueue(round); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("parked consumer was not woken by an enqueue (lost wake-up)")
		}
		buf := make([]int, 4)
		if n := r.DequeueBatch(buf); n != 1 || buf[0] != round {
			t.Fatalf("got %v", buf[:n])
		}
	}
}

// TestIdleConsumerDoesNotSpin: a consumer waiting on an idle ring parks
// once and then stays parked; it does not loop (zero CPU when idle). The
// observation window is a bound on a negative property, not a timing
// assertion: a spinning consumer would re-arm thousands of times in it.
func TestIdleConsumerDoesNotSpin(t *testing.T) {
	r := New[int](16)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Wait(ctx) }()
	waitfor.True(t, 5*time.Second, func() error {
		if r.Stats().ConsumerParks == 0 {
			return errors.New("consumer not parked yet")
		}
		return nil
	})
	start := cpuTime(t)
	time.Sleep(200 * time.Millisecond)
	used := cpuTime(t) - start
	if parks := r.Stats().ConsumerParks; parks != 1 {
		t.Fatalf("idle consumer looped: %d parks in 200ms, want 1", parks)
	}
	// Process CPU over the idle window: the test binary is otherwise idle,
	// so a spinning consumer would show ~200ms here.
	if used > 50*time.Millisecond {
		t.Errorf("process used %v CPU in a 200ms idle window", used)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel: %v", err)
	}
}

func TestWaitContext(t *testing.T) {
	r := New[int](4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait(cancelled) = %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := r.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait(timeout) = %v", err)
	}
	// A wait cancelled while parked leaves the ring usable.
	if err := r.TryEnqueue(1); err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCloseWakesParkedConsumer(t *testing.T) {
	r := New[int](4)
	errc := make(chan error, 1)
	go func() { errc <- r.Wait(context.Background()) }()
	waitfor.True(t, 5*time.Second, func() error {
		if r.Stats().ConsumerParks == 0 {
			return errors.New("consumer not parked yet")
		}
		return nil
	})
	r.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Close of empty ring: %v", err)
	}
}

// fillRing fills r to capacity with -1s.
func fillRing(t *testing.T, r *Ring[int]) {
	t.Helper()
	for i := 0; i < r.Cap(); i++ {
		if err := r.TryEnqueue(-1); err != nil {
			t.Fatal(err)
		}
	}
}

func waitProducerParks(t *testing.T, r *Ring[int], n uint64) {
	t.Helper()
	waitfor.True(t, 5*time.Second, func() error {
		if got := r.Stats().ProducerParks; got < n {
			return fmt.Errorf("producer parks = %d, want %d", got, n)
		}
		return nil
	})
}

func TestEnqueueContextCancel(t *testing.T) {
	r := New[int](2)
	fillRing(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := r.Enqueue(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enqueue into full ring: %v, want DeadlineExceeded", err)
	}
	// The cancelled enqueue did not enqueue.
	buf := make([]int, 4)
	if n := r.DequeueBatch(buf); n != 2 || buf[0] != -1 || buf[1] != -1 {
		t.Fatalf("got %v", buf[:n])
	}
	if r.Stats().EnqueueWait <= 0 {
		t.Error("EnqueueWait not recorded")
	}
	// Cancelled while parked, with many parked producers: no leaked
	// registration (a later wake-all must not block or miscount).
	fillRing(t, r)
	ctx2, cancel2 := context.WithCancel(context.Background())
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() { errs <- r.Enqueue(ctx2, 5) }()
	}
	waitProducerParks(t, r, 8)
	cancel2()
	for i := 0; i < 8; i++ {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("parked Enqueue after cancel: %v", err)
		}
	}
	if n := r.DequeueBatch(buf); n != 2 {
		t.Fatalf("dequeued %d", n)
	}
	if err := r.Enqueue(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
}

// TestParkedProducerWokenBySpace: a producer blocked on a full ring parks,
// and the consumer freeing a slot wakes it.
func TestParkedProducerWokenBySpace(t *testing.T) {
	r := New[int](2)
	fillRing(t, r)
	errc := make(chan error, 1)
	go func() { errc <- r.Enqueue(context.Background(), 42) }()
	waitProducerParks(t, r, 1)
	buf := make([]int, 1)
	if n := r.DequeueBatch(buf); n != 1 {
		t.Fatal("no item")
	}
	if err := <-errc; err != nil {
		t.Fatalf("parked Enqueue: %v", err)
	}
	buf = make([]int, 4)
	if n := r.DequeueBatch(buf); n != 2 || buf[0] != -1 || buf[1] != 42 {
		t.Fatalf("got %v", buf[:n])
	}
}

func TestCloseWakesParkedProducers(t *testing.T) {
	r := New[int](2)
	fillRing(t, r)
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() { errs <- r.Enqueue(context.Background(), 1) }()
	}
	waitProducerParks(t, r, 4)
	r.Close()
	for i := 0; i < 4; i++ {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Fatalf("parked Enqueue after Close: %v", err)
		}
	}
	buf := make([]int, 4)
	if n := r.DequeueBatch(buf); n != 2 {
		t.Fatalf("drained %d, want the 2 accepted", n)
	}
	if err := r.Wait(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// TestZeroAllocs: the steady-state operations allocate nothing (QUEUE-1),
// for a pointer type and a 64-byte value type.
func TestZeroAllocs(t *testing.T) {
	ctx := context.Background()
	p := New[*int](64)
	v := new(int)
	pbuf := make([]*int, 8)
	if a := testing.AllocsPerRun(1000, func() {
		_ = p.TryEnqueue(v)
		_ = p.Enqueue(ctx, v)
		_ = p.Wait(ctx)
		p.DequeueBatch(pbuf)
		_ = p.Len()
	}); a != 0 {
		t.Errorf("pointer ring: %v allocs per op", a)
	}
	b := New[[8]uint64](64)
	var big [8]uint64
	bbuf := make([][8]uint64, 8)
	if a := testing.AllocsPerRun(1000, func() {
		_ = b.TryEnqueue(big)
		_ = b.Enqueue(ctx, big)
		_ = b.Wait(ctx)
		b.DequeueBatch(bbuf)
	}); a != 0 {
		t.Errorf("64-byte ring: %v allocs per op", a)
	}
}

// TestSequenceWrap32 runs FIFO laps across the point where the 32-bit slot
// sequence numbers wrap (positions 2^32-C .. 2^32+C and beyond): a ring whose
// positions start just below 2^32, with every slot holding the sequence its
// previous lap left there, must behave exactly like a fresh ring.
func TestSequenceWrap32(t *testing.T) {
	for _, capacity := range []int{2, 8, 64} {
		t.Run(fmt.Sprint("cap=", capacity), func(t *testing.T) {
			r := New[int](capacity)
			c := uint64(r.Cap())
			start := uint64(1)<<32 - 3*c/2
			for q := start - c; q < start; q++ {
				r.seqs[q&r.mask].Store(uint32(q + 1))
			}
			r.head.Store(start)
			r.tail.Store(start)
			buf := make([]int, c)
			next, want := 0, 0
			for lap := 0; lap < 6; lap++ {
				if n := r.DequeueBatch(buf); n != 0 {
					t.Fatalf("lap %d: empty ring dequeued %d", lap, n)
				}
				for i := uint64(0); i < c; i++ {
					if err := r.TryEnqueue(next); err != nil {
						t.Fatalf("lap %d: enqueue %d: %v", lap, i, err)
					}
					next++
				}
				if err := r.TryEnqueue(-1); !errors.Is(err, ErrFull) {
					t.Fatalf("lap %d: enqueue into full ring: %v", lap, err)
				}
				if n := r.DequeueBatch(buf); n != int(c) {
					t.Fatalf("lap %d: dequeued %d, want %d", lap, n, c)
				}
				for _, v := range buf {
					if v != want {
						t.Fatalf("lap %d: got %d, want %d", lap, v, want)
					}
					want++
				}
			}
			if h := r.head.Load(); h <= 1<<32 {
				t.Fatalf("head %d did not cross 2^32", h)
			}
		})
	}
}

// TestHasPointers: slots are zeroed after dequeue exactly for the types the
// GC traces.
func TestHasPointers(t *testing.T) {
	type flat struct {
		a int64
		b [4]uint32
		c float64
	}
	type withPtr struct {
		a int
		p *int
	}
	for _, tc := range []struct {
		name string
		r    interface{ clears() bool }
		want bool
	}{
		{"int", New[int](2), false},
		{"[8]uint64", New[[8]uint64](2), false},
		{"flat struct", New[flat](2), false},
		{"*int", New[*int](2), true},
		{"string", New[string](2), true},
		{"[]byte", New[[]byte](2), true},
		{"struct with pointer", New[withPtr](2), true},
		{"[2]any", New[[2]any](2), true},
		{"map", New[map[int]int](2), true},
	} {
		if got := tc.r.clears(); got != tc.want {
			t.Errorf("%s: clear = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func (r *Ring[T]) clears() bool { return r.clear }

// TestGatherAfterSmallDrain: the drain after a small one waits (yield, then
// until gatherWindow has passed since the small drain) but is bounded and
// still returns what was published; a full drain arms no wait, and the
// caller's time between the two calls counts towards the window.
func TestGatherAfterSmallDrain(t *testing.T) {
	r := New[int](64)
	buf := make([]int, 8)
	if err := r.TryEnqueue(1); err != nil {
		t.Fatal(err)
	}
	if n := r.DequeueBatch(buf); n != 1 || r.gatherAt.IsZero() {
		t.Fatalf("small drain: n=%d gatherAt=%v, want 1 and armed", n, r.gatherAt)
	}
	if err := r.TryEnqueue(2); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n := r.DequeueBatch(buf)
	if d := time.Since(start); n != 1 || buf[0] != 2 || d > 100*time.Millisecond {
		t.Fatalf("drain after a small one: n=%d item=%d in %v, want 1 item 2, promptly", n, buf[0], d)
	}
	for i := range 8 {
		if err := r.TryEnqueue(i); err != nil {
			t.Fatal(err)
		}
	}
	r.gatherAt = time.Time{}
	if n := r.DequeueBatch(buf); n != 8 || !r.gatherAt.IsZero() {
		t.Fatalf("full drain: n=%d gatherAt=%v, want 8 and not armed", n, r.gatherAt)
	}
	if n := r.DequeueBatch(buf); n != 0 || !r.gatherAt.IsZero() {
		t.Fatalf("empty drain: n=%d gatherAt=%v, want 0 and not armed", n, r.gatherAt)
	}
}

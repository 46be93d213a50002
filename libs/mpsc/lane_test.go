package mpsc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/waitfor"
)

// consume drains r until Wait returns ErrClosed, feeding c.
func consume(t *testing.T, r *Ring[item], c *checker, batch int) {
	t.Helper()
	buf := make([]item, batch)
	for {
		if n := r.DequeueBatch(buf); n > 0 {
			c.add(buf[:n])
			continue
		}
		if err := r.Wait(context.Background()); err != nil {
			if !errors.Is(err, ErrClosed) {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestLaneStressExactlyOnceFIFO: producers with handles, more of them than
// lanes (the rest use the shared lane), each taking a new handle several
// times (a released lane with items still in it goes to another handle),
// mixing blocking Enqueue and TryEnqueue retries, through small lanes with
// many laps. Per handle: every item exactly once, in order.
func TestLaneStressExactlyOnceFIFO(t *testing.T) {
	total := 96000
	if testing.Short() {
		total = 16000
	}
	const sessions = 4 // handles per producer goroutine, one after the other
	for _, tc := range []struct{ lanes, laneCap, producers int }{
		{1, 1, 1}, {2, 2, 4}, {4, 8, 4}, {4, 64, 16}, {16, 2, 16},
	} {
		t.Run(fmt.Sprintf("lanes=%d/cap=%d/producers=%d", tc.lanes, tc.laneCap, tc.producers), func(t *testing.T) {
			r := NewLanes[item](4, tc.lanes, tc.laneCap)
			per := total / tc.producers / sessions
			var wg sync.WaitGroup
			for p := 0; p < tc.producers; p++ {
				wg.Add(1)
				go func(p int) {
					defer wg.Done()
					ctx := context.Background()
					for s := 0; s < sessions; s++ {
						h := r.Producer()
						id := int32(p*sessions + s) // FIFO is per handle
						for k := 0; k < per; k++ {
							it := item{p: id, seq: int32(k)}
							if (p+s)%2 == 0 {
								if err := h.Enqueue(ctx, it); err != nil {
									t.Errorf("Enqueue: %v", err)
									return
								}
								continue
							}
							for {
								err := h.TryEnqueue(it)
								if err == nil {
									break
								}
								if !errors.Is(err, ErrFull) {
									t.Errorf("TryEnqueue: %v", err)
									return
								}
								yield()
							}
						}
						h.Release()
						if err := h.TryEnqueue(item{}); !errors.Is(err, ErrReleased) {
							t.Errorf("enqueue after Release: %v", err)
						}
					}
				}(p)
			}
			go func() { wg.Wait(); r.Close() }()
			c := newChecker(t, tc.producers*sessions)
			consume(t, r, c, 7)
			if want := tc.producers * sessions * per; c.n != want {
				t.Fatalf("dequeued %d items, want %d", c.n, want)
			}
			for id, n := range c.next {
				if int(n) != per {
					t.Fatalf("handle %d: %d items, want %d", id, n, per)
				}
			}
		})
	}
}

// TestLaneCloseRacingProducers: handle producers (on lanes and on the shared
// lane) enqueue flat out while Close lands; every nil enqueue is dequeued
// exactly once, in order, and every enqueue after ErrClosed gets ErrClosed.
func TestLaneCloseRacingProducers(t *testing.T) {
	rounds := 30
	if testing.Short() {
		rounds = 5
	}
	for round := 0; round < rounds; round++ {
		const producers = 8
		r := NewLanes[item](8, 5, 4) // 5 lanes: 3 producers share the shared lane
		accepted := make([]int32, producers)
		var started, wg sync.WaitGroup
		var afterClose atomic.Int32
		for p := 0; p < producers; p++ {
			started.Add(1)
			wg.Add(1)
			go func(p int) {
				defer wg.Done()
				h := r.Producer()
				defer h.Release()
				started.Done()
				ctx := context.Background()
				for s := int32(0); ; s++ {
					var err error
					if p%2 == 0 {
						err = h.Enqueue(ctx, item{int32(p), s})
					} else {
						for err = h.TryEnqueue(item{int32(p), s}); errors.Is(err, ErrFull); err = h.TryEnqueue(item{int32(p), s}) {
							yield()
						}
					}
					if err == nil {
						accepted[p]++
						continue
					}
					if !errors.Is(err, ErrClosed) {
						t.Errorf("producer %d: %v", p, err)
						return
					}
					for i := 0; i < 3; i++ {
						if err := h.TryEnqueue(item{int32(p), -1}); !errors.Is(err, ErrClosed) {
							t.Errorf("enqueue after ErrClosed: %v", err)
						}
					}
					afterClose.Add(1)
					return
				}
			}(p)
		}
		done := make(chan *checker)
		go func() {
			c := newChecker(t, producers)
			buf := make([]item, 5)
			for {
				if n := r.DequeueBatch(buf); n > 0 {
					c.add(buf[:n])
					if c.n > 200*(round+1) && !r.Closed() {
						r.Close()
					}
					continue
				}
				if err := r.Wait(context.Background()); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					done <- c
					return
				}
			}
		}()
		started.Wait()
		if round%2 == 0 {
			r.Close()
		}
		c := <-done
		wg.Wait()
		if afterClose.Load() != producers {
			t.Fatalf("%d producers saw ErrClosed, want %d", afterClose.Load(), producers)
		}
		for p := range accepted {
			if c.next[p] != accepted[p] {
				t.Fatalf("round %d producer %d: %d accepted, %d dequeued", round, p, accepted[p], c.next[p])
			}
		}
	}
}

// TestLaneHandles: handles take lanes while there are free ones, then use
// the shared lane; a released lane goes to the next handle, whose items come
// after the ones still in it; a released handle refuses enqueues.
func TestLaneHandles(t *testing.T) {
	r := NewLanes[int](4, 2, 3) // lanes of 4
	if r.Cap() != 4+2*4 {
		t.Fatalf("Cap = %d, want 12", r.Cap())
	}
	a, b, c := r.Producer(), r.Producer(), r.Producer()
	if !a.Lane() || !b.Lane() || c.Lane() {
		t.Fatalf("lanes: a %v b %v c %v, want true true false", a.Lane(), b.Lane(), c.Lane())
	}
	for i := 1; i <= 3; i++ {
		if err := a.TryEnqueue(i); err != nil {
			t.Fatal(err)
		}
	}
	a.Release()
	a.Release() // idempotent
	if err := a.TryEnqueue(9); !errors.Is(err, ErrReleased) {
		t.Fatalf("TryEnqueue after Release: %v", err)
	}
	if err := a.Enqueue(context.Background(), 9); !errors.Is(err, ErrReleased) {
		t.Fatalf("Enqueue after Release: %v", err)
	}
	d := r.Producer() // takes a's lane, with 1, 2, 3 still in it
	if !d.Lane() {
		t.Fatal("released lane not handed out again")
	}
	if err := d.TryEnqueue(4); err != nil {
		t.Fatal(err)
	}
	if err := d.TryEnqueue(5); !errors.Is(err, ErrFull) {
		t.Fatalf("5th item into a lane of 4: %v, want ErrFull", err)
	}
	if err := c.TryEnqueue(100); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 5 {
		t.Fatalf("Len = %d, want 5", r.Len())
	}
	buf := make([]int, 16)
	n := r.DequeueBatch(buf)
	var lane []int
	for _, v := range buf[:n] {
		if v < 100 {
			lane = append(lane, v)
		}
	}
	if n != 5 || fmt.Sprint(lane) != "[1 2 3 4]" {
		t.Fatalf("dequeued %v, want the lane's 1 2 3 4 in order and 100", buf[:n])
	}
	if r.Stats().Full == 0 {
		t.Error("a full lane was not counted")
	}
}

// TestLaneBatchesRotate: a consumer batch smaller than the backlog visits
// the lanes in turn, so one busy lane cannot starve the others.
func TestLaneBatchesRotate(t *testing.T) {
	r := NewLanes[int](8, 3, 8)
	hs := []*Producer[int]{r.Producer(), r.Producer(), r.Producer()}
	for k, h := range hs {
		for i := 0; i < 8; i++ {
			if err := h.TryEnqueue(k*100 + i); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := map[int]bool{}
	buf := make([]int, 4)
	for call := 0; call < 3; call++ {
		n := r.DequeueBatch(buf)
		if n != 4 {
			t.Fatalf("call %d: %d items", call, n)
		}
		seen[buf[0]/100] = true
	}
	if len(seen) != 3 {
		t.Fatalf("3 batches started at lanes %v, want all 3", seen)
	}
}

// TestLaneParkAndWake: a handle blocked on its full lane parks (yielding
// first), is woken by the consumer draining that lane, cancels cleanly, and
// is woken by Close with ErrClosed.
func TestLaneParkAndWake(t *testing.T) {
	r := NewLanes[int](2, 2, 2)
	h := r.Producer()
	other := r.Producer()
	for i := 0; i < 2; i++ {
		if err := h.TryEnqueue(-1); err != nil {
			t.Fatal(err)
		}
	}
	parks := func(n uint64) {
		t.Helper()
		waitfor.True(t, 5*time.Second, func() error {
			if got := r.Stats().ProducerParks; got < n {
				return fmt.Errorf("producer parks = %d, want %d", got, n)
			}
			return nil
		})
	}
	// Woken by space.
	errc := make(chan error, 1)
	go func() { errc <- h.Enqueue(context.Background(), 42) }()
	parks(1)
	if err := other.TryEnqueue(7); err != nil { // another lane's item wakes nobody
		t.Fatal(err)
	}
	buf := make([]int, 8)
	if n := r.DequeueBatch(buf); n != 3 {
		t.Fatalf("dequeued %v", buf[:n])
	}
	if err := <-errc; err != nil {
		t.Fatalf("parked Enqueue: %v", err)
	}
	if n := r.DequeueBatch(buf); n != 1 || buf[0] != 42 {
		t.Fatalf("got %v, want [42]", buf[:n])
	}
	// Cancelled while parked: the item is not enqueued, and a later park
	// still works (a stale token only causes one re-check).
	for i := 0; i < 2; i++ {
		if err := h.TryEnqueue(-1); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { errc <- h.Enqueue(ctx, 5) }()
	parks(2)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("parked Enqueue after cancel: %v", err)
	}
	if r.Len() != 2 {
		t.Fatalf("Len = %d after a cancelled Enqueue, want 2", r.Len())
	}
	// Woken by Close.
	go func() { errc <- h.Enqueue(context.Background(), 6) }()
	parks(3)
	r.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("parked Enqueue after Close: %v", err)
	}
	if n := r.DequeueBatch(buf); n != 2 {
		t.Fatalf("drained %d, want the 2 accepted", n)
	}
	if err := r.Wait(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// TestLaneConsumerWokenAndIdle: a parked consumer is woken by a lane's
// enqueue, and an idle consumer of a ring with lanes parks (no CPU).
func TestLaneConsumerWokenAndIdle(t *testing.T) {
	r := NewLanes[int](2, 4, 4)
	h := r.Producer()
	errc := make(chan error, 1)
	go func() { errc <- r.Wait(context.Background()) }()
	waitfor.True(t, 5*time.Second, func() error {
		if r.Stats().ConsumerParks == 0 {
			return errors.New("consumer not parked")
		}
		return nil
	})
	c0 := cpuTime(t)
	time.Sleep(200 * time.Millisecond)
	if d := cpuTime(t) - c0; d > 50*time.Millisecond {
		t.Errorf("idle consumer used %v of CPU in 200 ms", d)
	}
	if parks := r.Stats().ConsumerParks; parks != 1 {
		t.Errorf("consumer parked %d times while idle, want 1", parks)
	}
	if err := h.TryEnqueue(1); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	r.Close()
	buf := make([]int, 2)
	if n := r.DequeueBatch(buf); n != 1 {
		t.Fatalf("dequeued %d", n)
	}
	if err := r.Wait(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// TestLaneZeroAllocs: a handle's operations allocate nothing (QUEUE-1).
func TestLaneZeroAllocs(t *testing.T) {
	ctx := context.Background()
	r := NewLanes[*int](2, 1, 64)
	h := r.Producer()
	v := new(int)
	buf := make([]*int, 8)
	if a := testing.AllocsPerRun(1000, func() {
		_ = h.TryEnqueue(v)
		_ = h.Enqueue(ctx, v)
		_ = r.Wait(ctx)
		r.DequeueBatch(buf)
	}); a != 0 {
		t.Errorf("pointer lane: %v allocs per op", a)
	}
	b := NewLanes[[8]uint64](2, 1, 64)
	hb := b.Producer()
	var big [8]uint64
	bbuf := make([][8]uint64, 8)
	if a := testing.AllocsPerRun(1000, func() {
		_ = hb.TryEnqueue(big)
		_ = hb.Enqueue(ctx, big)
		_ = b.Wait(ctx)
		b.DequeueBatch(bbuf)
	}); a != 0 {
		t.Errorf("64-byte lane: %v allocs per op", a)
	}
}

// TestLaneClearsPointers: dequeued lane slots of a pointer type are zeroed.
func TestLaneClearsPointers(t *testing.T) {
	r := NewLanes[*int](2, 1, 4)
	h := r.Producer()
	for i := 0; i < 3; i++ {
		if err := h.TryEnqueue(new(int)); err != nil {
			t.Fatal(err)
		}
	}
	r.DequeueBatch(make([]*int, 8))
	for i, v := range r.lanes[0].vals {
		if v != nil {
			t.Fatalf("slot %d still holds a pointer after dequeue", i)
		}
	}
}

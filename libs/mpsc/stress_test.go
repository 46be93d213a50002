package mpsc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// item identifies one enqueue: producer p's seq-th item.
type item struct {
	p   int32
	seq int32
}

// checker is the consumer side of a stress test: per producer, each item
// must carry exactly the next sequence number (no loss, no duplication, no
// reordering within a producer) — the Jepsen "total queue" check done
// online.
type checker struct {
	t    *testing.T
	next []int32
	n    int
}

func newChecker(t *testing.T, producers int) *checker {
	return &checker{t: t, next: make([]int32, producers)}
}

func (c *checker) add(items []item) {
	for _, it := range items {
		if want := c.next[it.p]; it.seq != want {
			c.t.Fatalf("producer %d: got seq %d, want %d (lost, duplicated or reordered)", it.p, it.seq, want)
		}
		c.next[it.p]++
		c.n++
	}
}

// TestStressExactlyOnceFIFO: P producers x M items through small rings with
// many wrap-arounds (M*P/Cap laps), mixing TryEnqueue retry loops and
// blocking Enqueue, against a consumer that drains in batches and parks.
// Run under -race (and -cpu=1,2,4) it also checks the payload hand-off.
func TestStressExactlyOnceFIFO(t *testing.T) {
	total := 96000 // items per case, split across producers
	if testing.Short() {
		total = 16000
	}
	for _, capacity := range []int{1, 2, 8, 64} {
		for _, producers := range []int{1, 4, 16} {
			t.Run(fmt.Sprintf("cap=%d/producers=%d", capacity, producers), func(t *testing.T) {
				perProducer := total / producers
				r := New[item](capacity)
				var wg sync.WaitGroup
				for p := 0; p < producers; p++ {
					wg.Add(1)
					go func(p int) {
						defer wg.Done()
						ctx := context.Background()
						for s := 0; s < perProducer; s++ {
							it := item{p: int32(p), seq: int32(s)}
							if p%2 == 0 {
								if err := r.Enqueue(ctx, it); err != nil {
									t.Errorf("Enqueue: %v", err)
									return
								}
								continue
							}
							for {
								err := r.TryEnqueue(it)
								if err == nil {
									break
								}
								if !errors.Is(err, ErrFull) {
									t.Errorf("TryEnqueue: %v", err)
									return
								}
								// Let the consumer run (GOMAXPROCS may be 1).
								yield()
							}
						}
					}(p)
				}
				go func() { wg.Wait(); r.Close() }()
				c := newChecker(t, producers)
				buf := make([]item, 7) // odd batch size: batches straddle laps
				for {
					n := r.DequeueBatch(buf)
					if n > 0 {
						c.add(buf[:n])
						continue
					}
					if err := r.Wait(context.Background()); err != nil {
						if !errors.Is(err, ErrClosed) {
							t.Fatal(err)
						}
						break
					}
				}
				if want := producers * perProducer; c.n != want {
					t.Fatalf("dequeued %d items, want %d", c.n, want)
				}
				laps := c.n / r.Cap()
				if laps < 100 {
					t.Fatalf("only %d laps: not a wrap-around test", laps)
				}
				for p, n := range c.next {
					if int(n) != perProducer {
						t.Fatalf("producer %d: %d items", p, n)
					}
				}
			})
		}
	}
}

// TestCloseRacingProducers: producers enqueue flat out while Close lands in
// the middle. Every enqueue that returned nil must be dequeued exactly once
// (and in per-producer order); every enqueue after a producer has seen
// ErrClosed must also get ErrClosed; nothing else may come out.
func TestCloseRacingProducers(t *testing.T) {
	rounds := 30
	if testing.Short() {
		rounds = 5
	}
	for round := 0; round < rounds; round++ {
		const producers = 8
		r := New[item](16)
		accepted := make([]int32, producers) // per producer: items that got nil
		var started sync.WaitGroup
		var wg sync.WaitGroup
		var afterClose atomic.Int32
		for p := 0; p < producers; p++ {
			started.Add(1)
			wg.Add(1)
			go func(p int) {
				defer wg.Done()
				started.Done()
				ctx := context.Background()
				for s := int32(0); ; s++ {
					var err error
					if p%2 == 0 {
						err = r.Enqueue(ctx, item{int32(p), s})
					} else {
						for err = r.TryEnqueue(item{int32(p), s}); errors.Is(err, ErrFull); err = r.TryEnqueue(item{int32(p), s}) {
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
					// Once closed, always closed.
					for i := 0; i < 3; i++ {
						if err := r.TryEnqueue(item{int32(p), -1}); !errors.Is(err, ErrClosed) {
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
						r.Close() // close from the consumer side mid-stream on some rounds
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
			r.Close() // close from outside, racing the first enqueues
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

package mpsc

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmark matrix (QUEUE-9, issues 2 and 12): the ring against a mutex ring
// with batch drain and a buffered channel of the same capacity, for 1, 4 and
// 16 producers and pointer-sized and 64-byte items. One op = one item moved
// from a producer to the consumer. Every sub-benchmark runs all the
// implementations on the same number of items in interleaved rounds (the
// timer runs only for its own) and reports items/s plus the ratios
// x_vs_chan, x_vs_mutex, x_vs_shared and x_vs_mutexbatch, so a ratio never
// compares numbers from different moments of a shared machine. ringbatch and
// mutexbatch are the ring and the mutex ring with producer batching
// (benchProducerBatch items per call: Producer.EnqueueBatch, one lock per
// batch): compare them with each other. See docs/bench/mpsc.md.
//
// Run: libs/mpsc/bench.sh (benchstat over 10 runs), or
// go test -run '^$' -bench BenchmarkQueue -benchmem -count 10 ./libs/mpsc/

const (
	benchCapacity = 1024
	benchBatch    = 256
)

type payload struct{ a, b uint64 }

// item64 is a 64-byte item (a cache line).
type item64 [8]uint64

// queueImpl moves n items from p producers to one batch consumer and returns
// the elapsed time from releasing the producers to the last item received.
type queueImpl[T any] func(n, p int, v T) time.Duration

// split gives producer i its share of n items.
func split(n, p, i int) int {
	s := n / p
	if i < n%p {
		s++
	}
	return s
}

// startProducers starts p goroutines that each call the function mk
// returned to it (mk runs once per goroutine, before the gate, so that a
// producer can take a handle) for their share of n items once released.
func startProducers(n, p int, mk func() func()) (release func(), wait func()) {
	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	for i := 0; i < p; i++ {
		ready.Add(1)
		done.Add(1)
		go func(k int) {
			defer done.Done()
			enq := mk()
			ready.Done()
			<-gate
			for ; k > 0; k-- {
				enq()
			}
		}(split(n, p, i))
	}
	ready.Wait()
	return func() { close(gate) }, done.Wait
}

// shared is the mk of startProducers for a queue without handles.
func shared(enq func()) func() func() { return func() func() { return enq } }

// runShared is the ring's shared lane (Ring.Enqueue, every producer CASes
// the same tail): the ring of issue 2, kept as the before of issue 12.
func runShared[T any](n, p int, v T) time.Duration {
	r := New[T](benchCapacity)
	ctx := context.Background()
	release, wait := startProducers(n, p, shared(func() {
		if err := r.Enqueue(ctx, v); err != nil {
			panic(err)
		}
	}))
	return drainRing(r, n, release, wait)
}

// drainRing is the consumer loop of the ring runners.
func drainRing[T any](r *Ring[T], n int, release, wait func()) time.Duration {
	ctx := context.Background()
	buf := make([]T, benchBatch)
	start := time.Now()
	release()
	for got := 0; got < n; {
		k := r.DequeueBatch(buf)
		if k == 0 {
			if err := r.Wait(ctx); err != nil {
				panic(err)
			}
			continue
		}
		got += k
	}
	d := time.Since(start)
	wait()
	return d
}

// runRing is the ring as the gateway uses it: one producer lane per
// producer (Ring.Producer), p lanes of benchCapacity/p slots, the same total
// capacity as the other queues.
func runRing[T any](n, p int, v T) time.Duration {
	r := NewLanes[T](2, p, benchCapacity/p)
	ctx := context.Background()
	release, wait := startProducers(n, p, func() func() {
		h := r.Producer()
		return func() {
			if err := h.Enqueue(ctx, v); err != nil {
				panic(err)
			}
		}
	})
	return drainRing(r, n, release, wait)
}

// benchProducerBatch is the batch of the producer-batching rows: the
// packets of one socket read, say.
const benchProducerBatch = 8

// startBatchProducers is startProducers for producers that hand over up to
// benchProducerBatch items per call.
func startBatchProducers(n, p int, mk func() func(k int)) (release func(), wait func()) {
	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	for i := 0; i < p; i++ {
		ready.Add(1)
		done.Add(1)
		go func(k int) {
			defer done.Done()
			enq := mk()
			ready.Done()
			<-gate
			for k > 0 {
				b := min(k, benchProducerBatch)
				enq(b)
				k -= b
			}
		}(split(n, p, i))
	}
	ready.Wait()
	return func() { close(gate) }, done.Wait
}

// runRingBatch is runRing with producer batching (Producer.EnqueueBatch).
func runRingBatch[T any](n, p int, v T) time.Duration {
	r := NewLanes[T](2, p, benchCapacity/p)
	ctx := context.Background()
	release, wait := startBatchProducers(n, p, func() func(int) {
		h := r.Producer()
		vs := make([]T, benchProducerBatch)
		for i := range vs {
			vs[i] = v
		}
		return func(k int) {
			if _, err := h.EnqueueBatch(ctx, vs[:k]); err != nil {
				panic(err)
			}
		}
	})
	return drainRing(r, n, release, wait)
}

// runMutexBatch is runMutex with producer batching: one lock per batch.
func runMutexBatch[T any](n, p int, v T) time.Duration {
	m := newMutexRing[T](benchCapacity)
	release, wait := startBatchProducers(n, p, func() func(int) {
		vs := make([]T, benchProducerBatch)
		for i := range vs {
			vs[i] = v
		}
		return func(k int) { m.enqueueBatch(vs[:k]) }
	})
	return drainMutex(m, n, release, wait)
}

func runChan[T any](n, p int, v T) time.Duration {
	ch := make(chan T, benchCapacity)
	release, wait := startProducers(n, p, shared(func() { ch <- v }))
	buf := make([]T, benchBatch)
	start := time.Now()
	release()
	for got := 0; got < n; {
		buf[0] = <-ch
		k := 1
	drain:
		for k < len(buf) {
			select {
			case buf[k] = <-ch:
				k++
			default:
				break drain
			}
		}
		got += k
	}
	d := time.Since(start)
	wait()
	return d
}

// mutexRing is the lock-based baseline: a power-of-two ring under one mutex,
// producers wait on notFull, the consumer copies a whole batch out under the
// lock. Signals are sent only when someone waits.
type mutexRing[T any] struct {
	mu                sync.Mutex
	notEmpty, notFull sync.Cond
	buf               []T
	head, n           int
	mask              int
	prodWaiting       int
	consWaiting       bool
}

func newMutexRing[T any](capacity int) *mutexRing[T] {
	m := &mutexRing[T]{buf: make([]T, capacity), mask: capacity - 1}
	m.notEmpty.L = &m.mu
	m.notFull.L = &m.mu
	return m
}

func (m *mutexRing[T]) enqueue(v T) {
	m.mu.Lock()
	for m.n == len(m.buf) {
		m.prodWaiting++
		m.notFull.Wait()
		m.prodWaiting--
	}
	m.buf[(m.head+m.n)&m.mask] = v
	m.n++
	if m.consWaiting {
		m.notEmpty.Signal()
	}
	m.mu.Unlock()
}

// enqueueBatch appends all of vs (len(vs) <= capacity) under one lock.
func (m *mutexRing[T]) enqueueBatch(vs []T) {
	m.mu.Lock()
	for m.n+len(vs) > len(m.buf) {
		m.prodWaiting++
		m.notFull.Wait()
		m.prodWaiting--
	}
	for _, v := range vs {
		m.buf[(m.head+m.n)&m.mask] = v
		m.n++
	}
	if m.consWaiting {
		m.notEmpty.Signal()
	}
	m.mu.Unlock()
}

func (m *mutexRing[T]) dequeueBatch(out []T) int {
	var zero T
	m.mu.Lock()
	for m.n == 0 {
		m.consWaiting = true
		m.notEmpty.Wait()
		m.consWaiting = false
	}
	k := min(m.n, len(out))
	for i := 0; i < k; i++ {
		j := (m.head + i) & m.mask
		out[i] = m.buf[j]
		m.buf[j] = zero
	}
	m.head = (m.head + k) & m.mask
	m.n -= k
	if m.prodWaiting > 0 {
		m.notFull.Broadcast()
	}
	m.mu.Unlock()
	return k
}

func runMutex[T any](n, p int, v T) time.Duration {
	m := newMutexRing[T](benchCapacity)
	release, wait := startProducers(n, p, shared(func() { m.enqueue(v) }))
	return drainMutex(m, n, release, wait)
}

// drainMutex is the consumer loop of the mutex ring runners.
func drainMutex[T any](m *mutexRing[T], n int, release, wait func()) time.Duration {
	buf := make([]T, benchBatch)
	start := time.Now()
	release()
	for got := 0; got < n; {
		got += m.dequeueBatch(buf)
	}
	d := time.Since(start)
	wait()
	return d
}

// benchRounds is how many slices of b.N every implementation takes turns
// on (in a rotating order), so that a change in background load during the
// run hits all of them alike and the ratios compare like with like.
const benchRounds = 6

// impl is one queue under test.
type impl[T any] struct {
	name string
	run  queueImpl[T]
}

// Indexes into the slice built by impls: the baselines the ratios divide by.
const (
	implRing = iota
	implMutex
	implChan
	implShared
	implRingBatch
	implMutexBatch
)

func impls[T any]() []impl[T] {
	return []impl[T]{
		implRing:       {"ring", runRing[T]},
		implMutex:      {"mutex", runMutex[T]},
		implChan:       {"chan", runChan[T]},
		implShared:     {"shared", runShared[T]},
		implRingBatch:  {"ringbatch", runRingBatch[T]},
		implMutexBatch: {"mutexbatch", runMutexBatch[T]},
	}
}

// benchInterleaved measures impls[own] with the timer running and, in the
// same rounds with the timer stopped, every other implementation on the same
// number of items. It reports own items/s and the interleaved ratios
// x_vs_chan = chan time / own time and x_vs_mutex = mutex time / own time
// (above 1 means faster than that baseline; 1 by definition for the baseline
// itself), and the process CPU time per item of its own rounds (cpu-ns/item:
// on a loaded machine wall time mostly measures the CPU share the process
// got, CPU time per item measures the work).
func benchInterleaved[T any](b *testing.B, all []impl[T], own, p int, v T) {
	b.ReportAllocs()
	if *benchOnly != "" {
		benchAlone(b, all[own], p, v)
		return
	}
	d := make([]time.Duration, len(all))
	var cpu time.Duration
	b.ResetTimer()
	b.StopTimer()
	for round := 0; round < benchRounds; round++ {
		n := split(b.N, benchRounds, round)
		if n == 0 {
			continue
		}
		for j := range all {
			k := (round + j) % len(all)
			if k != own {
				d[k] += all[k].run(n, p, v)
				continue
			}
			c0, _ := processCPU()
			b.StartTimer()
			d[k] += all[k].run(n, p, v)
			b.StopTimer()
			c1, _ := processCPU()
			cpu += c1 - c0
		}
	}
	b.ReportMetric(float64(b.N)/d[own].Seconds(), "items/s")
	b.ReportMetric(d[implChan].Seconds()/d[own].Seconds(), "x_vs_chan")
	b.ReportMetric(d[implMutex].Seconds()/d[own].Seconds(), "x_vs_mutex")
	b.ReportMetric(d[implShared].Seconds()/d[own].Seconds(), "x_vs_shared")
	b.ReportMetric(d[implMutexBatch].Seconds()/d[own].Seconds(), "x_vs_mutexbatch")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/item")
	}
}

// benchOnly runs one implementation alone (no interleaving, no ratios):
// for profiles, which the other implementations' rounds would otherwise
// dominate.
var benchOnly = flag.String("mpsc.only", "", "BenchmarkQueue: run only the impl of this name, alone (for -cpuprofile and perf)")

// benchAlone is benchInterleaved without the other implementations.
func benchAlone[T any](b *testing.B, own impl[T], p int, v T) {
	if own.name != *benchOnly {
		b.Skip("-mpsc.only")
	}
	c0, _ := processCPU()
	b.ResetTimer()
	d := own.run(b.N, p, v)
	b.StopTimer()
	c1, _ := processCPU()
	b.ReportMetric(float64(b.N)/d.Seconds(), "items/s")
	b.ReportMetric(float64((c1-c0).Nanoseconds())/float64(b.N), "cpu-ns/item")
}

func benchCase[T any](b *testing.B, p int, v T) {
	all := impls[T]()
	for k := range all {
		b.Run("impl="+all[k].name, func(b *testing.B) { benchInterleaved(b, all, k, p, v) })
	}
}

func BenchmarkQueue(b *testing.B) {
	ptr := &payload{1, 2}
	var big item64
	for i := range big {
		big[i] = uint64(i)
	}
	for _, p := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("item=ptr/producers=%d", p), func(b *testing.B) { benchCase(b, p, ptr) })
		b.Run(fmt.Sprintf("item=64B/producers=%d", p), func(b *testing.B) { benchCase(b, p, big) })
	}
}

// BenchmarkRingUncontended is one goroutine doing TryEnqueue then a batch
// dequeue: the cost of the protocol itself, without any hand-off.
func BenchmarkRingUncontended(b *testing.B) {
	r := New[*payload](benchCapacity)
	buf := make([]*payload, benchBatch)
	v := &payload{}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := r.TryEnqueue(v); err != nil {
			b.Fatal(err)
		}
		if i%benchBatch == benchBatch-1 {
			r.DequeueBatch(buf)
		}
	}
}

// BenchmarkLineTransfer measures the machine, not a queue: two goroutines
// (one per processor at GOMAXPROCS=2) hand one padded atomic back and forth,
// and one-way-ns is half the best round trip of 20 windows. It is what a
// cache line costs to move between the two cores, the cost that decides
// whether the ring beats the mutex ring with 64-byte items (docs/mpsc.md,
// fourth round); bench.sh records it beside every queue run, because a
// guest's two vCPUs can sit closer or farther apart from one hour to the
// next.
func BenchmarkLineTransfer(b *testing.B) {
	var x struct {
		_ [cacheLine]byte
		v atomic.Int64
		_ [cacheLine]byte
	}
	const rounds = 5000
	best := time.Duration(1 << 62)
	for b.Loop() {
		for range 20 {
			x.v.Store(0)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := int64(1); i < 2*rounds; i += 2 {
					for x.v.Load() != i {
					}
					x.v.Store(i + 1)
				}
			}()
			t0 := time.Now()
			for i := int64(0); i < 2*rounds; i += 2 {
				for x.v.Load() != i {
				}
				x.v.Store(i + 1)
			}
			<-done
			if d := time.Since(t0) / rounds; d < best {
				best = d
			}
		}
	}
	b.ReportMetric(float64(best.Nanoseconds())/2, "one-way-ns")
	b.ReportMetric(0, "ns/op")
}

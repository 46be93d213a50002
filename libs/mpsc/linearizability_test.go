package mpsc

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// QUEUE-T4: histories of concurrent TryEnqueue and DequeueBatch calls are
// checked for linearizability with porcupine against a FIFO queue of the
// ring's capacity. The model encodes the documented relaxation: a
// DequeueBatch must return a prefix of the queue (order, no duplicates,
// nothing invented), but may return FEWER items than the queue holds (a
// claimed but unpublished slot hides what follows it). ErrFull is only
// allowed when the queue holds Cap items. Timestamps come from one atomic
// counter, a logical clock that cannot run backwards between goroutines
// (the porcupine #40 pitfall of wall clocks on weakly ordered CPUs).

type linInput struct {
	enqueue bool
	v       uint16 // enqueue: the value
	k       int    // dequeue: buffer size
}

type linOutput struct {
	err error    // enqueue result
	got []uint16 // dequeue result
}

// linModel is a FIFO of capacity c; the state is the queue as a string of
// 2-byte values, so that == compares states.
func linModel(c int) porcupine.Model {
	return porcupine.Model{
		Init: func() interface{} { return "" },
		Step: func(state, input, output interface{}) (bool, interface{}) {
			q := state.(string)
			in, out := input.(linInput), output.(linOutput)
			if in.enqueue {
				switch {
				case out.err == nil:
					if len(q)/2 >= c {
						return false, q
					}
					return true, q + string([]byte{byte(in.v >> 8), byte(in.v)})
				case errors.Is(out.err, ErrFull):
					return len(q)/2 == c, q
				default:
					return false, q
				}
			}
			if len(out.got) > in.k || 2*len(out.got) > len(q) {
				return false, q
			}
			for i, v := range out.got {
				if q[2*i] != byte(v>>8) || q[2*i+1] != byte(v) {
					return false, q
				}
			}
			return true, q[2*len(out.got):]
		},
		DescribeOperation: func(input, output interface{}) string {
			in, out := input.(linInput), output.(linOutput)
			if in.enqueue {
				return fmt.Sprintf("enq(%d) -> %v", in.v, out.err)
			}
			return fmt.Sprintf("deq(%d) -> %v", in.k, out.got)
		},
	}
}

func TestLinearizable(t *testing.T) {
	histories := 40
	if testing.Short() {
		histories = 10
	}
	const producers, perProducer = 3, 25
	for h := 0; h < histories; h++ {
		capacity := []int{2, 4}[h%2]
		r := New[uint16](capacity)
		var clock atomic.Int64
		var mu sync.Mutex
		var ops []porcupine.Operation
		record := func(client int, in linInput, out linOutput, call int64) {
			ret := clock.Add(1)
			mu.Lock()
			ops = append(ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
			mu.Unlock()
		}
		var wg sync.WaitGroup
		for p := 0; p < producers; p++ {
			wg.Add(1)
			go func(p int) {
				defer wg.Done()
				for i := 0; i < perProducer; i++ {
					v := uint16(p*1000 + i)
					call := clock.Add(1)
					err := r.TryEnqueue(v)
					record(p, linInput{enqueue: true, v: v}, linOutput{err: err}, call)
					if err != nil {
						i-- // retry the same value later: keeps per-producer order
						yield()
					}
				}
			}(p)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		buf := make([]uint16, 3)
		for k, finished := 1, false; !finished; k = k%3 + 1 {
			select {
			case <-done:
				finished = true // one more round to drain, then stop
			default:
			}
			call := clock.Add(1)
			n := r.DequeueBatch(buf[:k])
			record(producers, linInput{k: k}, linOutput{got: append([]uint16(nil), buf[:n]...)}, call)
			if finished && r.Len() > 0 {
				finished = false
			}
			yield()
		}
		res := porcupine.CheckOperationsTimeout(linModel(r.Cap()), ops, 20*time.Second)
		switch res {
		case porcupine.Ok:
		case porcupine.Unknown:
			t.Fatalf("history %d: linearizability check timed out (%d ops)", h, len(ops))
		default:
			t.Fatalf("history %d (cap %d, %d ops) is not linearizable", h, r.Cap(), len(ops))
		}
	}
}

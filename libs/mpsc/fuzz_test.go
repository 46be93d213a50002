package mpsc

import (
	"context"
	"errors"
	"runtime"
	"testing"
)

// yield lets other goroutines run in retry loops (GOMAXPROCS may be 1).
func yield() { runtime.Gosched() }

// FuzzQueueOps is the model-based test (QUEUE-T1): one goroutine applies a
// random sequence of operations to the ring and to a slice-based FIFO model,
// and every result (errors, dequeued items, Len) must match. Seeds live in
// testdata/fuzz/FuzzQueueOps; plain `go test` runs them, `go test
// -fuzz=FuzzQueueOps -fuzztime=30s` explores further.
//
// ops is read as a byte stream: op = b % 6, some ops take the next byte as
// an argument.
func FuzzQueueOps(f *testing.F) {
	f.Add(uint8(1), []byte{0, 0, 0, 2, 9, 0, 3, 0, 4, 2, 9, 4})
	f.Fuzz(func(t *testing.T, capacity uint8, ops []byte) {
		reqCap := int(capacity%64) + 1
		r := New[uint64](reqCap)
		c := r.Cap()
		if c < reqCap || c < 2 || c&(c-1) != 0 || c >= 2*reqCap && c > 2 {
			t.Fatalf("New(%d).Cap() = %d", reqCap, c)
		}
		var model []uint64
		closed := false
		next := uint64(1)
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		buf := make([]uint64, 2*c+2)

		// wantEnq is the model's answer to an enqueue.
		wantEnq := func(full error) error {
			switch {
			case closed:
				return ErrClosed
			case len(model) == c:
				return full
			}
			return nil
		}
		for i := 0; i < len(ops); i++ {
			op := ops[i] % 6
			arg := 0
			if i+1 < len(ops) && (op == 2 || op == 5) {
				i++
				arg = int(ops[i])
			}
			switch op {
			case 0, 1: // TryEnqueue / Enqueue with a done ctx (never blocks)
				var got, want error
				if op == 0 {
					got, want = r.TryEnqueue(next), wantEnq(ErrFull)
				} else {
					got, want = r.Enqueue(cancelled, next), wantEnq(context.Canceled)
				}
				if !errors.Is(got, want) {
					t.Fatalf("op %d enqueue(%d): got %v, want %v (len %d cap %d closed %v)", i, next, got, want, len(model), c, closed)
				}
				if want == nil {
					model = append(model, next)
				}
				next++
			case 2, 5: // DequeueBatch into a buffer of arg%(2c+3) slots
				k := arg % (len(buf) + 1)
				n := r.DequeueBatch(buf[:k])
				want := min(k, len(model))
				if n != want {
					t.Fatalf("op %d DequeueBatch(%d) = %d, want %d", i, k, n, want)
				}
				for j := 0; j < n; j++ {
					if buf[j] != model[j] {
						t.Fatalf("op %d item %d = %d, want %d", i, j, buf[j], model[j])
					}
				}
				model = model[n:]
			case 3:
				r.Close()
				closed = true
			case 4: // Wait with a done ctx: never parks
				got := r.Wait(cancelled)
				var want error
				switch {
				case len(model) > 0:
				case closed:
					want = ErrClosed
				default:
					want = context.Canceled
				}
				if !errors.Is(got, want) {
					t.Fatalf("op %d Wait = %v, want %v", i, got, want)
				}
			}
			if r.Len() != len(model) {
				t.Fatalf("op %d Len = %d, want %d", i, r.Len(), len(model))
			}
			if r.Closed() != closed {
				t.Fatalf("op %d Closed = %v", i, r.Closed())
			}
		}
		// Drain: whatever the model holds comes out, then the ring is empty.
		n := r.DequeueBatch(buf)
		if n != min(len(model), len(buf)) {
			t.Fatalf("final drain %d, model %d", n, len(model))
		}
	})
}

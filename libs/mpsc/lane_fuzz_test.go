package mpsc

import (
	"context"
	"errors"
	"testing"
)

// FuzzLaneOps is the model-based test of the producer lanes (QUEUE-T1 for
// lane.go): one goroutine takes, uses and releases up to 4 handles on a ring
// with 3 lanes, enqueues on the shared lane too, dequeues in batches of any
// size, closes and waits; a model of per-lane FIFOs, the free-lane stack and
// the consumer's round-robin must give the same errors, items, Len and
// Closed. `go test -fuzz=FuzzLaneOps -fuzztime=30s ./libs/mpsc/` explores.
//
// ops is read as a byte stream: op = b % 8, then one argument byte.
func FuzzLaneOps(f *testing.F) {
	f.Add(uint8(1), uint8(1), []byte{0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 3, 2, 2, 0, 0, 2, 1, 2, 3, 9, 4, 0, 5, 0, 3, 9})
	f.Add(uint8(3), uint8(0), []byte{0, 0, 0, 1, 0, 2, 0, 3, 1, 0, 1, 1, 1, 2, 1, 3, 6, 0, 3, 1, 3, 1, 3, 1, 3, 5})
	f.Fuzz(func(t *testing.T, sharedCap, laneCap uint8, ops []byte) {
		const lanes, slots = 3, 4
		r := NewLanes[uint64](int(sharedCap%8)+1, lanes, int(laneCap%8)+1)
		// Model: queue 0 is the shared lane, queue k the lane k-1.
		caps := []int{len(r.seqs)}
		for k := range r.lanes {
			caps = append(caps, len(r.lanes[k].vals))
		}
		q := make([][]uint64, lanes+1)
		free := []int{2, 1, 0} // as NewLanes: lane 0 is handed out first
		cursor, closed, next := 0, false, uint64(1)
		type handle struct {
			p        *Producer[uint64]
			q        int // model queue
			released bool
		}
		var hs [slots]*handle
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		buf := make([]uint64, 20)
		enq := func(i int, h *handle, got error, full error) {
			var want error
			switch {
			case h.released:
				want = ErrReleased
			case closed:
				want = ErrClosed
			case len(q[h.q]) == caps[h.q]:
				want = full
			}
			if !errors.Is(got, want) {
				t.Fatalf("op %d enqueue on queue %d: got %v, want %v", i, h.q, got, want)
			}
			if want == nil {
				q[h.q] = append(q[h.q], next)
			}
			next++
		}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%8, int(ops[i+1])
			h := hs[arg%slots]
			switch op {
			case 0: // take a handle into the slot (if empty or released)
				if h != nil && !h.released {
					continue
				}
				nh := &handle{p: r.Producer()}
				if n := len(free); n > 0 {
					nh.q = free[n-1] + 1
					free = free[:n-1]
				}
				if nh.p.Lane() != (nh.q != 0) {
					t.Fatalf("op %d: Lane() = %v, model queue %d", i, nh.p.Lane(), nh.q)
				}
				hs[arg%slots] = nh
			case 1, 7: // TryEnqueue / Enqueue with a done ctx on the slot's handle
				if h == nil {
					continue
				}
				if op == 1 {
					enq(i, h, h.p.TryEnqueue(next), ErrFull)
				} else {
					enq(i, h, h.p.Enqueue(cancelled, next), context.Canceled)
				}
			case 2: // Release
				if h == nil {
					continue
				}
				h.p.Release()
				if !h.released && h.q != 0 {
					free = append(free, h.q-1)
				}
				h.released = true
			case 3: // DequeueBatch of arg%21 slots
				k := arg % (len(buf) + 1)
				checkDequeue(t, i, r, buf[:k], q, &cursor)
			case 4:
				r.Close()
				closed = true
			case 5: // Wait with a done ctx
				total := 0
				for _, l := range q {
					total += len(l)
				}
				var want error
				switch {
				case total > 0:
				case closed:
					want = ErrClosed
				default:
					want = context.Canceled
				}
				if got := r.Wait(cancelled); !errors.Is(got, want) {
					t.Fatalf("op %d Wait = %v, want %v", i, got, want)
				}
			case 6: // the shared lane without a handle
				enq(i, &handle{q: 0}, r.TryEnqueue(next), ErrFull)
			}
			total := 0
			for _, l := range q {
				total += len(l)
			}
			if r.Len() != total {
				t.Fatalf("op %d Len = %d, want %d", i, r.Len(), total)
			}
			if r.Closed() != closed {
				t.Fatalf("op %d Closed = %v", i, r.Closed())
			}
		}
	})
}

// checkDequeue dequeues len(buf) slots from r and checks them against the
// model: the FIFOs q (the shared lane, then each lane) visited round-robin
// from *cursor, which moves past the last queue that gave items.
func checkDequeue(t *testing.T, op int, r *Ring[uint64], buf []uint64, q [][]uint64, cursor *int) {
	t.Helper()
	n := r.DequeueBatch(buf)
	var want []uint64
	m, start := len(q), *cursor
	for j := 0; j < m && len(want) < len(buf); j++ {
		l := (start + j) % m
		if take := min(len(q[l]), len(buf)-len(want)); take > 0 {
			want = append(want, q[l][:take]...)
			q[l] = q[l][take:]
			*cursor = (l + 1) % m
		}
	}
	if n != len(want) {
		t.Fatalf("op %d DequeueBatch(%d) = %d %v, want %d (%v)", op, len(buf), n, buf[:n], len(want), want)
	}
	for j := range want {
		if buf[j] != want[j] {
			t.Fatalf("op %d item %d = %d, want %d", op, j, buf[j], want[j])
		}
	}
}

package sendq

import (
	"context"
	"sync"
	"time"
)

// Held acks (--ack-hold). A client gets ~20 update frames a second (one per
// tick of its zone) and an Ack for each of its ~10 commands a second; each
// Ack written on its own was a third of the gateway's socket writes and of
// the client's reads. An Ack is held instead (Queue.held, under umu) and
// goes out with the client's next write: the writer adds the held acks
// to whatever it writes (update frames, answers, notices). The Flusher
// bounds the wait: every AckHold/4 it kicks the writer of each connection
// whose oldest held ack has waited AckHold. Held acks count against the
// connection's send-queue bounds like queued packets; a connection that
// finishes writes them in its last write.

// Flusher kicks the writers of the connections whose held acks are due; one
// per gateway. Its mutex is taken alone (never with a Queue's umu).
type Flusher struct {
	mu   sync.Mutex
	held []*Queue // connections with held acks
}

// holdAck queues the encoded Ack b for the client's next write.
func (q *Queue) holdAck(b []byte) {
	select {
	case <-q.dead:
		return
	default:
	}
	now := time.Now().UnixNano()
	if !q.queue(len(b), now) {
		return
	}
	q.umu.Lock()
	if len(q.held) == 0 {
		q.heldAt = now
	}
	q.held = append(q.held, b)
	reg := !q.heldReg
	q.heldReg = true
	q.umu.Unlock()
	if reg {
		q.flusher.mu.Lock()
		q.flusher.held = append(q.flusher.held, q)
		q.flusher.mu.Unlock()
	}
}

// takeAcks appends the held acks to batch (the writer, before a write).
// They were pending at the same time as batch's packets, from other
// goroutines, so no order between them was promised.
func (q *Queue) takeAcks(batch [][]byte) [][]byte {
	q.umu.Lock()
	if len(q.held) == 0 {
		q.umu.Unlock()
		return batch
	}
	n := 0
	for _, b := range q.held {
		n += len(b)
	}
	batch = append(batch, q.held...)
	clear(q.held)
	q.held = q.held[:0]
	q.umu.Unlock()
	q.unqueue(n)
	return batch
}

// Run runs until ctx ends: every hold/4 it kicks the writers of the
// connections whose oldest held ack has waited hold.
func (f *Flusher) Run(ctx context.Context, hold time.Duration) {
	t := time.NewTicker(max(hold/4, time.Millisecond))
	defer t.Stop()
	var list, keep []*Queue
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f.mu.Lock()
			list, f.held = f.held, list[:0]
			f.mu.Unlock()
			keep = keep[:0]
			for _, q := range list {
				q.umu.Lock()
				n := len(q.held)
				due := n > 0 && now.UnixNano()-q.heldAt >= int64(hold)
				if !due && n > 0 {
					keep = append(keep, q)
				} else {
					q.heldReg = false
				}
				q.umu.Unlock()
				if due {
					select {
					case q.ukick <- struct{}{}:
					default:
					}
				}
			}
			clear(list)
			if len(keep) > 0 {
				f.mu.Lock()
				f.held = append(f.held, keep...)
				f.mu.Unlock()
			}
		}
	}
}

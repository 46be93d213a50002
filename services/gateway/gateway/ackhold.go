package gateway

import (
	"context"
	"time"
)

// Held acks (--ack-hold). A client gets ~20 update frames a second (one per
// tick of its zone) and an Ack for each of its ~10 commands a second; each
// Ack written on its own was a third of the gateway's socket writes and of
// the client's reads. An Ack is held instead (conn.held, under umu) and
// goes out with the client's next write: the writer adds the held acks
// to whatever it writes (update frames, answers, notices). The flusher
// bounds the wait: every AckHold/4 it kicks the writer of each connection
// whose oldest held ack has waited AckHold. Held acks count against the
// connection's send-queue bounds like queued packets; a connection that
// finishes writes them in its last write.

// holdAck queues the encoded Ack b for the client's next write.
func (c *conn) holdAck(b []byte) {
	select {
	case <-c.dead:
		return
	default:
	}
	now := time.Now().UnixNano()
	if !c.queue(len(b), now) {
		return
	}
	c.umu.Lock()
	if len(c.held) == 0 {
		c.heldAt = now
	}
	c.held = append(c.held, b)
	reg := !c.heldReg
	c.heldReg = true
	c.umu.Unlock()
	if reg {
		c.s.ackMu.Lock()
		c.s.ackHeld = append(c.s.ackHeld, c)
		c.s.ackMu.Unlock()
	}
}

// takeAcks appends the held acks to batch (the writer, before a write).
// They were pending at the same time as batch's packets, from other
// goroutines, so no order between them was promised.
func (c *conn) takeAcks(batch [][]byte) [][]byte {
	c.umu.Lock()
	if len(c.held) == 0 {
		c.umu.Unlock()
		return batch
	}
	n := 0
	for _, b := range c.held {
		n += len(b)
	}
	batch = append(batch, c.held...)
	clear(c.held)
	c.held = c.held[:0]
	c.umu.Unlock()
	c.unqueue(n)
	return batch
}

// flushHeldAcks runs until ctx ends: every hold/4 it kicks the writers of the
// connections whose oldest held ack has waited hold.
func (s *Service) flushHeldAcks(ctx context.Context, hold time.Duration) {
	t := time.NewTicker(max(hold/4, time.Millisecond))
	defer t.Stop()
	var list, keep []*conn
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.ackMu.Lock()
			list, s.ackHeld = s.ackHeld, list[:0]
			s.ackMu.Unlock()
			keep = keep[:0]
			for _, c := range list {
				c.umu.Lock()
				n := len(c.held)
				due := n > 0 && now.UnixNano()-c.heldAt >= int64(hold)
				if !due && n > 0 {
					keep = append(keep, c)
				} else {
					c.heldReg = false
				}
				c.umu.Unlock()
				if due {
					select {
					case c.ukick <- struct{}{}:
					default:
					}
				}
			}
			clear(list)
			if len(keep) > 0 {
				s.ackMu.Lock()
				s.ackHeld = append(s.ackHeld, keep...)
				s.ackMu.Unlock()
			}
		}
	}
}

package sendq

import "github.com/realmstream/realmstream/libs/wire"

// writeDirect writes what waits in the update buffer and the held acks on
// the caller's goroutine (the fan-out's), when the socket takes it without
// waiting, and says whether the writer has nothing left to do. It does not
// write when anything else is queued (sendq, replyq: the writer keeps their
// order), when the writer is writing (wmu taken: the frames join its next
// write), when an earlier direct write left a tail, or when the connection
// is closing. A partial write keeps the tail in rest for the writer, which
// the caller then wakes. A failed write kills the socket, as the writer
// does.
func (q *Queue) writeDirect() bool {
	if len(q.sendq) > 0 || len(q.replyq) > 0 || q.slow.Load() {
		return false
	}
	select {
	case <-q.dead:
		return true
	case <-q.finish:
		return false
	default:
	}
	if !q.wmu.TryLock() {
		return false
	}
	defer q.wmu.Unlock()
	if len(q.rest) > 0 {
		return false
	}
	ups := q.takeUpdates(q.dspare)
	q.dacks = q.takeAcks(q.dacks[:0])
	out := ups
	if len(q.dacks) > 0 {
		q.dbuf = q.dbuf[:0]
		for _, b := range q.dacks {
			q.dbuf = wire.AppendFrame(q.dbuf, b)
		}
		q.dbuf = append(q.dbuf, ups...)
		out = q.dbuf
		clear(q.dacks)
	}
	if len(out) == 0 {
		q.dspare = ups
		return true
	}
	q.m.BytesOut.Add(float64(len(out)))
	q.m.Writes.Inc()
	n, err := q.try.TryWrite(out)
	if err != nil {
		q.m.Dropped.WithLabelValues("write_error").Inc()
		q.Kill()
		return true
	}
	done := n == len(out)
	if done {
		q.wrote()
	} else {
		q.rest = append(q.rest[:0], out[n:]...)
	}
	if cap(ups) > 256<<10 {
		ups = nil // do not keep a burst's buffer forever
	}
	if cap(q.dbuf) > 256<<10 {
		q.dbuf = nil
	}
	q.dspare = ups
	return done
}

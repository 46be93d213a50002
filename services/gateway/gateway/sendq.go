package gateway

import (
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
)

// Slow consumers (issue 10 #6). A client's outgoing packets wait in sendq
// (acks, updates, notices) and replyq (the reader's answers); the writer
// writes them in batches. Before, the only bound was sendq's packet count,
// and a client that never read was dropped only when a write failed: 81 s
// and 2.8 MB queued in a drill. Now each connection accounts for the bytes
// waiting in sendq and for the time since the writer last made progress, and
// is a slow consumer as soon as
//   - queued bytes would exceed Config.SendQueueBytes, or
//   - packets are queued and no write has completed for Config.SendQueueAge
//     (the oldest queued packet waited at least that long), or
//   - sendq is full (Config.SendQueue packets).
// Then it is told SLOW_CONSUMER (by the writer, when the stream is at a frame
// boundary; best effort) and closed within slowKillAfter, whatever the
// socket does.
//
// replyq is not counted: when it is full the reader blocks (it stops reading
// the client's socket, so TCP flow control slows a flooding client), and its
// answers are small; a client that sends without reading is caught by the
// acks that then pile up in sendq.
//
// Accounting: producers add a packet's bytes before queueing it (and take
// them back if it is not queued); the writer takes them off when it dequeues
// the packet. progress is set by the writer after each completed write and
// by a producer that queues into an empty sendq.

// slowKillAfter bounds the time from detection to the closed socket.
const slowKillAfter = time.Second

// slowNoticeWait bounds the write of the SLOW_CONSUMER notice.
const slowNoticeWait = 200 * time.Millisecond

// queue accounts n bytes about to be queued at now (unix ns) and says whether
// the connection may queue them; false means it is a slow consumer (already
// handled).
func (c *conn) queue(n int, now int64) bool {
	if c.slow.Load() {
		return false
	}
	q := c.queued.Add(int64(n))
	switch {
	case q == int64(n):
		c.progress.Store(now) // the queue was empty: nothing has waited yet
	case q > int64(c.s.cfg.SendQueueBytes):
		c.queued.Add(-int64(n))
		c.slowConsumer("send queue above the byte limit", q)
		return false
	case now-c.progress.Load() > int64(c.s.cfg.SendQueueAge):
		c.queued.Add(-int64(n))
		c.slowConsumer("no write completed within the send queue age", q)
		return false
	}
	return true
}

// unqueue takes off bytes that queue accounted: dequeued by the writer, or
// not queued after all.
func (c *conn) unqueue(n int) { c.queued.Add(-int64(n)) }

// wrote records a completed write.
func (c *conn) wrote() { c.progress.Store(time.Now().UnixNano()) }

// slowConsumer starts the disconnect of a client that does not read fast
// enough: once, without blocking the caller (an ack or update callback).
func (c *conn) slowConsumer(why string, queued int64) {
	if !c.slow.CompareAndSwap(false, true) {
		return
	}
	c.s.m.slow.Inc()
	c.s.m.dropped.WithLabelValues("slow_consumer").Inc()
	c.s.m.errorCode(schema.ErrorCode_ERROR_CODE_SLOW_CONSUMER)
	c.s.log.Warn("slow consumer disconnected", "session", c.session, "why", why, "queued_bytes", queued, "queued_packets", len(c.sendq)+len(c.replyq))
	close(c.slowCh)
	c.kick()
	// A write blocked on a client that does not read holds the writer until
	// the write timeout: bound it to half the kill time. A client that reads
	// slowly completes it and then gets the notice; one that does not read
	// at all fails it (no notice: its stream may be mid-frame, and nothing
	// could reach it anyway). The socket is closed after slowKillAfter
	// whatever happens.
	c.tr.BoundWrite(slowKillAfter / 2)
	time.AfterFunc(slowKillAfter, c.kill)
}

// sendSlowNotice is the writer's last act for a slow consumer whose stream is
// at a frame boundary: the SLOW_CONSUMER notice, with a short deadline.
func (c *conn) sendSlowNotice() {
	b, _ := proto.Marshal(errPacket(0, schema.ErrorCode_ERROR_CODE_SLOW_CONSUMER, "you do not read fast enough (send queue over its byte or age limit); disconnected"))
	c.tr.SetWriteTimeout(slowNoticeWait)
	_ = c.tr.WritePackets([][]byte{b})
}

// SendFrames queues frames, n update frames for the client (framed as on
// TCP: 4-byte length + packet; copied). Like send it never blocks and
// accounts the bytes and the frames against the client's bounds (frames
// count as packets of sendq): past them the client is a slow consumer. The
// writer is woken once however many ticks pile up.
func (c *conn) SendFrames(frames []byte, n int, now int64) {
	select {
	case <-c.dead:
		return
	default:
	}
	if !c.queue(len(frames), now) {
		return
	}
	c.umu.Lock()
	if c.uframes+n > c.s.cfg.SendQueue {
		c.umu.Unlock()
		c.unqueue(len(frames))
		c.slowConsumer("send queue full", c.queued.Load())
		return
	}
	c.ubuf = append(c.ubuf, frames...)
	c.uframes += n
	c.umu.Unlock()
	select {
	case c.ukick <- struct{}{}:
	default: // already kicked: the writer takes everything in ubuf
	}
}

// takeUpdates swaps the queued update frames out for the writer: it returns
// them and keeps spare (emptied) as the next buffer to fill, so the two
// buffers are reused tick after tick.
func (c *conn) takeUpdates(spare []byte) []byte {
	c.umu.Lock()
	out := c.ubuf
	c.ubuf, c.uframes = spare[:0], 0
	c.umu.Unlock()
	c.unqueue(len(out))
	return out
}

// hasUpdates says whether update frames wait in ubuf.
func (c *conn) hasUpdates() bool {
	c.umu.Lock()
	defer c.umu.Unlock()
	return len(c.ubuf) > 0 || len(c.held) > 0
}

// Package sendq is a client connection's outgoing side: its queues, the
// writer goroutine that coalesces them into socket writes, the slow-consumer
// bounds and the held acks (--ack-hold). It knows nothing of sessions or
// commands: the connection gives it encoded packets (Send, Reply, SendAck)
// and the fan-out gives it framed update frames (SendFrames, fanout.Sink).
//
// Goroutines: Run is the writer and owns the socket's write side; anyone may
// call Send, SendAck and SendFrames (they never block); Reply is the
// reader's and blocks while the client does not read its answers. Every
// producer kicks the writer after queueing (one channel wakes it for
// everything, see kick).
//
// Slow consumers (issue 10 #6). A client's outgoing packets wait in sendq
// (acks, updates, notices) and replyq (the reader's answers); the writer
// writes them in batches. Before, the only bound was sendq's packet count,
// and a client that never read was dropped only when a write failed: 81 s
// and 2.8 MB queued in a drill. Now each connection accounts for the bytes
// waiting in sendq and for the time since the writer last made progress, and
// is a slow consumer as soon as
//   - queued bytes would exceed Config.Bytes, or
//   - packets are queued and no write has completed for Config.Age
//     (the oldest queued packet waited at least that long), or
//   - sendq is full (Config.Packets packets).
//
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
//
// Locks (docs/gateway.md): umu guards the update frames and the held acks;
// SendFrames takes it under the fan-out's zoneSub.fan, nothing else of the
// gateway's is held with it. Flusher.mu is never held together with a umu.
package sendq

import (
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
)

// Socket is the write side of the client's transport (transport.Conn).
type Socket interface {
	// WritePackets writes payloads, each framed.
	WritePackets(payloads [][]byte) error
	// WriteFrames writes payloads, then framed (already framed as on TCP),
	// in one socket write.
	WriteFrames(payloads [][]byte, framed []byte) error
	SetWriteTimeout(d time.Duration) // writer goroutine only
	BoundWrite(d time.Duration)      // any goroutine: the write under way fails after d
	Close()
	// CloseGracefully ends the connection after everything written so far
	// has been delivered, waiting at most linger (or until readerDone).
	CloseGracefully(linger time.Duration, readerDone <-chan struct{})
}

// TrySocket is a Socket that can write without waiting (transport.TCP on a
// plain TCP socket): SendFrames then writes the tick's frames itself.
type TrySocket interface {
	CanTry() bool
	// TryWrite writes what the socket takes of b now; n < len(b) with a nil
	// error means it takes no more without waiting.
	TryWrite(b []byte) (n int, err error)
}

// Owner is what the queue reads of its connection.
type Owner interface {
	// Session names the connection in the slow-consumer log line.
	Session() string
	// Outstanding is the number of the client's accepted commands not yet
	// answered: while there are some (and acks are not held), the writer
	// yields once before a write so their acks can join it.
	Outstanding() int64
}

// Config are one connection's bounds.
type Config struct {
	Packets int           // packets (and update frames) queued before SLOW_CONSUMER
	Bytes   int           // bytes queued before SLOW_CONSUMER
	Age     time.Duration // the oldest queued packet's wait before SLOW_CONSUMER
	// AckHold > 0: an Ack waits up to this long for the client's next
	// write (held acks, Flusher).
	AckHold time.Duration
}

// Metrics are the queue's series (the gateway's, resolved once).
type Metrics struct {
	BytesOut prometheus.Counter     // bytes written to clients
	Writes   prometheus.Counter     // socket writes
	Dropped  *prometheus.CounterVec // connections closed, by reason (write_error, slow_consumer)
	Slow     prometheus.Counter     // slow consumers
	SlowCode prometheus.Counter     // SLOW_CONSUMER errors
}

// Lingering and slow-consumer bounds.
const (
	// LingerTime bounds the graceful close of one connection.
	LingerTime = 2 * time.Second
	// slowKillAfter bounds the time from detection to the closed socket.
	slowKillAfter = time.Second
	// slowNoticeWait bounds the write of the SLOW_CONSUMER notice.
	slowNoticeWait = 200 * time.Millisecond
	// writeBatch is the most packets one socket write carries: everything
	// queued for the client when the writer wakes, up to this many (writes
	// coalesced per connection: one syscall for many frames).
	writeBatch = 256
)

// Queue is one connection's outgoing side.
type Queue struct {
	tr       Socket
	cfg      Config
	m        *Metrics
	log      *slog.Logger
	owner    Owner
	flusher  *Flusher
	readDone <-chan struct{} // closed when the reader ended (the graceful close waits for it)

	sendq    chan []byte   // acks, updates, notices (async producers); overflow = slow consumer
	replyq   chan []byte   // the reader's own answers; the reader blocks when it is full
	finish   chan struct{} // closed: the writer flushes sendq and closes the socket
	finished sync.Once
	dead     chan struct{} // closed when the socket is closed
	deadOnce sync.Once

	// Slow consumer detection.
	queued   atomic.Int64  // bytes queued in sendq/replyq or being written
	progress atomic.Int64  // unix ns: last completed write, or first packet into an empty queue
	slow     atomic.Bool   // set once: disconnecting as a slow consumer
	slowCh   chan struct{} // closed when slow is set: the writer sends the notice and stops

	// Update frames (SendFrames): the fan-out appends a tick's frames for
	// this client, already framed, to ubuf (under umu, after accounting
	// their bytes like a sendq packet) and kicks the writer, which swaps
	// ubuf out and writes it with whatever else is queued: one write per
	// tick, however many cells. A writer that falls behind finds several
	// ticks there and writes them at once; the byte and age bounds apply to
	// them.
	umu     sync.Mutex
	ubuf    []byte
	uframes int           // frames in ubuf
	ukick   chan struct{} // capacity 1: "something is queued for the writer"
	// Acks held for the client's next write (ackhold.go), under umu.
	held    [][]byte
	heldAt  int64 // unix ns: when the oldest held ack was queued
	heldReg bool  // on the ack flusher's list

	// Direct writes (direct.go): with a TrySocket, SendFrames writes the
	// update frames (and the held acks) on the fan-out's goroutine when
	// nothing else waits and the socket takes them, instead of waking the
	// writer: at 1,000 clients that is 20,000 goroutine wake-ups a second
	// fewer, each of which queued behind the tick's other wake-ups on the
	// shared cores. wmu is the socket's write side (the writer's writes and
	// direct writes; a direct write only tries it). rest is the tail a
	// direct write could not write; the writer writes it first.
	try    TrySocket
	wmu    sync.Mutex
	rest   []byte // under wmu
	dspare []byte // under wmu: the update buffer a direct write swaps in
	dacks  [][]byte
	dbuf   []byte
}

// New builds the outgoing side of a connection over tr; Run starts its
// writer. readDone is closed when the connection's reader has ended;
// flusher (with cfg.AckHold > 0) bounds the wait of held acks.
func New(tr Socket, cfg Config, m *Metrics, log *slog.Logger, owner Owner, readDone <-chan struct{}, flusher *Flusher) *Queue {
	q := &Queue{
		tr:       tr,
		cfg:      cfg,
		m:        m,
		log:      log,
		owner:    owner,
		flusher:  flusher,
		readDone: readDone,
		sendq:    make(chan []byte, cfg.Packets),
		replyq:   make(chan []byte, cfg.Packets),
		finish:   make(chan struct{}),
		dead:     make(chan struct{}),
		slowCh:   make(chan struct{}),
		ukick:    make(chan struct{}, 1),
	}
	if ts, ok := tr.(TrySocket); ok && ts.CanTry() {
		q.try = ts
	}
	q.progress.Store(time.Now().UnixNano())
	return q
}

// Closed says whether the socket is closed (fanout.Sink).
func (q *Queue) Closed() bool {
	select {
	case <-q.dead:
		return true
	default:
		return false
	}
}

// Dead is closed when the socket is closed.
func (q *Queue) Dead() <-chan struct{} { return q.dead }

// Finishing is closed once Finish was called.
func (q *Queue) Finishing() <-chan struct{} { return q.finish }

// Finish asks the writer to flush and close the socket (idempotent).
func (q *Queue) Finish() {
	q.finished.Do(func() {
		close(q.finish)
		q.kick()
	})
}

// kick wakes the writer (non-blocking; ukick holds one wake-up). Whoever
// queues for the writer, closes finish, dead or slowCh kicks it after.
func (q *Queue) kick() {
	select {
	case q.ukick <- struct{}{}:
	default:
	}
}

// Kill closes the socket now (idempotent).
func (q *Queue) Kill() {
	q.deadOnce.Do(func() {
		q.tr.Close()
		close(q.dead)
		q.kick()
	})
}

// Pending is what waits for the writer: bytes accounted and packets in
// sendq (tests and benchmarks wait for both to be 0).
func (q *Queue) Pending() (bytes int64, packets int) { return q.queued.Load(), len(q.sendq) }

// Run is the writer goroutine: it writes what is queued until the socket
// fails, the connection finishes (then it flushes and closes gracefully) or
// the client is a slow consumer. It kills the socket when it returns.
func (q *Queue) Run() {
	defer q.Kill()
	batch := make([][]byte, 0, writeBatch)
	var ups []byte // update frames taken from ubuf (swapped with it, so both buffers are reused)
	// unwritten is true when write refused a batch because the client is
	// a slow consumer: nothing of it reached the socket, so the stream is
	// at a frame boundary.
	unwritten := false
	write := func() bool {
		q.wmu.Lock()
		defer q.wmu.Unlock()
		if q.slow.Load() {
			// A direct write's unwritten tail: the stream is mid-frame.
			unwritten = len(q.rest) == 0 && (len(batch) > 0 || q.hasUpdates())
			return false
		}
		if len(q.rest) > 0 {
			q.m.Writes.Inc() // (its bytes were counted by the direct write)
			err := q.tr.WriteFrames(nil, q.rest)
			q.rest = q.rest[:0]
			if err != nil {
				return false
			}
			q.wrote()
		}
		ups = q.takeUpdates(ups)
		batch = q.takeAcks(batch)
		if len(batch) == 0 && len(ups) == 0 {
			return true
		}
		n := len(ups)
		for _, b := range batch {
			n += len(b)
		}
		// Counted before the write: whoever has read these bytes sees them counted.
		q.m.BytesOut.Add(float64(n))
		q.m.Writes.Inc()
		err := q.tr.WriteFrames(batch, ups)
		q.wrote()
		batch = batch[:0]
		if cap(ups) > 256<<10 {
			ups = nil // do not keep a burst's buffer forever
		}
		return err == nil
	}
	// failed ends the writer after a failed write: a slow consumer whose
	// stream is still at a frame boundary (its batch was not written) gets
	// the SLOW_CONSUMER notice.
	failed := func() {
		if q.slow.Load() {
			if unwritten {
				q.wmu.Lock()
				q.sendSlowNotice()
				q.wmu.Unlock()
			}
			return
		}
		q.m.Dropped.WithLabelValues("write_error").Inc()
	}
	// One channel wakes the writer for everything (ukick, see kick): a
	// receive on one channel costs a fraction of a select over six, and the
	// writer wakes ~20 times a second per client (one update frame a tick).
	for {
		<-q.ukick
		select {
		case <-q.dead:
			return
		case <-q.slowCh:
			q.wmu.Lock()
			if len(q.rest) == 0 { // at a frame boundary
				q.sendSlowNotice()
			}
			q.wmu.Unlock()
			return
		case <-q.finish:
			for {
				select {
				case b := <-q.sendq:
					q.unqueue(len(b))
					batch = append(batch, b)
					if len(batch) == cap(batch) && !write() {
						return
					}
				case b := <-q.replyq:
					batch = append(batch, b)
					if len(batch) == cap(batch) && !write() {
						return
					}
				default:
					if !write() {
						return
					}
					q.wmu.Lock() // no direct write after the half-close
					q.tr.CloseGracefully(LingerTime, q.readDone)
					q.wmu.Unlock()
					return
				}
			}
		default:
		}
		batch = q.more(batch)
		if !write() {
			failed()
			return
		}
		if len(q.sendq) > 0 || len(q.replyq) > 0 {
			q.kick() // the batch was full: go on without waiting
		}
	}
}

// more adds whatever else is queued, up to the batch capacity. When the
// client has commands in flight whose acks are about to arrive, it yields
// once so they can join this write: fewer, larger writes at the cost of one
// scheduler round.
func (q *Queue) more(batch [][]byte) [][]byte {
	yielded := false
	for len(batch) < cap(batch) {
		select {
		case b := <-q.sendq:
			q.unqueue(len(b))
			batch = append(batch, b)
		case b := <-q.replyq:
			batch = append(batch, b)
		default:
			if yielded || q.cfg.AckHold > 0 || q.owner.Outstanding() == 0 {
				return batch // (held acks join the write anyway: ackhold.go)
			}
			yielded = true
			runtime.Gosched()
		}
	}
	return batch
}

// Reply queues the reader's answer b to one of its packets. It blocks while
// the client does not read its answers: that stops the reader, so TCP flow
// control slows a flooding client down instead of queueing without bound. A
// client that stops reading altogether is closed by the write timeout.
func (q *Queue) Reply(b []byte) {
	select {
	case q.replyq <- b:
		q.kick()
	case <-q.dead:
	}
}

// Send queues one encoded packet. It never blocks: a full queue means the
// client does not read fast enough, and it is disconnected with
// SLOW_CONSUMER rather than slowing the publisher or the update fan-out for
// everybody else.
func (q *Queue) Send(b []byte) {
	q.SendAt(b, time.Now().UnixNano())
}

// SendAt is Send with the caller's clock (unix ns).
func (q *Queue) SendAt(b []byte, now int64) {
	select {
	case <-q.dead:
		return
	default:
	}
	if !q.queue(len(b), now) {
		return
	}
	select {
	case q.sendq <- b:
		q.kick()
	default:
		q.unqueue(len(b))
		q.slowConsumer("send queue full", q.queued.Load())
	}
}

// SendAck queues an encoded Ack: held for the client's next write when acks
// are held (Config.AckHold), else sent as any packet.
func (q *Queue) SendAck(b []byte) {
	if q.cfg.AckHold > 0 {
		q.holdAck(b)
		return
	}
	q.Send(b)
}

// queue accounts n bytes about to be queued at now (unix ns) and says whether
// the connection may queue them; false means it is a slow consumer (already
// handled).
func (q *Queue) queue(n int, now int64) bool {
	if q.slow.Load() {
		return false
	}
	total := q.queued.Add(int64(n))
	switch {
	case total == int64(n):
		q.progress.Store(now) // the queue was empty: nothing has waited yet
	case total > int64(q.cfg.Bytes):
		q.queued.Add(-int64(n))
		q.slowConsumer("send queue above the byte limit", total)
		return false
	case now-q.progress.Load() > int64(q.cfg.Age):
		q.queued.Add(-int64(n))
		q.slowConsumer("no write completed within the send queue age", total)
		return false
	}
	return true
}

// unqueue takes off bytes that queue accounted: dequeued by the writer, or
// not queued after all.
func (q *Queue) unqueue(n int) { q.queued.Add(-int64(n)) }

// wrote records a completed write.
func (q *Queue) wrote() { q.progress.Store(time.Now().UnixNano()) }

// slowConsumer starts the disconnect of a client that does not read fast
// enough: once, without blocking the caller (an ack or update callback).
func (q *Queue) slowConsumer(why string, queued int64) {
	if !q.slow.CompareAndSwap(false, true) {
		return
	}
	q.m.Slow.Inc()
	q.m.Dropped.WithLabelValues("slow_consumer").Inc()
	q.m.SlowCode.Inc()
	q.log.Warn("slow consumer disconnected", "session", q.owner.Session(), "why", why, "queued_bytes", queued, "queued_packets", len(q.sendq)+len(q.replyq))
	close(q.slowCh)
	q.kick()
	// A write blocked on a client that does not read holds the writer until
	// the write timeout: bound it to half the kill time. A client that reads
	// slowly completes it and then gets the notice; one that does not read
	// at all fails it (no notice: its stream may be mid-frame, and nothing
	// could reach it anyway). The socket is closed after slowKillAfter
	// whatever happens.
	q.tr.BoundWrite(slowKillAfter / 2)
	time.AfterFunc(slowKillAfter, q.Kill)
}

// sendSlowNotice is the writer's last act for a slow consumer whose stream is
// at a frame boundary: the SLOW_CONSUMER notice, with a short deadline.
func (q *Queue) sendSlowNotice() {
	b, _ := proto.Marshal(&schema.ServerPacket{Body: &schema.ServerPacket_Error{Error: &schema.Error{Code: schema.ErrorCode_ERROR_CODE_SLOW_CONSUMER,
		Message: "you do not read fast enough (send queue over its byte or age limit); disconnected"}}})
	q.tr.SetWriteTimeout(slowNoticeWait)
	_ = q.tr.WritePackets([][]byte{b})
}

// SendFrames queues frames, n update frames for the client (framed as on
// TCP: 4-byte length + packet; copied). Like Send it never blocks and
// accounts the bytes and the frames against the client's bounds (frames
// count as packets of sendq): past them the client is a slow consumer. The
// writer is woken once however many ticks pile up (fanout.Sink).
func (q *Queue) SendFrames(frames []byte, n int, now int64) {
	select {
	case <-q.dead:
		return
	default:
	}
	if !q.queue(len(frames), now) {
		return
	}
	q.umu.Lock()
	if q.uframes+n > q.cfg.Packets {
		q.umu.Unlock()
		q.unqueue(len(frames))
		q.slowConsumer("send queue full", q.queued.Load())
		return
	}
	q.ubuf = append(q.ubuf, frames...)
	q.uframes += n
	q.umu.Unlock()
	if q.try != nil && q.writeDirect() {
		return
	}
	select {
	case q.ukick <- struct{}{}:
	default: // already kicked: the writer takes everything in ubuf
	}
}

// takeUpdates swaps the queued update frames out for the writer: it returns
// them and keeps spare (emptied) as the next buffer to fill, so the two
// buffers are reused tick after tick.
func (q *Queue) takeUpdates(spare []byte) []byte {
	q.umu.Lock()
	out := q.ubuf
	q.ubuf, q.uframes = spare[:0], 0
	q.umu.Unlock()
	q.unqueue(len(out))
	return out
}

// hasUpdates says whether update frames or held acks wait.
func (q *Queue) hasUpdates() bool {
	q.umu.Lock()
	defer q.umu.Unlock()
	return len(q.ubuf) > 0 || len(q.held) > 0
}

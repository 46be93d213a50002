package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/codes"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/mpsc"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/packet"
)

// errTooLarge is returned by a transport for a packet above the max frame.
var errTooLarge = errors.New("packet too large")

// transport is one client socket: TCP with length-prefixed frames or a
// WebSocket with binary messages. readPacket is called by the reader
// goroutine only; writePackets by the writer goroutine only (and once by
// closeWith after the writer stopped writing).
type transport interface {
	readPacket() ([]byte, error) // valid until the next call
	writePackets(payloads [][]byte) error
	// writeFrames writes payloads, then framed: packets already framed as
	// on TCP (4-byte big-endian length + packet), in one socket write.
	writeFrames(payloads [][]byte, framed []byte) error
	setWriteTimeout(d time.Duration) // writer goroutine only
	boundWrite(d time.Duration)      // any goroutine: the write under way fails after d
	close()
	// closeGracefully ends the connection after everything written so far
	// has been delivered, waiting at most linger (or until readerDone).
	closeGracefully(linger time.Duration, readerDone <-chan struct{})
	// discard reads and drops input until the socket fails (after a fatal
	// packet, while closeGracefully lingers).
	discard()
	name() string
}

type tcpTransport struct {
	c       net.Conn
	fr      *wire.FrameReader
	wbuf    []byte
	timeout time.Duration
}

func (t *tcpTransport) readPacket() ([]byte, error) {
	b, err := t.fr.Next()
	if errors.Is(err, wire.ErrFrameTooLarge) {
		return nil, errTooLarge
	}
	return b, err
}

func (t *tcpTransport) writePackets(ps [][]byte) error { return t.writeFrames(ps, nil) }

// writeFrames frames ps into the write buffer and appends framed; framed
// alone (a tick's update frames and nothing else) is written as it is.
func (t *tcpTransport) writeFrames(ps [][]byte, framed []byte) error {
	out := framed
	if len(ps) > 0 {
		t.wbuf = t.wbuf[:0]
		for _, p := range ps {
			t.wbuf = wire.AppendFrame(t.wbuf, p)
		}
		t.wbuf = append(t.wbuf, framed...)
		out = t.wbuf
	}
	_ = t.c.SetWriteDeadline(time.Now().Add(t.timeout))
	_, err := t.c.Write(out)
	if cap(t.wbuf) > 256<<10 {
		t.wbuf = nil // do not keep a burst's buffer forever
	}
	return err
}

func (t *tcpTransport) setWriteTimeout(d time.Duration) { t.timeout = d }
func (t *tcpTransport) boundWrite(d time.Duration)      { _ = t.c.SetWriteDeadline(time.Now().Add(d)) }

func (t *tcpTransport) close()   { _ = t.c.Close() }
func (t *tcpTransport) discard() { _, _ = io.Copy(io.Discard, t.c) }

// closeGracefully half-closes (FIN after our last byte) and lets the reader
// drain what the client still sends until it closes or linger passes. Closing
// with unread input would make the kernel send a reset, and a reset can
// destroy answers the client has not read yet.
func (t *tcpTransport) closeGracefully(linger time.Duration, readerDone <-chan struct{}) {
	if tc, ok := t.c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = t.c.SetReadDeadline(time.Now().Add(linger))
	select {
	case <-readerDone:
	case <-time.After(linger):
	}
	_ = t.c.Close()
}
func (t *tcpTransport) name() string { return "tcp" }

type wsTransport struct {
	c       *websocket.Conn
	ctx     context.Context
	buf     []byte // max+1 bytes: a full buffer means the message was too large
	timeout time.Duration
}

func (t *wsTransport) readPacket() ([]byte, error) {
	typ, r, err := t.c.Reader(t.ctx)
	if err != nil {
		return nil, err
	}
	n := 0
	for {
		m, err := r.Read(t.buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if n == len(t.buf) {
			return nil, errTooLarge
		}
	}
	if typ != websocket.MessageBinary {
		return nil, errTextMessage
	}
	return t.buf[:n], nil
}

var errTextMessage = errors.New("text message")

func (t *wsTransport) writePackets(ps [][]byte) error {
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	defer cancel()
	for _, p := range ps {
		if err := t.c.Write(ctx, websocket.MessageBinary, p); err != nil {
			return err
		}
	}
	return nil
}

// writeFrames sends ps, then each frame of framed, as one binary message
// each (a WebSocket message is its own frame: no length prefix).
func (t *wsTransport) writeFrames(ps [][]byte, framed []byte) error {
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	defer cancel()
	for _, p := range ps {
		if err := t.c.Write(ctx, websocket.MessageBinary, p); err != nil {
			return err
		}
	}
	for len(framed) >= wire.FrameHeaderSize {
		n := int(binary.BigEndian.Uint32(framed))
		framed = framed[wire.FrameHeaderSize:]
		if n > len(framed) {
			return errTruncatedFrames
		}
		if err := t.c.Write(ctx, websocket.MessageBinary, framed[:n]); err != nil {
			return err
		}
		framed = framed[n:]
	}
	return nil
}

// errTruncatedFrames would mean a bug in the update fan-out's framing.
var errTruncatedFrames = errors.New("gateway: truncated update frames")

func (t *wsTransport) setWriteTimeout(d time.Duration) { t.timeout = d }

// boundWrite does nothing on a WebSocket (its writes are bounded by a
// context made per write); the slow consumer's kill timer closes it.
func (t *wsTransport) boundWrite(time.Duration) {}

func (t *wsTransport) close() { _ = t.c.CloseNow() }

// discard does nothing on a WebSocket: after an oversized message the
// stream is mid-message, and the close handshake (closeGracefully) already
// orders our last messages before the close frame.
func (t *wsTransport) discard() {}

// closeGracefully runs the WebSocket close handshake: the client reads every
// message before our close frame.
func (t *wsTransport) closeGracefully(linger time.Duration, _ <-chan struct{}) {
	done := make(chan struct{})
	go func() { _ = t.c.Close(websocket.StatusGoingAway, "closing"); close(done) }()
	select {
	case <-done:
	case <-time.After(linger):
		_ = t.c.CloseNow()
	}
}
func (t *wsTransport) name() string { return "ws" }

// conn is one client connection. Goroutines: the reader (readLoop) owns the
// session state fields marked "reader"; the writer (writeLoop) owns the
// socket's write side; anyone may call send (non-blocking). zone and cell are
// written under Service.down.mu and read atomically.
type conn struct {
	s  *Service
	tr transport

	sendq    chan []byte   // acks, updates, notices (async producers); overflow = slow consumer
	replyq   chan []byte   // the reader's own answers; the reader blocks when it is full
	finish   chan struct{} // closed: the writer flushes sendq and closes the socket
	finished sync.Once
	dead     chan struct{} // closed when the socket is closed
	readDone chan struct{} // closed when the reader goroutine ended
	deadOnce sync.Once

	limiter *rate.Limiter
	bad     *rate.Limiter // malformed frames; empty: the connection is closed (issue 10 #7)

	// Slow consumer detection (sendq.go).
	queued   atomic.Int64  // bytes queued in sendq/replyq or being written
	progress atomic.Int64  // unix ns: last completed write, or first packet into an empty queue
	slow     atomic.Bool   // set once: disconnecting as a slow consumer
	slowCh   chan struct{} // closed when slow is set: the writer sends the notice and stops

	// Session (set once by the reader at Hello, read-only afterwards; authed
	// is atomic because NATS callbacks check it).
	authed      atomic.Bool
	session     string
	player      string
	name        string
	sesSub      *nats.Subscription
	outstanding atomic.Int64  // accepted commands not yet answered (the writer waits a moment for their acks)
	lastSeq     atomic.Uint64 // highest accepted seq on this connection (written by the reader)
	resend      resendSet     // seqs <= lastSeq that may be sent again (see resend.go)
	ses         connSession   // the shared session state (session.go)

	zone     atomic.Pointer[string]  // current zone; nil before Join
	cell     atomic.Int64            // AOI centre cell, -1 unknown
	protocol atomic.Uint32           // the protocol version chosen at Hello (0 before)
	aoi      atomic.Pointer[aoiMark] // the area of interest shown in full (downstream.go); nil after a join

	// Update frames (downstream.go): the fan-out appends a tick's frames for
	// this client, already framed, to ubuf (under umu, after accounting
	// their bytes like a sendq packet) and kicks the writer, which swaps
	// ubuf out and writes it with whatever else is queued: one write per
	// tick, however many cells. A writer that falls behind finds several
	// ticks there and writes them at once; the byte and age bounds of
	// sendq.go apply to them.
	umu     sync.Mutex
	ubuf    []byte
	uframes int           // frames in ubuf
	ukick   chan struct{} // capacity 1: "ubuf has frames"

	pkt      schema.ClientPacket // reader's reusable decode target
	cmd      schema.Command      // reader's reusable command (marshalled before reuse)
	subject  string              // reader: cmd.<subjZone>, cached
	subjZone string
}

func newConn(s *Service, tr transport) *conn {
	c := &conn{
		s:        s,
		tr:       tr,
		sendq:    make(chan []byte, s.cfg.SendQueue),
		replyq:   make(chan []byte, s.cfg.SendQueue),
		finish:   make(chan struct{}),
		dead:     make(chan struct{}),
		readDone: make(chan struct{}),
		limiter:  rate.NewLimiter(rate.Limit(s.cfg.Rate), s.cfg.Burst),
		bad:      rate.NewLimiter(badFrameRefill, s.cfg.MaxBadFrames),
		slowCh:   make(chan struct{}),
		ukick:    make(chan struct{}, 1),
	}
	c.cell.Store(-1)
	c.progress.Store(time.Now().UnixNano())
	return c
}

func (c *conn) currentZone() string {
	if z := c.zone.Load(); z != nil {
		return *z
	}
	return ""
}

// serve runs the connection until the socket closes.
func (c *conn) serve() {
	go c.writeLoop()
	c.readLoop()
	close(c.readDone)
	// Reader done (EOF, error, or a fatal packet): let the writer flush what
	// is queued, then close.
	c.close()
	<-c.dead
	c.s.forget(c)
}

// close asks the writer to flush and close the socket (idempotent).
func (c *conn) close() { c.finished.Do(func() { close(c.finish) }) }

// kill closes the socket now (idempotent).
func (c *conn) kill() {
	c.deadOnce.Do(func() {
		c.tr.close()
		close(c.dead)
	})
}

// lingerTime bounds the graceful close of one connection.
const lingerTime = 2 * time.Second

// writeBatch is the most packets one socket write carries: everything queued
// for the client when the writer wakes, up to this many (writes coalesced per
// connection: one syscall for many frames).
const writeBatch = 256

func (c *conn) writeLoop() {
	defer c.kill()
	batch := make([][]byte, 0, writeBatch)
	var ups []byte // update frames taken from ubuf (swapped with it, so both buffers are reused)
	// unwritten is true when write refused a batch because the client is
	// a slow consumer: nothing of it reached the socket, so the stream is
	// at a frame boundary.
	unwritten := false
	write := func() bool {
		if c.slow.Load() {
			unwritten = len(batch) > 0 || c.hasUpdates()
			return false
		}
		ups = c.takeUpdates(ups)
		if len(batch) == 0 && len(ups) == 0 {
			return true
		}
		n := len(ups)
		for _, b := range batch {
			n += len(b)
		}
		// Counted before the write: whoever has read these bytes sees them counted.
		c.s.m.bytesOut.Add(float64(n))
		c.s.m.writes.Inc()
		err := c.tr.writeFrames(batch, ups)
		c.wrote()
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
		if c.slow.Load() {
			if unwritten {
				c.sendSlowNotice()
			}
			return
		}
		c.s.m.dropped.WithLabelValues("write_error").Inc()
	}
	for {
		select {
		case b := <-c.sendq:
			c.unqueue(len(b))
			batch = append(batch, b)
			batch = c.more(batch)
			if !write() {
				failed()
				return
			}
		case b := <-c.replyq:
			batch = append(batch, b)
			batch = c.more(batch)
			if !write() {
				failed()
				return
			}
		case <-c.ukick:
			batch = c.more(batch)
			if !write() {
				failed()
				return
			}
		case <-c.slowCh:
			c.sendSlowNotice()
			return
		case <-c.finish:
			for {
				select {
				case b := <-c.sendq:
					c.unqueue(len(b))
					batch = append(batch, b)
					if len(batch) == cap(batch) && !write() {
						return
					}
				case b := <-c.replyq:
					batch = append(batch, b)
					if len(batch) == cap(batch) && !write() {
						return
					}
				default:
					if !write() {
						return
					}
					c.tr.closeGracefully(lingerTime, c.readDone)
					return
				}
			}
		case <-c.dead:
			return
		}
	}
}

// more adds whatever else is queued, up to the batch capacity. When the
// client has commands in flight whose acks are about to arrive, it yields
// once so they can join this write: fewer, larger writes at the cost of one
// scheduler round.
func (c *conn) more(batch [][]byte) [][]byte {
	yielded := false
	for len(batch) < cap(batch) {
		select {
		case b := <-c.sendq:
			c.unqueue(len(b))
			batch = append(batch, b)
		case b := <-c.replyq:
			batch = append(batch, b)
		default:
			if yielded || c.outstanding.Load() == 0 {
				return batch
			}
			yielded = true
			runtime.Gosched()
		}
	}
	return batch
}

// reply queues the reader's answer to one of its packets. It blocks while the
// client does not read its answers: that stops the reader, so TCP flow
// control slows a flooding client down instead of queueing without bound. A
// client that stops reading altogether is closed by the write timeout.
func (c *conn) reply(p *schema.ServerPacket) {
	b, err := proto.Marshal(p)
	if err != nil {
		c.s.log.Error("marshal server packet", "err", err)
		return
	}
	select {
	case c.replyq <- b:
	case <-c.dead:
	}
}

// replyError answers the reader's packet seq with an Error.
func (c *conn) replyError(seq uint64, code schema.ErrorCode, msg string) {
	c.s.m.errorCode(code)
	c.s.tr.refused(c, seq, code, msg)
	c.reply(errPacket(seq, code, msg))
}

// send queues one packet. It never blocks: a full queue means the client does
// not read fast enough, and it is disconnected with SLOW_CONSUMER rather than
// slowing the publisher or the update fan-out for everybody else.
func (c *conn) send(p *schema.ServerPacket) {
	b, err := proto.Marshal(p)
	if err != nil {
		c.s.log.Error("marshal server packet", "err", err)
		return
	}
	c.sendBytes(b)
}

func (c *conn) sendBytes(b []byte) {
	c.sendBytesAt(b, time.Now().UnixNano())
}

// sendBytesAt queues b; now is the caller's clock (the fan-out reads it once
// per batch).
func (c *conn) sendBytesAt(b []byte, now int64) {
	select {
	case <-c.dead:
		return
	default:
	}
	if !c.queue(len(b), now) {
		return
	}
	select {
	case c.sendq <- b:
	default:
		c.unqueue(len(b))
		c.slowConsumer("send queue full", c.queued.Load())
	}
}

func errPacket(seq uint64, code schema.ErrorCode, msg string) *schema.ServerPacket {
	return &schema.ServerPacket{AckSeq: seq, Body: &schema.ServerPacket_Error{Error: &schema.Error{Code: code, Message: msg}}}
}

func (c *conn) sendError(seq uint64, code schema.ErrorCode, msg string) {
	c.s.m.errorCode(code)
	c.s.tr.refused(c, seq, code, msg)
	c.send(errPacket(seq, code, msg))
}

// replyBusyFor answers Busy to a command that was not accepted. Its seq stays
// usable: a fresh seq is remembered as resendable (a later seq may be
// accepted before the client resends it); a resend keeps its entry.
func (c *conn) replyBusyFor(seq uint64, resend bool) {
	if !resend {
		c.resend.add(seq, 0)
	}
	c.replyBusy(seq)
}

func (c *conn) replyBusy(seq uint64) {
	c.s.m.busy.Inc()
	c.s.tr.refused(c, seq, schema.ErrorCode_ERROR_CODE_UNSPECIFIED, "busy")
	c.reply(&schema.ServerPacket{AckSeq: seq, Body: &schema.ServerPacket_Busy{Busy: &schema.Busy{RetryAfterMs: 50}}})
}

// sendAck queues an Ack. It is the hottest answer, so it is encoded by hand
// (TestAckEncoding checks it against proto.Marshal).
func (c *conn) sendAck(seq, streamSeq uint64, dup bool) {
	c.sendBytes(appendAck(make([]byte, 0, 24), seq, streamSeq, dup))
}

// appendAck encodes ServerPacket{ack_seq: seq, ack: Ack{stream_seq, duplicate}}.
func appendAck(b []byte, seq, streamSeq uint64, dup bool) []byte {
	var body [12]byte
	inner := body[:0]
	if streamSeq != 0 {
		inner = protowire.AppendTag(inner, 1, protowire.VarintType)
		inner = protowire.AppendVarint(inner, streamSeq)
	}
	if dup {
		inner = protowire.AppendTag(inner, 2, protowire.VarintType)
		inner = protowire.AppendVarint(inner, 1)
	}
	if seq != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, seq)
	}
	b = protowire.AppendTag(b, 11, protowire.BytesType)
	return protowire.AppendBytes(b, inner)
}

// readLoop reads and handles packets until the socket fails or a packet is
// fatal (too large: the stream is out of sync).
func (c *conn) readLoop() {
	helloBy := time.AfterFunc(c.s.cfg.HelloTimeout, func() {
		if !c.authed.Load() {
			c.sendError(0, schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "no Hello within the hello timeout")
			c.s.m.dropped.WithLabelValues("hello_timeout").Inc()
			c.close()
		}
	})
	defer helloBy.Stop()
	for {
		b, err := c.tr.readPacket()
		if err != nil {
			switch {
			case errors.Is(err, errTooLarge):
				c.replyError(0, schema.ErrorCode_ERROR_CODE_TOO_LARGE, fmt.Sprintf("packet exceeds %d bytes; closing", c.s.cfg.MaxFrame))
				c.s.m.dropped.WithLabelValues("too_large").Inc()
				c.close()
				c.tr.discard()
				return
			case errors.Is(err, wire.ErrEmptyFrame), errors.Is(err, errTextMessage):
				if c.limited(0) {
					continue
				}
				c.malformed(0, err.Error())
				continue
			default:
				c.s.m.dropped.WithLabelValues("read").Inc()
				return
			}
		}
		c.s.m.bytesIn.Add(float64(len(b)))
		select {
		case <-c.finish:
			continue // closing: discard until the client closes (see closeGracefully)
		case <-c.dead:
			return
		default:
		}
		// Every frame counts against the rate limit, decodable or not
		// (issue 10 #7): a flood of garbage costs no more than a flood of
		// valid packets.
		if c.limited(packet.PeekSeq(b)) {
			continue
		}
		c.handle(b)
	}
}

// badFrameRefill is the rate at which a connection earns back its malformed
// frame allowance (Config.MaxBadFrames is the burst).
const badFrameRefill = rate.Limit(1)

// limited answers RATE_LIMITED for seq when the connection's token bucket is
// empty.
func (c *conn) limited(seq uint64) bool {
	if c.limiter.Allow() {
		return false
	}
	c.replyError(seq, schema.ErrorCode_ERROR_CODE_RATE_LIMITED, "rate limit exceeded; slow down")
	return true
}

// malformed answers a frame that does not decode. A connection that keeps
// sending them (more than MaxBadFrames, refilled one per second) is closed:
// it is out of sync or hostile, and each answer costs us a write.
func (c *conn) malformed(seq uint64, msg string) {
	if c.bad.Allow() {
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_MALFORMED, msg)
		return
	}
	c.replyError(seq, schema.ErrorCode_ERROR_CODE_MALFORMED, msg+"; too many malformed packets, closing")
	c.s.m.dropped.WithLabelValues("malformed").Inc()
	c.close()
}

// handle validates one packet and answers it, or enqueues it as a command.
// Every packet with a seq gets exactly one answer: Welcome, Pong, Error, Busy,
// or (later, from the publisher) Ack or Error INTERNAL.
func (c *conn) handle(b []byte) {
	received := time.Now()
	p := &c.pkt
	if e := packet.Decode(b, p); e != nil {
		// Every answer carries the seq it answers when it is readable
		// (issue 10 #8), even if the body is missing or does not decode.
		seq := p.Seq
		if seq == 0 {
			seq = packet.PeekSeq(b)
		}
		c.malformed(seq, e.Msg)
		return
	}
	seq := p.Seq
	if e := packet.Validate(p, c.s.limits); e != nil {
		c.replyError(seq, e.Code, e.Msg)
		return
	}
	switch body := p.Body.(type) {
	case *schema.ClientPacket_Hello:
		c.hello(seq, body.Hello)
		return
	case *schema.ClientPacket_Ping:
		c.reply(&schema.ServerPacket{AckSeq: seq, Body: &schema.ServerPacket_Pong{Pong: &schema.Pong{ClientTimeNs: body.Ping.ClientTimeNs, ServerTimeNs: received.UnixNano()}}})
		return
	case *schema.ClientPacket_WorldInfo:
		c.replyWorld(seq)
		return
	}
	if !c.authed.Load() {
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "send Hello first")
		return
	}
	if a := p.GetAttack(); a != nil && a.TargetId == c.player {
		// The world's rules refuse it as INVALID; refuse it before the Ack
		// (issue 10 #9: what the gateway accepts, only game state refuses).
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_INVALID, "cannot attack yourself")
		return
	}
	// A seq at or below the last accepted one is a resend: accepted only
	// for commands the client was told to resend (resend.go).
	// Seqs of earlier connections of a resumed session follow the shared
	// session record (session.go); acceptSeq also reserves seqs there.
	digest, verified, ok := c.acceptSeq(seq, b)
	if !ok {
		return
	}
	last := c.lastSeq.Load()
	resendKey, resend := uint64(0), false
	if seq <= last && seq > c.ses.resumedTo {
		if resendKey, resend = c.resend.lookup(seq); !resend {
			c.replyError(seq, schema.ErrorCode_ERROR_CODE_STALE_SEQ, fmt.Sprintf("seq %d is not above %d", seq, last))
			return
		}
	}
	zone := c.currentZone()
	if j, ok := p.Body.(*schema.ClientPacket_Join); ok {
		zone = j.Join.Zone
	} else if zone == "" {
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_NOT_IN_ZONE, "join a zone first")
		return
	}
	if c.s.draining.Load() {
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "gateway is shutting down; reconnect")
		return
	}
	if c.s.pub.inflight.Load() >= int64(c.s.cfg.MaxPending) {
		c.replyBusyFor(seq, resend)
		return
	}
	cmd := &c.cmd
	cmd.Reset()
	cmd.CommandId = wire.CommandID(c.session, seq)
	cmd.SessionId, cmd.PlayerId, cmd.PlayerName = c.session, c.player, c.name
	cmd.Zone, cmd.ClientSeq, cmd.ReceivedAtNs = zone, seq, received.UnixNano()
	wire.SetCommandBody(cmd, p)
	if resend && resendKey != 0 && resendKey != commandKey(cmd) {
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_SEQ_REUSED, fmt.Sprintf("seq %d was used for a different command; resend that command or use a seq above %d", seq, last))
		return
	}
	it := newItem()
	var err error
	if it.buf, err = marshalCmd.MarshalAppend(it.buf[:0], cmd); err != nil {
		freeItem(it)
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_INTERNAL, "encode command")
		return
	}
	if zone != c.subjZone {
		c.subjZone, c.subject = zone, wire.CommandSubject(zone)
	}
	it.c, it.seq, it.received = c, seq, received
	it.setHeaders(cmd.CommandId, c.session, c.player, zone, digestHeader(digest))
	it.verified = verified || (resend && resendKey != 0)
	it.msg.Subject, it.msg.Data = c.subject, it.buf
	span := c.s.tr.startCommand(received, cmd, &it.msg)
	it.span = span
	c.outstanding.Add(1) // before TryEnqueue: the ack may come back at once
	switch err := c.s.ring.TryEnqueue(it); {
	case err == nil:
	case errors.Is(err, mpsc.ErrFull):
		c.outstanding.Add(-1)
		span.SetStatus(codes.Error, "busy")
		span.End()
		freeItem(it)
		c.replyBusyFor(seq, resend)
		return
	default: // closed: draining
		c.outstanding.Add(-1)
		span.End()
		freeItem(it)
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "gateway is shutting down; reconnect")
		return
	}
	c.s.m.accepted.Inc()
	c.acceptedSeq(seq, digest)
	if resend {
		c.resend.remove(seq)
	} else if seq > last {
		c.lastSeq.Store(seq) // a resumed session's resend (seq <= resumedTo) never lowers it
	}
	if c.s.ring.Len() >= c.s.cfg.BatchSize {
		// The publisher is behind: let it run instead of reading more. With
		// more runnable readers than cores, the one consumer otherwise gets
		// a 1/N share of the CPU and becomes the bottleneck.
		runtime.Gosched()
	}
	// Downstream state follows what the client asked for; the world may
	// still reject it (then a session notice corrects it).
	switch body := p.Body.(type) {
	case *schema.ClientPacket_Join:
		if zone != c.currentZone() {
			c.s.down.join(c, zone, -1)
		}
	case *schema.ClientPacket_Leave:
		c.s.down.leave(c)
	case *schema.ClientPacket_Move:
		if mz := c.s.cfg.Map; mz.InBounds(body.Move.X, body.Move.Y) {
			c.s.down.setCell(c, int64(mz.CellOf(body.Move.X, body.Move.Y)))
		}
	}
}

// onNotice handles a world -> gateway notice for this session (NATS goroutine).
func (c *conn) onNotice(m *nats.Msg) {
	var n schema.SessionNotice
	if err := proto.Unmarshal(m.Data, &n); err != nil {
		c.s.log.Warn("bad session notice", "subject", m.Subject, "err", err)
		return
	}
	switch b := n.Body.(type) {
	case *schema.SessionNotice_Rejected:
		c.s.m.notices.WithLabelValues("rejected").Inc()
		c.sendError(b.Rejected.ClientSeq, schema.ErrorCode_ERROR_CODE_REJECTED, b.Rejected.Reason)
	case *schema.SessionNotice_ZoneChanged:
		zc := b.ZoneChanged
		c.s.m.notices.WithLabelValues("zone_changed").Inc()
		cell := int64(-1)
		if c.s.cfg.Map.InBounds(zc.X, zc.Y) {
			cell = int64(c.s.cfg.Map.CellOf(zc.X, zc.Y))
		}
		c.s.down.join(c, zc.Zone, cell)
		c.send(&schema.ServerPacket{Body: &schema.ServerPacket_ZoneChanged{ZoneChanged: zc}})
	}
}

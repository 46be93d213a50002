package gateway

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/codes"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/mpsc"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/fanout"
	"github.com/realmstream/realmstream/services/gateway/internal/ingest"
	"github.com/realmstream/realmstream/services/gateway/internal/packet"
	"github.com/realmstream/realmstream/services/gateway/internal/sendq"
	"github.com/realmstream/realmstream/services/gateway/internal/transport"
)

// conn is one client connection. Goroutines: the reader (readLoop) owns the
// session state fields marked "reader"; the writer (q.Run, internal/sendq)
// owns the socket's write side; anyone may call send (non-blocking). down (zone,
// area of interest) is the fan-out's (internal/fanout).
type conn struct {
	s  *Service
	tr transport.Conn

	q        *sendq.Queue  // the outgoing side: queues, writer, slow-consumer bounds, held acks (internal/sendq)
	readDone chan struct{} // closed when the reader goroutine ended

	limiter *rate.Limiter
	bad     *rate.Limiter // malformed frames; empty: the connection is closed (issue 10 #7)

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

	down fanout.Member // zone, area of interest, protocol (the fan-out's; joined by Service.down)

	pkt      schema.ClientPacket // reader's reusable decode target
	dec      packet.Decoder      // reader's: decodes into pkt, reusing its bodies
	idBuf    []byte              // reader's: the command id and digest being built
	cmd      schema.Command      // reader's reusable command (marshalled before reuse)
	subject  string              // reader: cmd.<subjZone>, cached
	subjZone string
}

func newConn(s *Service, tr transport.Conn) *conn {
	c := &conn{
		s:        s,
		tr:       tr,
		readDone: make(chan struct{}),
		limiter:  rate.NewLimiter(rate.Limit(s.cfg.Rate), s.cfg.Burst),
		bad:      rate.NewLimiter(badFrameRefill, s.cfg.MaxBadFrames),
	}
	c.q = sendq.New(tr, sendq.Config{Packets: s.cfg.SendQueue, Bytes: s.cfg.SendQueueBytes, Age: s.cfg.SendQueueAge, AckHold: s.cfg.AckHold},
		s.sq, s.log, c, c.readDone, &s.acks)
	c.down.Init(c.q)
	c.ses.Init(s.store, c, s.log, s.dupWindow)
	return c
}

func (c *conn) currentZone() string { return c.down.Zone() }

// Session, Player and Zone name the connection in its refusal spans
// (tracing.Client), read only when such a span is made. Session and Player
// are the reader's, set at Hello: a refusal from another goroutine (an ack
// callback after Hello, the Hello timer before it) reads them as it always
// did, only when tracing is on and the span budget allows.
func (c *conn) Session() string { return c.session }
func (c *conn) Player() string  { return c.player }
func (c *conn) Zone() string    { return c.currentZone() }

// Outstanding is the number of accepted commands not yet answered
// (sendq.Owner: the writer waits a moment for their acks).
func (c *conn) Outstanding() int64 { return c.outstanding.Load() }

// serve runs the connection until the socket closes.
func (c *conn) serve() {
	go c.q.Run()
	c.readLoop()
	close(c.readDone)
	// Reader done (EOF, error, or a fatal packet): let the writer flush what
	// is queued, then close.
	c.close()
	<-c.q.Dead()
	c.s.forget(c)
}

// close asks the writer to flush and close the socket (idempotent).
func (c *conn) close() { c.q.Finish() }

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
	c.q.Reply(b)
}

// replyError answers the reader's packet seq with an Error.
func (c *conn) replyError(seq uint64, code schema.ErrorCode, msg string) {
	c.s.m.errorCode(code)
	c.s.tr.Refused(c, seq, code, msg)
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

func (c *conn) sendBytes(b []byte) { c.q.Send(b) }

func errPacket(seq uint64, code schema.ErrorCode, msg string) *schema.ServerPacket {
	return &schema.ServerPacket{AckSeq: seq, Body: &schema.ServerPacket_Error{Error: &schema.Error{Code: code, Message: msg}}}
}

func (c *conn) sendError(seq uint64, code schema.ErrorCode, msg string) {
	c.s.m.errorCode(code)
	c.s.tr.Refused(c, seq, code, msg)
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
	c.s.tr.Refused(c, seq, schema.ErrorCode_ERROR_CODE_UNSPECIFIED, "busy")
	c.reply(&schema.ServerPacket{AckSeq: seq, Body: &schema.ServerPacket_Busy{Busy: &schema.Busy{RetryAfterMs: 50}}})
}

// sendAck queues an Ack. It is the hottest answer, so it is encoded by hand
// (TestAckEncoding checks it against proto.Marshal).
func (c *conn) sendAck(seq, streamSeq uint64, dup bool) {
	c.q.SendAck(appendAck(make([]byte, 0, 24), seq, streamSeq, dup))
}

// Acked answers a stored command (ingest.Client; the ack goroutine).
func (c *conn) Acked(seq, streamSeq uint64, dup bool) {
	c.outstanding.Add(-1)
	c.sendAck(seq, streamSeq, dup)
}

// CheckDuplicate answers a command JetStream called a duplicate that the
// reader had not verified (ingest.Client; session.go's onDuplicate).
func (c *conn) CheckDuplicate(seq, streamSeq uint64, digest string) {
	c.outstanding.Add(-1)
	c.onDuplicate(seq, streamSeq, digest)
}

// Failed answers a command that was not stored or whose outcome is unknown
// (ingest.Client): its seq may be resent with the same command (resend.go).
func (c *conn) Failed(seq, key uint64, code schema.ErrorCode, msg string) {
	c.outstanding.Add(-1)
	c.resend.add(seq, key)
	c.sendError(seq, code, msg)
}

var marshalCmd = proto.MarshalOptions{}

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
		b, err := c.tr.ReadPacket()
		if err != nil {
			switch {
			case errors.Is(err, transport.ErrTooLarge):
				c.replyError(0, schema.ErrorCode_ERROR_CODE_TOO_LARGE, fmt.Sprintf("packet exceeds %d bytes; closing", c.s.cfg.MaxFrame))
				c.s.m.dropped.WithLabelValues("too_large").Inc()
				c.close()
				c.tr.Discard()
				return
			case errors.Is(err, wire.ErrEmptyFrame), errors.Is(err, transport.ErrTextMessage):
				if c.limitedAt(time.Now(), nil) {
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
		case <-c.q.Finishing():
			continue // closing: discard until the client closes (see closeGracefully)
		case <-c.q.Dead():
			return
		default:
		}
		// Every frame counts against the rate limit, decodable or not
		// (issue 10 #7): a flood of garbage costs no more than a flood of
		// valid packets.
		now := time.Now() // one clock read for the rate limit and the command
		if c.limitedAt(now, b) {
			continue
		}
		c.handle(b, now)
	}
}

// badFrameRefill is the rate at which a connection earns back its malformed
// frame allowance (Config.MaxBadFrames is the burst).
const badFrameRefill = rate.Limit(1)

// limitedAt answers RATE_LIMITED to frame b, read at now, when the
// connection's token bucket is empty; the seq is peeked only for the answer
// (0 for an empty frame).
func (c *conn) limitedAt(now time.Time, b []byte) bool {
	if c.limiter.AllowN(now, 1) {
		return false
	}
	c.replyError(packet.PeekSeq(b), schema.ErrorCode_ERROR_CODE_RATE_LIMITED, "rate limit exceeded; slow down")
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
// or (later, from the publisher) Ack or Error INTERNAL. received is when it
// was read.
func (c *conn) handle(b []byte, received time.Time) {
	p := &c.pkt
	if e := c.dec.Decode(b, p); e != nil {
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
	if seq <= last && seq > c.ses.ResumedTo() {
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
	if c.s.pub.Inflight() >= int64(c.s.cfg.MaxPending) {
		c.replyBusyFor(seq, resend)
		return
	}
	// The command id and the digest header in one string (one allocation).
	c.idBuf = strconv.AppendUint(wire.AppendCommandID(c.idBuf[:0], c.session, seq), digest, 16)
	ids := string(c.idBuf)
	idLen := len(ids) - digestLen(digest)
	cmd := &c.cmd
	cmd.Reset()
	cmd.CommandId = ids[:idLen]
	cmd.SessionId, cmd.PlayerId, cmd.PlayerName = c.session, c.player, c.name
	cmd.Zone, cmd.ClientSeq, cmd.ReceivedAtNs = zone, seq, received.UnixNano()
	wire.SetCommandBody(cmd, p)
	if resend && resendKey != 0 && resendKey != ingest.CommandKey(cmd) {
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_SEQ_REUSED, fmt.Sprintf("seq %d was used for a different command; resend that command or use a seq above %d", seq, last))
		return
	}
	it := ingest.NewItem()
	var err error
	raw, rawOK := c.dec.Body()
	if it.Buf, err = appendCommand(it.Buf[:0], cmd, raw, rawOK); err != nil {
		it.Free()
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_INTERNAL, "encode command")
		return
	}
	if zone != c.subjZone {
		c.subjZone, c.subject = zone, wire.CommandSubject(zone)
	}
	it.Client, it.Seq, it.Received = c, seq, received
	it.SetHeaders(cmd.CommandId, c.session, c.player, zone, ids[idLen:]) // ids[idLen:] == digestHeader(digest)
	it.Verified = verified || (resend && resendKey != 0)
	it.Msg.Subject, it.Msg.Data = c.subject, it.Buf
	span := c.s.tr.StartCommand(received, cmd, &it.Msg)
	it.Span = span
	// Fresh: the first use of the seq, above every seq of the session's
	// earlier connections, and not traced (a traced command keeps its own
	// traceparent): it may share a batch message (--command-batch).
	it.Batchable = !resend && !it.Verified && seq > last && seq > c.ses.ResumedTo() && !span.IsRecording()
	c.outstanding.Add(1) // before TryEnqueue: the ack may come back at once
	switch err := c.s.pub.Enqueue(it); {
	case err == nil:
	case errors.Is(err, mpsc.ErrFull):
		c.outstanding.Add(-1)
		span.SetStatus(codes.Error, "busy")
		span.End()
		it.Free()
		c.replyBusyFor(seq, resend)
		return
	default: // closed: draining
		c.outstanding.Add(-1)
		span.End()
		it.Free()
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
	if c.s.pub.Len() >= c.s.cfg.BatchSize {
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
			c.s.down.Join(&c.down, c.player, zone, -1)
		}
	case *schema.ClientPacket_Leave:
		c.s.down.Leave(&c.down)
	case *schema.ClientPacket_Move:
		if mz := c.s.cfg.Map; mz.InBounds(body.Move.X, body.Move.Y) {
			c.s.down.SetCell(&c.down, int64(mz.CellOf(body.Move.X, body.Move.Y)))
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
		c.s.down.Join(&c.down, c.player, zc.Zone, cell)
		c.send(&schema.ServerPacket{Body: &schema.ServerPacket_ZoneChanged{ZoneChanged: zc}})
	}
}

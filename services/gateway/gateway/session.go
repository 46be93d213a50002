package gateway

// The session half of a connection: Hello (decided by internal/handshake:
// versions, tokens, revocation, resume on any gateway; answered and opened
// here), the connection's share of the shared session record
// (internal/session), the hand-over and the duplicate check.

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/auth"
	"github.com/realmstream/realmstream/services/gateway/internal/handshake"
	"github.com/realmstream/realmstream/services/gateway/internal/session"
)

// Protocol versions this gateway serves (internal/handshake).
const (
	MinProtocol = handshake.MinProtocol
	MaxProtocol = handshake.MaxProtocol
)

// storeTimeout bounds one call to the session or deny-list bucket.
const storeTimeout = session.StoreTimeout

// takeoverTimeout bounds the wait for a session's previous connection to
// hand it over (handshake.TakeoverTimeout).
const takeoverTimeout = handshake.TakeoverTimeout

// helloTimeout bounds the store calls and the hand-over of one Hello: the
// deny-list check, the hand-over wait, the record's read and its write.
// One storeTimeout for all of them let a slow hand-over leave no time for
// the read ("cannot read the session; retry" in CI's TestSessionLifetime).
const helloTimeout = takeoverTimeout + 2*storeTimeout

// keys returns the token key ring of c.
func (c *Config) keys() ([]auth.Key, error) {
	keys, err := auth.ParseKeys(c.TokenKeys)
	if err != nil {
		return nil, fmt.Errorf("--token-keys: %w", err)
	}
	if c.TokenKey != "" {
		keys = append(keys, auth.Key{ID: "default", Secret: []byte(c.TokenKey)})
	}
	if len(keys) == 0 && c.Dev {
		keys = append(keys, auth.Key{ID: "dev", Secret: []byte(DevTokenKey)})
	}
	for _, k := range keys {
		if len(k.Secret) < auth.MinKeyBytes {
			return nil, fmt.Errorf("token key %q: want at least %d bytes", k.ID, auth.MinKeyBytes)
		}
	}
	return keys, nil
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// connSession is the session state of one connection: its share of the
// shared record (session.Conn: seqs, reservation, hand-over, final record)
// and what the reader set up for it at Hello.
type connSession struct {
	session.Conn
	endTimer *time.Timer // fires at the session's absolute end
	takeSub  *nats.Subscription
}

// LastSeq, Refuse, Busy and Close are what the session state reads of the
// connection and how it answers (session.Owner; called under its lock).
func (c *conn) LastSeq() uint64 { return c.lastSeq.Load() }
func (c *conn) Refuse(seq uint64, code schema.ErrorCode, msg string) {
	c.replyError(seq, code, msg)
}
func (c *conn) Busy(seq uint64) { c.replyBusy(seq) }
func (c *conn) Close()          { c.close() }

// hello authenticates the connection and opens or resumes its session
// (internal/handshake decides; the connection answers and opens).
func (c *conn) hello(seq uint64, h *schema.Hello) {
	if c.authed.Load() {
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_INVALID, "already said Hello")
		return
	}
	fail := func(code schema.ErrorCode, reason, msg string) {
		c.replyError(seq, code, msg)
		if reason != "" {
			c.s.m.dropped.WithLabelValues(reason).Inc()
		}
		c.close()
	}
	refused := func(r *handshake.Refusal) { fail(r.Code, r.Reason, r.Msg) }
	hs := c.s.hs
	ver, r := hs.Protocol(h)
	if r != nil {
		refused(r)
		return
	}
	c.down.SetProtocol(ver) // before the first join: the fan-out picks the frame shape by it
	now := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), helloTimeout)
	defer cancel()
	claims, r := hs.Authenticate(ctx, h, now)
	if r != nil {
		refused(r)
		return
	}
	sid, rec, rev, r := hs.Session(ctx, h, claims, now)
	if r != nil {
		refused(r)
		return
	}
	life := c.s.cfg.SessionLifetime
	end := rec.Start.Add(life)
	cs := &c.ses
	// Conditional on the revision read: a connection that wrote the record
	// in between (another resume, or the close of the connection the
	// session left, delayed) makes this resume fail rather than lose that
	// write.
	if err := cs.Open(ctx, sid, rec, rev); err != nil {
		c.s.log.Warn("session record", "session", sid, "err", err)
		if errors.Is(err, session.ErrMoved) {
			fail(schema.ErrorCode_ERROR_CODE_INTERNAL, "session_moved", "the session changed while resuming (another connection wrote it); resume again")
			return
		}
		fail(schema.ErrorCode_ERROR_CODE_INTERNAL, "session_store", "cannot store the session; retry")
		return
	}
	claims.Session, claims.SessionStart = sid, rec.Start
	claims.IssuedAt, claims.ID = now, ""
	claims.Expiry = minTime(now.Add(c.s.cfg.TokenTTL), end)
	tok, err := c.s.signer.Issue(claims)
	if err != nil {
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_INVALID, err.Error())
		return
	}
	c.session, c.player, c.name = sid, claims.Player, claims.Name
	sub, err := c.s.nc.Subscribe(wire.SessionSubject(sid), c.onNotice)
	if err == nil {
		cs.takeSub, err = c.s.nc.Subscribe(handshake.TakeoverSubject(sid), c.onTakeover)
	}
	if err != nil {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
		fail(schema.ErrorCode_ERROR_CODE_INTERNAL, "subscribe", "subscribe session notices")
		return
	}
	c.sesSub = sub
	cs.endTimer = time.AfterFunc(end.Sub(now), func() {
		c.sendError(0, schema.ErrorCode_ERROR_CODE_SESSION_EXPIRED, "the session's lifetime is over; log in again")
		c.close()
	})
	c.authed.Store(true)
	w := &schema.Welcome{
		SessionId: sid, PlayerId: claims.Player, PlayerName: claims.Name, Token: tok, LastSeq: cs.ResumedTo(),
		ServerTimeNs: now.UnixNano(), ServerVersion: c.s.cfg.Version, ProtocolVersion: ver, Limits: c.s.clientLimits(),
		TokenExpiresAtNs: claims.Expiry.UnixNano(), SessionExpiresAtNs: end.UnixNano(), GatewayId: c.s.cfg.InstanceID,
	}
	if h.WantWorld {
		w.World = c.s.world
	}
	c.reply(&schema.ServerPacket{AckSeq: seq, Body: &schema.ServerPacket_Welcome{Welcome: w}})
	if rec.Zone != "" {
		c.s.down.Join(&c.down, c.player, rec.Zone, -1)
	}
	c.s.log.Debug("session opened", "session", sid, "player", claims.Player, "transport", c.tr.Name(),
		"resumed", h.ResumeSession != "", "last_seq", cs.ResumedTo(), "protocol", ver, "client", h.ClientName, "client_version", h.ClientVersion)
}

// onTakeover hands the session to a new connection (NATS goroutine): stop
// accepting, write the exact record, answer, close.
func (c *conn) onTakeover(m *nats.Msg) {
	c.ses.WriteFinal(true)
	_ = m.Respond([]byte("ok"))
	c.sendError(0, schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "session resumed on another connection")
	c.close()
}

// closeSession runs once when the connection has closed.
func (c *conn) closeSession() {
	cs := &c.ses
	if cs.endTimer != nil {
		cs.endTimer.Stop()
	}
	if cs.takeSub != nil {
		_ = cs.takeSub.Unsubscribe()
	}
	cs.WriteFinal(false)
}

// acceptSeq decides whether the command seq with packet bytes pkt may be
// accepted, and answers it when not (session.Conn.Accept, under the session
// lock). verified: seq is a resend whose command matched the recorded one.
// On ok the caller calls acceptedSeq(seq, digest) once the command is
// enqueued.
func (c *conn) acceptSeq(seq uint64, pkt []byte) (digest uint64, verified, ok bool) {
	digest = session.Digest(pkt)
	verified, ok = c.ses.Accept(seq, digest)
	if !ok {
		return 0, false, false
	}
	return digest, verified, true
}

// acceptedSeq records an accepted command (called by the reader after the
// enqueue succeeded).
func (c *conn) acceptedSeq(seq, digest uint64) { c.ses.Accepted(seq, digest) }

// onDuplicate answers a command JetStream called a duplicate: an Ack
// duplicate when the stored command has the same digest, SEQ_REUSED when it
// is another command that used the same id. It runs off the ack goroutine
// (it reads the stored message).
func (c *conn) onDuplicate(seq, streamSeq uint64, digest string) {
	go func() {
		c.s.dupSem <- struct{}{}
		defer func() { <-c.s.dupSem }()
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		m, err := c.s.cmdStream.GetMsg(ctx, streamSeq)
		switch {
		case err != nil:
			c.sendError(seq, schema.ErrorCode_ERROR_CODE_INTERNAL, "JetStream already has this command id and the stored command could not be read to compare; do not resend with this seq")
		case digest != "" && m.Header.Get(wire.HeaderCmdDigest) != "" && m.Header.Get(wire.HeaderCmdDigest) != digest:
			c.sendError(seq, schema.ErrorCode_ERROR_CODE_SEQ_REUSED, fmt.Sprintf("seq %d was already used in this session for a different command (stream seq %d); use a new seq", seq, streamSeq))
		default:
			c.sendAck(seq, streamSeq, true)
		}
	}()
}

func digestHeader(d uint64) string { return strconv.FormatUint(d, 16) }

// digestLen is len(digestHeader(d)).
func digestLen(d uint64) int {
	n := 1
	for d >= 16 {
		d >>= 4
		n++
	}
	return n
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// clientLimits are the limits Welcome announces.
func (s *Service) clientLimits() *schema.Limits {
	return &schema.Limits{
		MaxFrameBytes: uint32(s.cfg.MaxFrame), RatePerSec: s.cfg.Rate, Burst: uint32(s.cfg.Burst),
		MaxChatBytes: uint32(s.limits.MaxChat), MaxNameBytes: uint32(s.limits.MaxName), MaxIdBytes: wire.MaxIDBytes, // s.limits: packet.NewLimits, filled
		HelloTimeoutMs: s.cfg.HelloTimeout.Milliseconds(),
	}
}

// replyWorld answers a WorldInfoRequest.
func (c *conn) replyWorld(seq uint64) {
	c.reply(&schema.ServerPacket{AckSeq: seq, Body: &schema.ServerPacket_WorldInfo{WorldInfo: c.s.world}})
}

package gateway

// The session half of a connection: Hello (versions, tokens, revocation,
// resume on any gateway), the shared session record (internal/session), the
// resend rules of a resumed session, and the world description.

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
	"github.com/realmstream/realmstream/services/gateway/internal/session"
)

// Protocol versions this gateway serves. Version 1 is the protocol before
// versioning (Hello.protocol_version absent); version 2 adds the handshake
// fields, WorldInfo and the error codes UNSUPPORTED_PROTOCOL, SEQ_REUSED and
// SESSION_EXPIRED; version 3 sends each client one Updates frame per zone
// tick (every cell of its area of interest) instead of one Update per cell.
// All are served: nothing in a later version changes the meaning of an
// earlier version's packet.
const (
	MinProtocol = 1
	MaxProtocol = 3
)

// storeTimeout bounds one call to the session or deny-list bucket.
const storeTimeout = session.StoreTimeout

// takeoverTimeout bounds the wait for a session's previous connection to
// hand it over. It answers after writing its final record (a KV put), and
// a gateway that is gone answers at once (no responders), so the wait is
// long only for a live but loaded gateway: 1 s timed out under -race at
// load 10-15, and a resume that times out must treat the session as
// crashed (last_seq the reservation bound, resends checked against
// JetStream) instead of getting the exact record.
const takeoverTimeout = 2 * time.Second

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

func takeoverSubject(sid string) string { return wire.SessionPrefix + sid + ".takeover" }

// hello authenticates the connection and opens or resumes its session.
func (c *conn) hello(seq uint64, h *schema.Hello) {
	if c.authed.Load() {
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_INVALID, "already said Hello")
		return
	}
	fail := func(code schema.ErrorCode, reason, msg string) {
		c.replyError(seq, code, msg)
		c.s.m.dropped.WithLabelValues(reason).Inc()
		c.close()
	}
	ver := h.ProtocolVersion
	if ver == 0 {
		ver = 1
	}
	if ver < MinProtocol || ver > MaxProtocol {
		fail(schema.ErrorCode_ERROR_CODE_UNSUPPORTED_PROTOCOL, "unsupported_protocol",
			fmt.Sprintf("protocol version %d is not supported: this gateway (%s) serves versions %d..%d", h.ProtocolVersion, c.s.cfg.Version, MinProtocol, MaxProtocol))
		return
	}
	c.down.SetProtocol(ver) // before the first join: the fan-out picks the frame shape by it
	now := time.Now()
	var claims auth.Claims
	switch {
	case h.Token != "":
		cl, err := c.s.signer.Verify(h.Token, now)
		if err != nil {
			fail(schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "unauthenticated", "bad token: "+err.Error())
			return
		}
		claims = cl
	case c.s.cfg.Dev:
		claims = auth.Claims{Player: "p-" + h.Name, Name: h.Name, IssuedAt: now}
	default:
		fail(schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "unauthenticated", "a token is required (POST /v1/session gives one; docs/clients.md)")
		return
	}
	if claims.Name == "" {
		claims.Name = h.Name
	}
	ctx, cancel := context.WithTimeout(context.Background(), helloTimeout)
	defer cancel()
	if c.s.deny != nil {
		if err := c.s.deny.Check(ctx, claims.Player, claims.IssuedAt, claims.ID, h.ResumeSession); err != nil {
			if errors.Is(err, session.ErrRevoked) {
				fail(schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "revoked", "token revoked: "+err.Error())
			} else {
				fail(schema.ErrorCode_ERROR_CODE_INTERNAL, "deny_list", "cannot check the deny list; retry")
			}
			return
		}
	}
	life := c.s.cfg.SessionLifetime
	var sid string
	var rec session.Record
	var rev uint64 // the record's revision when read (0: a new session, created)
	if h.ResumeSession == "" {
		sid = session.NewID()
		rec = session.Record{Player: claims.Player, Name: claims.Name, Start: now, Gateway: c.s.cfg.InstanceID}
	} else {
		if claims.Session != h.ResumeSession {
			fail(schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "unauthenticated", "the token is not bound to the session to resume")
			return
		}
		sid = h.ResumeSession
		if !claims.SessionStart.IsZero() && !now.Before(claims.SessionStart.Add(life)) {
			fail(schema.ErrorCode_ERROR_CODE_SESSION_EXPIRED, "session_expired", "the session's lifetime is over; log in again")
			return
		}
		r, rrev, ok := c.resumeRecord(ctx, seq, sid)
		if !ok {
			return
		}
		rev = rrev
		if r.Player != claims.Player {
			fail(schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "unauthenticated", "the session belongs to another player")
			return
		}
		if !now.Before(r.Start.Add(life)) {
			fail(schema.ErrorCode_ERROR_CODE_SESSION_EXPIRED, "session_expired", "the session's lifetime is over; log in again")
			return
		}
		rec = r
		rec.Gateway = c.s.cfg.InstanceID
	}
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
		cs.takeSub, err = c.s.nc.Subscribe(takeoverSubject(sid), c.onTakeover)
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

// resumeRecord asks the session's current connection (on any gateway) to
// hand it over, then reads the shared record. A record still marked open
// after that belongs to a connection whose gateway is gone (crashed): the
// seqs it may have used after its last write become the unknown range.
func (c *conn) resumeRecord(ctx context.Context, seq uint64, sid string) (session.Record, uint64, bool) {
	_, err := c.s.nc.Request(takeoverSubject(sid), []byte(c.s.cfg.InstanceID), takeoverTimeout)
	handedOver := err == nil
	rec, rev, err := c.s.store.GetRev(ctx, sid)
	if errors.Is(err, session.ErrNotFound) {
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_SESSION_EXPIRED, "no such session (expired or never opened); log in again")
		c.close()
		return rec, 0, false
	}
	if err != nil {
		c.s.log.Warn("session record", "session", sid, "err", err)
		c.replyError(seq, schema.ErrorCode_ERROR_CODE_INTERNAL, "cannot read the session; retry")
		c.close()
		return rec, 0, false
	}
	if rec.Open && !handedOver && rec.LastSeq > rec.RecentTo {
		// Seqs in (RecentTo, LastSeq] may have been accepted after the
		// record was written; only JetStream's duplicate check (within its
		// window of the write) can still tell a resend from a reuse.
		rec.WidenUnknown(rec.RecentTo, rec.WrittenAt, c.s.dupWindow)
		c.s.log.Info("resuming a session whose gateway is gone", "session", sid, "gateway", rec.Gateway, "last_seq_bound", rec.LastSeq)
	}
	return rec, rev, true
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

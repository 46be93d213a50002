// Package handshake is what a gateway decides at a client's Hello before it
// opens the session: the protocol version, who the client is (a signed token,
// or a name in dev mode; the deny list), and which session it gets (a new one,
// or the shared record of the one it resumes, after asking that session's
// current connection, on any gateway, to hand it over). It answers nothing
// and opens nothing: every outcome is a value or a Refusal that the
// connection answers.
package handshake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// TakeoverTimeout bounds the wait for a session's previous connection to
// hand it over. It answers after writing its final record (a KV put), and
// a gateway that is gone answers at once (no responders), so the wait is
// long only for a live but loaded gateway: 1 s timed out under -race at
// load 10-15, and a resume that times out must treat the session as
// crashed (last_seq the reservation bound, resends checked against
// JetStream) instead of getting the exact record.
const TakeoverTimeout = 2 * time.Second

// TakeoverSubject is where the connection that holds session sid listens
// for a new connection's hand-over request.
func TakeoverSubject(sid string) string { return wire.SessionPrefix + sid + ".takeover" }

// Refusal is a Hello the gateway refuses: the Error to answer, and the
// reason the connection is closed for (a realm_gateway_disconnects_total
// label; "" counts none).
type Refusal struct {
	Code   schema.ErrorCode
	Reason string
	Msg    string
}

func refuse(code schema.ErrorCode, reason, msg string) *Refusal {
	return &Refusal{Code: code, Reason: reason, Msg: msg}
}

// Verifier checks a token (auth.Signer).
type Verifier interface {
	Verify(token string, now time.Time) (auth.Claims, error)
}

// DenyList refuses revoked players, sessions and tokens (session.DenyList).
type DenyList interface {
	Check(ctx context.Context, player string, iat time.Time, jti, sid string) error
}

// Records reads a session's shared record (session.Store).
type Records interface {
	GetRev(ctx context.Context, id string) (session.Record, uint64, error)
}

// Requester sends the hand-over request (nats.Conn).
type Requester interface {
	Request(subj string, data []byte, timeout time.Duration) (*nats.Msg, error)
}

// Handshake holds what a Hello is checked against. Its fields are set
// before the first Hello.
type Handshake struct {
	Signer   Verifier
	Deny     DenyList // nil: no deny list
	Records  Records
	NC       Requester
	Version  string        // this gateway's version (in the UNSUPPORTED_PROTOCOL message)
	Instance string        // this gateway's instance id (the record's Gateway)
	Dev      bool          // Hello{name} without a token logs in as p-<name>
	Lifetime time.Duration // a session's absolute life from its first Hello
	// DupWindow is JetStream's duplicate window of CMD (a crashed
	// connection's unknown seqs are checked against it).
	DupWindow time.Duration
	Log       *slog.Logger
}

// Protocol is the Hello's protocol version (0 is 1), or a Refusal when this
// gateway does not serve it.
func (hs *Handshake) Protocol(h *schema.Hello) (uint32, *Refusal) {
	ver := h.ProtocolVersion
	if ver == 0 {
		ver = 1
	}
	if ver < MinProtocol || ver > MaxProtocol {
		return 0, refuse(schema.ErrorCode_ERROR_CODE_UNSUPPORTED_PROTOCOL, "unsupported_protocol",
			fmt.Sprintf("protocol version %d is not supported: this gateway (%s) serves versions %d..%d", h.ProtocolVersion, hs.Version, MinProtocol, MaxProtocol))
	}
	return ver, nil
}

// Authenticate says who the client is: the claims of its token (or, in dev
// mode without one, player p-<name>), unless the deny list refuses them.
func (hs *Handshake) Authenticate(ctx context.Context, h *schema.Hello, now time.Time) (auth.Claims, *Refusal) {
	var claims auth.Claims
	switch {
	case h.Token != "":
		cl, err := hs.Signer.Verify(h.Token, now)
		if err != nil {
			return claims, refuse(schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "unauthenticated", "bad token: "+err.Error())
		}
		claims = cl
	case hs.Dev:
		claims = auth.Claims{Player: "p-" + h.Name, Name: h.Name, IssuedAt: now}
	default:
		return claims, refuse(schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "unauthenticated", "a token is required (POST /v1/session gives one; docs/clients.md)")
	}
	if claims.Name == "" {
		claims.Name = h.Name
	}
	if hs.Deny != nil {
		if err := hs.Deny.Check(ctx, claims.Player, claims.IssuedAt, claims.ID, h.ResumeSession); err != nil {
			if errors.Is(err, session.ErrRevoked) {
				return claims, refuse(schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "revoked", "token revoked: "+err.Error())
			}
			return claims, refuse(schema.ErrorCode_ERROR_CODE_INTERNAL, "deny_list", "cannot check the deny list; retry")
		}
	}
	return claims, nil
}

// Session is the session the Hello gets: a new one (rev 0), or the one it
// resumes, with its shared record at revision rev, marked as this gateway's.
func (hs *Handshake) Session(ctx context.Context, h *schema.Hello, claims auth.Claims, now time.Time) (sid string, rec session.Record, rev uint64, r *Refusal) {
	life := hs.Lifetime
	if h.ResumeSession == "" {
		return session.NewID(), session.Record{Player: claims.Player, Name: claims.Name, Start: now, Gateway: hs.Instance}, 0, nil
	}
	if claims.Session != h.ResumeSession {
		return "", rec, 0, refuse(schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "unauthenticated", "the token is not bound to the session to resume")
	}
	sid = h.ResumeSession
	if !claims.SessionStart.IsZero() && !now.Before(claims.SessionStart.Add(life)) {
		return "", rec, 0, refuse(schema.ErrorCode_ERROR_CODE_SESSION_EXPIRED, "session_expired", "the session's lifetime is over; log in again")
	}
	rec, rev, r = hs.resumeRecord(ctx, sid)
	if r != nil {
		return "", rec, 0, r
	}
	if rec.Player != claims.Player {
		return "", rec, 0, refuse(schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "unauthenticated", "the session belongs to another player")
	}
	if !now.Before(rec.Start.Add(life)) {
		return "", rec, 0, refuse(schema.ErrorCode_ERROR_CODE_SESSION_EXPIRED, "session_expired", "the session's lifetime is over; log in again")
	}
	rec.Gateway = hs.Instance
	return sid, rec, rev, nil
}

// resumeRecord asks the session's current connection (on any gateway) to
// hand it over, then reads the shared record. A record still marked open
// after that belongs to a connection whose gateway is gone (crashed): the
// seqs it may have used after its last write become the unknown range.
func (hs *Handshake) resumeRecord(ctx context.Context, sid string) (session.Record, uint64, *Refusal) {
	_, err := hs.NC.Request(TakeoverSubject(sid), []byte(hs.Instance), TakeoverTimeout)
	handedOver := err == nil
	rec, rev, err := hs.Records.GetRev(ctx, sid)
	if errors.Is(err, session.ErrNotFound) {
		return rec, 0, refuse(schema.ErrorCode_ERROR_CODE_SESSION_EXPIRED, "", "no such session (expired or never opened); log in again")
	}
	if err != nil {
		hs.Log.Warn("session record", "session", sid, "err", err)
		return rec, 0, refuse(schema.ErrorCode_ERROR_CODE_INTERNAL, "", "cannot read the session; retry")
	}
	if rec.Open && !handedOver && rec.LastSeq > rec.RecentTo {
		// Seqs in (RecentTo, LastSeq] may have been accepted after the
		// record was written; only JetStream's duplicate check (within its
		// window of the write) can still tell a resend from a reuse.
		rec.WidenUnknown(rec.RecentTo, rec.WrittenAt, hs.DupWindow)
		hs.Log.Info("resuming a session whose gateway is gone", "session", sid, "gateway", rec.Gateway, "last_seq_bound", rec.LastSeq)
	}
	return rec, rev, nil
}

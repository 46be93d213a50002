// Package login is the gateway's reference login endpoint, POST /v1/session
// (docs/clients.md): it finds or creates the account of a device or custom id
// through persist (request/reply on wire.AccountsAuthenticate), checks the
// deny list and answers a signed token. It knows nothing of connections.
package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/auth"
	"github.com/realmstream/realmstream/services/gateway/internal/session"
)

// Path is the endpoint on the WebSocket listener.
const Path = wire.LoginPath

// maxLoginBody bounds a login request.
const maxLoginBody = 4096

// loginTimeout bounds the account lookup in persist.
const loginTimeout = 3 * time.Second

// Request is the body of POST /v1/session (docs/clients.md; the JSON is
// libs/wire's, shared with libs/client).
type Request = wire.LoginRequest

// Response answers a successful login.
type Response = wire.LoginResponse

// Error is the body of a failed login.
type Error = wire.LoginErrorBody

// Requester asks the account store (nats.Conn).
type Requester interface {
	RequestWithContext(ctx context.Context, subj string, data []byte) (*nats.Msg, error)
}

// DenyList refuses revoked players (session.DenyList).
type DenyList interface {
	Check(ctx context.Context, player string, iat time.Time, jti, sid string) error
}

// Signer issues tokens (auth.Signer).
type Signer interface {
	Issue(c auth.Claims) (string, error)
}

// Handler serves the endpoint. Its fields are set before it serves.
type Handler struct {
	Accounts Requester
	Deny     DenyList
	Signer   Signer
	TokenTTL time.Duration // life of the tokens it issues
	Log      *slog.Logger
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func loginError(w http.ResponseWriter, status int, code, msg string) {
	var e Error
	e.Error.Code, e.Error.Message = code, msg
	writeJSON(w, status, e)
}

// ServeHTTP is POST /v1/session: find or create the account of a device or
// custom id through persist (wire.AccountsAuthenticate) and return a token.
func (s *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// No cookies or ambient credentials are involved: any origin may call it.
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		loginError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLoginBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			loginError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body above %d bytes", maxLoginBody))
			return
		}
		loginError(w, http.StatusBadRequest, "invalid_argument", "cannot read the body")
		return
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		loginError(w, http.StatusBadRequest, "invalid_argument", "body is not JSON: "+err.Error())
		return
	}
	areq := wire.AuthenticateRequest{Create: req.Create == nil || *req.Create, Name: req.Name}
	switch {
	case req.DeviceID != "" && req.CustomID == "":
		areq.Kind, areq.ID = wire.AccountKindDevice, req.DeviceID
	case req.CustomID != "" && req.DeviceID == "":
		areq.Kind, areq.ID = wire.AccountKindCustom, req.CustomID
	default:
		loginError(w, http.StatusBadRequest, "invalid_argument", "give exactly one of device_id and custom_id")
		return
	}
	b, _ := json.Marshal(areq)
	ctx, cancel := context.WithTimeout(r.Context(), loginTimeout)
	defer cancel()
	m, err := s.Accounts.RequestWithContext(ctx, wire.AccountsAuthenticate, b)
	if err != nil {
		msg := "the account store did not answer; retry"
		if errors.Is(err, nats.ErrNoResponders) {
			msg = "no account store is running (persist); retry later"
		}
		s.Log.Warn("login: account store", "err", err)
		loginError(w, http.StatusServiceUnavailable, "unavailable", msg)
		return
	}
	var rep wire.AuthenticateReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		loginError(w, http.StatusServiceUnavailable, "unavailable", "bad answer from the account store")
		return
	}
	switch rep.Code {
	case "":
	case "invalid_argument":
		loginError(w, http.StatusBadRequest, rep.Code, rep.Error)
		return
	case "not_found":
		loginError(w, http.StatusNotFound, rep.Code, rep.Error)
		return
	default:
		s.Log.Warn("login: account store", "code", rep.Code, "err", rep.Error)
		loginError(w, http.StatusServiceUnavailable, "unavailable", "the account store failed; retry")
		return
	}
	now := time.Now()
	if err := s.Deny.Check(ctx, rep.PlayerID, now, "", ""); err != nil {
		if errors.Is(err, session.ErrRevoked) {
			loginError(w, http.StatusForbidden, "revoked", "this account's tokens are revoked")
			return
		}
		loginError(w, http.StatusServiceUnavailable, "unavailable", "cannot check the deny list; retry")
		return
	}
	exp := now.Add(s.TokenTTL)
	tok, err := s.Signer.Issue(auth.Claims{Player: rep.PlayerID, Name: rep.Name, IssuedAt: now, Expiry: exp})
	if err != nil {
		loginError(w, http.StatusServiceUnavailable, "unavailable", "cannot sign the token")
		return
	}
	status := http.StatusOK
	if rep.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, Response{Token: tok, PlayerID: rep.PlayerID, Name: rep.Name, Created: rep.Created,
		ExpiresAt: exp.UTC().Format(time.RFC3339), ExpiresAtUnix: exp.Unix()})
}

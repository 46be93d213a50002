package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/auth"
	"github.com/realmstream/realmstream/services/gateway/internal/session"
)

// LoginPath is the reference login endpoint on the WebSocket listener.
const LoginPath = "/v1/session"

// maxLoginBody bounds a login request.
const maxLoginBody = 4096

// loginTimeout bounds the account lookup in persist.
const loginTimeout = 3 * time.Second

// LoginRequest is the body of POST /v1/session (docs/clients.md).
type LoginRequest struct {
	DeviceID string `json:"device_id,omitempty"`
	CustomID string `json:"custom_id,omitempty"`
	Create   *bool  `json:"create,omitempty"` // default true
	Name     string `json:"name,omitempty"`
}

// LoginResponse answers a successful login.
type LoginResponse struct {
	Token         string `json:"token"`
	PlayerID      string `json:"player_id"`
	Name          string `json:"name"`
	Created       bool   `json:"created"`
	ExpiresAt     string `json:"expires_at"`
	ExpiresAtUnix int64  `json:"expires_at_unix"`
}

// LoginError is the body of a failed login.
type LoginError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// openSessions opens the shared session table and the deny list.
func (s *Service) openSessions(ctx context.Context, js jetstream.JetStream) error {
	var err error
	if s.store, err = session.Open(ctx, js, s.cfg.SessionLifetime, s.cfg.Streams.Replicas); err != nil {
		return err
	}
	// A revocation must outlive every token it refuses.
	if s.deny, err = session.OpenDenyList(ctx, js, max(s.cfg.TokenTTL, s.cfg.SessionLifetime), s.cfg.Streams.Replicas); err != nil {
		return err
	}
	if s.cmdStream, err = js.Stream(ctx, wire.StreamCommands); err != nil {
		return fmt.Errorf("stream %s: %w", wire.StreamCommands, err)
	}
	return nil
}

// wsHandler serves WebSocket upgrades on every path and, when enabled, the
// login endpoint.
func (s *Service) wsHandler() http.Handler {
	mux := http.NewServeMux()
	if s.cfg.Login {
		mux.HandleFunc(LoginPath, s.serveLogin)
	}
	mux.HandleFunc("/", s.serveWS)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func loginError(w http.ResponseWriter, status int, code, msg string) {
	var e LoginError
	e.Error.Code, e.Error.Message = code, msg
	writeJSON(w, status, e)
}

// serveLogin is POST /v1/session: find or create the account of a device or
// custom id through persist (wire.AccountsAuthenticate) and return a token.
func (s *Service) serveLogin(w http.ResponseWriter, r *http.Request) {
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
	var req LoginRequest
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
	m, err := s.nc.RequestWithContext(ctx, wire.AccountsAuthenticate, b)
	if err != nil {
		msg := "the account store did not answer; retry"
		if errors.Is(err, nats.ErrNoResponders) {
			msg = "no account store is running (persist); retry later"
		}
		s.log.Warn("login: account store", "err", err)
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
		s.log.Warn("login: account store", "code", rep.Code, "err", rep.Error)
		loginError(w, http.StatusServiceUnavailable, "unavailable", "the account store failed; retry")
		return
	}
	now := time.Now()
	if err := s.deny.Check(ctx, rep.PlayerID, now, "", ""); err != nil {
		if errors.Is(err, session.ErrRevoked) {
			loginError(w, http.StatusForbidden, "revoked", "this account's tokens are revoked")
			return
		}
		loginError(w, http.StatusServiceUnavailable, "unavailable", "cannot check the deny list; retry")
		return
	}
	exp := now.Add(s.cfg.TokenTTL)
	tok, err := s.signer.Issue(auth.Claims{Player: rep.PlayerID, Name: rep.Name, IssuedAt: now, Expiry: exp})
	if err != nil {
		loginError(w, http.StatusServiceUnavailable, "unavailable", "cannot sign the token")
		return
	}
	status := http.StatusOK
	if rep.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, LoginResponse{Token: tok, PlayerID: rep.PlayerID, Name: rep.Name, Created: rep.Created,
		ExpiresAt: exp.UTC().Format(time.RFC3339), ExpiresAtUnix: exp.Unix()})
}

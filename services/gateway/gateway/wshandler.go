package gateway

import (
	"context"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/handshake"
	"github.com/realmstream/realmstream/services/gateway/internal/login"
	"github.com/realmstream/realmstream/services/gateway/internal/session"
)

// LoginPath is the reference login endpoint on the WebSocket listener.
const LoginPath = login.Path

// LoginRequest is the body of POST /v1/session (docs/clients.md).
type LoginRequest = login.Request

// LoginResponse answers a successful login.
type LoginResponse = login.Response

// LoginError is the body of a failed login.
type LoginError = login.Error

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
	s.hs = &handshake.Handshake{Signer: s.signer, Records: s.store, NC: s.nc, Version: s.cfg.Version, Instance: s.cfg.InstanceID,
		Dev: s.cfg.Dev, Lifetime: s.cfg.SessionLifetime, DupWindow: s.dupWindow, Log: s.log}
	if s.deny != nil {
		s.hs.Deny = s.deny
	}
	return nil
}

// wsHandler serves WebSocket upgrades on every path and, when enabled, the
// login endpoint (internal/login).
func (s *Service) wsHandler() http.Handler {
	mux := http.NewServeMux()
	if s.cfg.Login {
		mux.Handle(LoginPath, &login.Handler{Accounts: s.nc, Deny: s.deny, Signer: s.signer, TokenTTL: s.cfg.TokenTTL, Log: s.log})
	}
	mux.HandleFunc("/", s.serveWS)
	return mux
}

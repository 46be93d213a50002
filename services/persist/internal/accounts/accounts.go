// Package accounts stores player accounts for the reference login (the
// gateway's POST /v1/session) and serves them over NATS request/reply on
// wire.AccountsAuthenticate, so gateways never import persist: an account is
// found by (kind, external id), a device id or a custom id in the spirit of
// Nakama's authenticate calls, and created on first use when asked.
//
// Two backends implement Store: Postgres (table realm_accounts in ONE
// database, the first of the shard map by name, so a logical-shard move never
// strands an account) and Pebble (keys 'A' kind 0 id). Both run the same
// conformance test (TestStores).
package accounts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/realmstream/realmstream/libs/wire"
)

// Account is one player account.
type Account struct {
	PlayerID  string    `json:"player_id"`
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	ExtID     string    `json:"ext_id"`
	CreatedAt time.Time `json:"created_at"`
}

// ErrNotFound is returned by Store.Get for an unknown id.
var ErrNotFound = errors.New("accounts: not found")

// Store keeps accounts. Create must be atomic: of two concurrent creates of
// the same (kind, id) one wins and both return the winner's account.
type Store interface {
	Get(ctx context.Context, kind, id string) (Account, error)
	// Create stores a unless (a.Kind, a.ExtID) exists; it returns the stored
	// account and whether it was this call that created it.
	Create(ctx context.Context, a Account) (Account, bool, error)
}

// Limits of ids and names (docs/clients.md).
const (
	MinDeviceID = 10
	MinCustomID = 6
	MaxID       = 128
	MaxName     = 32
)

// CheckRequest validates an authenticate request and says what is wrong.
func CheckRequest(r wire.AuthenticateRequest) error {
	min := MinDeviceID
	switch r.Kind {
	case wire.AccountKindDevice:
	case wire.AccountKindCustom:
		min = MinCustomID
	default:
		return fmt.Errorf("kind %q: want %q or %q", r.Kind, wire.AccountKindDevice, wire.AccountKindCustom)
	}
	if len(r.ID) < min || len(r.ID) > MaxID {
		return fmt.Errorf("%s id of %d bytes: want %d..%d", r.Kind, len(r.ID), min, MaxID)
	}
	for i := 0; i < len(r.ID); i++ {
		c := r.ID[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.', c == ':':
		default:
			return fmt.Errorf("%s id: byte %q not allowed (want [A-Za-z0-9_.:-])", r.Kind, c)
		}
	}
	if len(r.Name) > MaxName || !utf8.ValidString(r.Name) {
		return fmt.Errorf("name: want at most %d bytes of UTF-8", MaxName)
	}
	for _, c := range r.Name {
		if c < 0x20 || c == 0x7f {
			return errors.New("name: control characters not allowed")
		}
	}
	return nil
}

func newPlayerID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "u" + hex.EncodeToString(b[:])
}

// Authenticate finds or (when r.Create) creates the account of r.
func Authenticate(ctx context.Context, st Store, r wire.AuthenticateRequest) wire.AuthenticateReply {
	if err := CheckRequest(r); err != nil {
		return wire.AuthenticateReply{Code: "invalid_argument", Error: err.Error()}
	}
	a, err := st.Get(ctx, r.Kind, r.ID)
	switch {
	case err == nil:
		return wire.AuthenticateReply{PlayerID: a.PlayerID, Name: a.Name}
	case !errors.Is(err, ErrNotFound):
		return wire.AuthenticateReply{Code: "internal", Error: err.Error()}
	case !r.Create:
		return wire.AuthenticateReply{Code: "not_found", Error: fmt.Sprintf("no account for this %s id", r.Kind)}
	}
	id := newPlayerID()
	name := r.Name
	if name == "" {
		name = "player-" + id[len(id)-4:]
	}
	a, created, err := st.Create(ctx, Account{PlayerID: id, Name: name, Kind: r.Kind, ExtID: r.ID, CreatedAt: time.Now().UTC()})
	if err != nil {
		return wire.AuthenticateReply{Code: "internal", Error: err.Error()}
	}
	return wire.AuthenticateReply{PlayerID: a.PlayerID, Name: a.Name, Created: created}
}

// MaxRequest bounds a request body.
const MaxRequest = 4096

// Serve answers wire.AccountsAuthenticate from st in the queue group
// "persist" until the returned subscription is unsubscribed. Each request
// runs with timeout.
func Serve(nc *nats.Conn, st Store, timeout time.Duration, log *slog.Logger) (*nats.Subscription, error) {
	sub, err := nc.QueueSubscribe(wire.AccountsAuthenticate, "persist", func(m *nats.Msg) {
		var rep wire.AuthenticateReply
		var req wire.AuthenticateRequest
		switch {
		case len(m.Data) > MaxRequest:
			rep = wire.AuthenticateReply{Code: "invalid_argument", Error: fmt.Sprintf("request larger than %d bytes", MaxRequest)}
		case json.Unmarshal(m.Data, &req) != nil:
			rep = wire.AuthenticateReply{Code: "invalid_argument", Error: "request is not JSON of wire.AuthenticateRequest"}
		default:
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			rep = Authenticate(ctx, st, req)
			cancel()
		}
		if rep.Code == "internal" {
			log.Warn("account authenticate failed", "kind", req.Kind, "err", rep.Error)
		}
		b, _ := json.Marshal(rep)
		if err := m.Respond(b); err != nil {
			log.Debug("account reply", "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: subscribe: %w", err)
	}
	// The server knows the subscription once Flush returns: a request sent
	// right after Serve (persist is ready) finds a responder.
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("accounts: subscribe: %w", err)
	}
	return sub, nil
}

// Package auth issues and verifies the gateway's HMAC-signed session tokens.
//
// A token is "v1.<payload>.<mac>" where payload is base64url of
// "<player>|<name>|<session>|<expiry unix seconds>" and mac is base64url of
// HMAC-SHA256(key, "v1."+payload). The player id names who the holder is;
// session (optional) binds the token to one session so that only its holder
// can resume it; expiry bounds its life. Player, name and session must be
// subject-safe tokens (no '|'), which Issue enforces.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Errors returned by Verify. They are wrapped; branch with errors.Is.
var (
	ErrMalformed = errors.New("auth: malformed token")
	ErrSignature = errors.New("auth: bad token signature")
	ErrExpired   = errors.New("auth: token expired")
)

// Claims is what a token says.
type Claims struct {
	Player  string
	Name    string
	Session string // empty: not bound to a session
	Expiry  time.Time
}

// Signer signs and verifies tokens with one key.
type Signer struct {
	key []byte
}

// NewSigner returns a signer; the key must be at least 16 bytes.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < 16 {
		return nil, fmt.Errorf("auth: token key of %d bytes: want at least 16", len(key))
	}
	return &Signer{key: append([]byte(nil), key...)}, nil
}

const prefix = "v1."

var enc = base64.RawURLEncoding

// Issue returns a signed token for c.
func (s *Signer) Issue(c Claims) (string, error) {
	for _, f := range []string{c.Player, c.Name, c.Session} {
		if strings.ContainsRune(f, '|') {
			return "", fmt.Errorf("auth: claim %q contains '|'", f)
		}
	}
	if c.Player == "" {
		return "", errors.New("auth: empty player id")
	}
	payload := enc.EncodeToString([]byte(c.Player + "|" + c.Name + "|" + c.Session + "|" + strconv.FormatInt(c.Expiry.Unix(), 10)))
	return prefix + payload + "." + enc.EncodeToString(s.mac(payload)), nil
}

func (s *Signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(prefix))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// Verify checks the signature and expiry of tok at time now.
func (s *Signer) Verify(tok string, now time.Time) (Claims, error) {
	rest, ok := strings.CutPrefix(tok, prefix)
	if !ok || len(tok) > 1024 {
		return Claims{}, ErrMalformed
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return Claims{}, ErrMalformed
	}
	got, err := enc.DecodeString(sig)
	if err != nil {
		return Claims{}, ErrMalformed
	}
	if !hmac.Equal(got, s.mac(payload)) {
		return Claims{}, ErrSignature
	}
	raw, err := enc.DecodeString(payload)
	if err != nil {
		return Claims{}, ErrMalformed
	}
	f := strings.Split(string(raw), "|")
	if len(f) != 4 || f[0] == "" {
		return Claims{}, ErrMalformed
	}
	exp, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return Claims{}, ErrMalformed
	}
	c := Claims{Player: f[0], Name: f[1], Session: f[2], Expiry: time.Unix(exp, 0)}
	if !now.Before(c.Expiry) {
		return c, fmt.Errorf("%w at %s", ErrExpired, c.Expiry.UTC().Format(time.RFC3339))
	}
	return c, nil
}

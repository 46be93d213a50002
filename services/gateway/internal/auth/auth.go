// Package auth issues and verifies the gateway's session tokens: JWTs
// (RFC 7519, github.com/golang-jwt/jwt/v5) signed with HS256 by one of a
// ring of keys named by the token's "kid" header, so keys rotate: the first
// key of the ring signs, every key verifies, and a key is removed once the
// tokens it signed have expired. Any login service can mint tokens with a
// key the gateways hold (claims in docs/clients.md).
//
// Claims: sub (player id, subject-safe), name, iat, exp, jti; resume tokens
// issued by the gateway also carry sid (the session they resume) and sst
// (the session's start, unix seconds), which bounds the session's absolute
// lifetime no matter how often it is resumed.
package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/realmstream/realmstream/libs/wire"
)

// Errors returned by Verify. They are wrapped; branch with errors.Is.
var (
	ErrMalformed  = errors.New("auth: malformed token")
	ErrSignature  = errors.New("auth: bad token signature")
	ErrExpired    = errors.New("auth: token expired")
	ErrUnknownKey = errors.New("auth: token signed with an unknown key id")
)

// Issuer is the iss claim of every token the gateway issues.
const Issuer = "realmstream"

// MaxTokenBytes bounds a token accepted by Verify.
const MaxTokenBytes = 2048

// MinKeyBytes is the shortest accepted secret.
const MinKeyBytes = 16

// Claims is what a token says.
type Claims struct {
	Player string
	Name   string
	// Session (optional) binds the token to one session: only its holder can
	// resume it. SessionStart is that session's start.
	Session      string
	SessionStart time.Time
	IssuedAt     time.Time
	Expiry       time.Time
	ID           string // jti; Issue sets a random one when empty
}

type jwtClaims struct {
	Name string `json:"name,omitempty"`
	Sid  string `json:"sid,omitempty"`
	Sst  int64  `json:"sst,omitempty"`
	jwt.RegisteredClaims
}

// Key is one signing key.
type Key struct {
	ID     string
	Secret []byte
}

// ParseKeys parses "kid:secret,kid:secret" (the first key signs). A kid is
// 1..64 bytes of [A-Za-z0-9_-]; a secret is at least MinKeyBytes bytes.
func ParseKeys(spec string) ([]Key, error) {
	var keys []Key
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kid, secret, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("auth: token key %q: want kid:secret", redact(part))
		}
		keys = append(keys, Key{ID: kid, Secret: []byte(secret)})
	}
	return keys, nil
}

func redact(s string) string {
	if len(s) > 4 {
		return s[:4] + "..."
	}
	return "..."
}

// Signer signs with its first key and verifies with all of them.
type Signer struct {
	keys    map[string][]byte
	signing Key
	parser  *jwt.Parser
}

// NewSigner returns a signer for keys (at least one; the first signs).
func NewSigner(keys ...Key) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("auth: no token key")
	}
	s := &Signer{keys: map[string][]byte{}, signing: keys[0]}
	for _, k := range keys {
		if !wire.ValidToken(k.ID) {
			return nil, fmt.Errorf("auth: key id %q: want 1..64 characters of [A-Za-z0-9_-]", k.ID)
		}
		if len(k.Secret) < MinKeyBytes {
			return nil, fmt.Errorf("auth: key %q of %d bytes: want at least %d", k.ID, len(k.Secret), MinKeyBytes)
		}
		if _, dup := s.keys[k.ID]; dup {
			return nil, fmt.Errorf("auth: key id %q listed twice", k.ID)
		}
		s.keys[k.ID] = append([]byte(nil), k.Secret...)
	}
	s.parser = jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithoutClaimsValidation(), jwt.WithJSONNumber())
	return s, nil
}

// SigningKeyID is the kid new tokens get.
func (s *Signer) SigningKeyID() string { return s.signing.ID }

// Issue returns a signed token for c. IssuedAt defaults to now.
func (s *Signer) Issue(c Claims) (string, error) {
	if !wire.ValidToken(c.Player) {
		return "", fmt.Errorf("auth: player id %q: want 1..64 characters of [A-Za-z0-9_-]", c.Player)
	}
	if c.Session != "" && !wire.ValidToken(c.Session) {
		return "", fmt.Errorf("auth: session id %q is not subject-safe", c.Session)
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.ID == "" {
		var b [9]byte
		_, _ = rand.Read(b[:])
		c.ID = hex.EncodeToString(b[:])
	}
	jc := jwtClaims{Name: c.Name, Sid: c.Session, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: Issuer, Subject: c.Player, ID: c.ID,
		IssuedAt: jwt.NewNumericDate(c.IssuedAt), ExpiresAt: jwt.NewNumericDate(c.Expiry),
	}}
	if !c.SessionStart.IsZero() {
		jc.Sst = c.SessionStart.Unix()
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jc)
	t.Header["kid"] = s.signing.ID
	return t.SignedString(s.signing.Secret)
}

// Verify checks the algorithm, key id, signature and expiry of tok at time
// now and returns its claims (also on ErrExpired, for the error message).
func (s *Signer) Verify(tok string, now time.Time) (Claims, error) {
	if tok == "" || len(tok) > MaxTokenBytes {
		return Claims{}, fmt.Errorf("%w: %d bytes (want 1..%d)", ErrMalformed, len(tok), MaxTokenBytes)
	}
	var jc jwtClaims
	_, err := s.parser.ParseWithClaims(tok, &jc, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, fmt.Errorf("%w: no kid header", ErrUnknownKey)
		}
		k, ok := s.keys[kid]
		if !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
		}
		return k, nil
	})
	switch {
	case errors.Is(err, ErrUnknownKey):
		return Claims{}, err
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return Claims{}, fmt.Errorf("%w: %v", ErrSignature, err)
	case err != nil:
		return Claims{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if jc.ExpiresAt == nil || jc.IssuedAt == nil {
		return Claims{}, fmt.Errorf("%w: exp and iat are required", ErrMalformed)
	}
	if !wire.ValidToken(jc.Subject) {
		return Claims{}, fmt.Errorf("%w: sub %q is not a valid player id", ErrMalformed, jc.Subject)
	}
	if jc.Sid != "" && !wire.ValidToken(jc.Sid) {
		return Claims{}, fmt.Errorf("%w: sid %q is not a valid session id", ErrMalformed, jc.Sid)
	}
	c := Claims{Player: jc.Subject, Name: jc.Name, Session: jc.Sid, ID: jc.ID,
		IssuedAt: jc.IssuedAt.Time, Expiry: jc.ExpiresAt.Time}
	if jc.Sst != 0 {
		c.SessionStart = time.Unix(jc.Sst, 0)
	}
	if !now.Before(c.Expiry) {
		return c, fmt.Errorf("%w at %s", ErrExpired, c.Expiry.UTC().Format(time.RFC3339))
	}
	return c, nil
}

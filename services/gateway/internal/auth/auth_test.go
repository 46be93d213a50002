package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	k1 = Key{ID: "k1", Secret: []byte("0123456789abcdef-key-one-32-bytes")}
	k2 = Key{ID: "k2", Secret: []byte("fedcba9876543210-key-two-32-bytes")}
)

func mustSigner(t testing.TB, keys ...Key) *Signer {
	t.Helper()
	s, err := NewSigner(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIssueVerify(t *testing.T) {
	s := mustSigner(t, k1)
	now := time.Now()
	start := now.Add(-time.Minute).Truncate(time.Second)
	tok, err := s.Issue(Claims{Player: "p1", Name: "Ann", Session: "s1", SessionStart: start, Expiry: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Verify(tok, now)
	if err != nil || c.Player != "p1" || c.Name != "Ann" || c.Session != "s1" || !c.SessionStart.Equal(start) || c.ID == "" {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	if _, err := s.Verify(tok, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: got %v", err)
	}
	other := mustSigner(t, Key{ID: "k1", Secret: []byte("another-key-of-16-bytes")})
	if _, err := other.Verify(tok, now); !errors.Is(err, ErrSignature) {
		t.Fatalf("other key: got %v", err)
	}
	bad := []byte(tok)
	bad[len(bad)-3] ^= 1
	if _, err := s.Verify(string(bad), now); err == nil {
		t.Fatal("tampered token accepted")
	}
	for _, junk := range []string{"", "v1.", "a.b.c", "v1.x", strings.Repeat("v", 3000)} {
		if _, err := s.Verify(junk, now); err == nil {
			t.Fatalf("junk %q accepted", junk)
		}
	}
	if _, err := NewSigner(Key{ID: "k", Secret: []byte("short")}); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := NewSigner(Key{ID: "bad kid", Secret: k1.Secret}); err == nil {
		t.Fatal("bad kid accepted")
	}
	if _, err := NewSigner(k1, k1); err == nil {
		t.Fatal("duplicate kid accepted")
	}
	if _, err := s.Issue(Claims{Player: "p|1", Expiry: now.Add(time.Hour)}); err == nil {
		t.Fatal("player id that is not subject-safe issued")
	}
}

// TestKeyRotation: a token signed with the old key still verifies while the
// old key is in the ring (second), new tokens carry the new kid, and once
// the old key is removed its tokens are refused as an unknown key.
func TestKeyRotation(t *testing.T) {
	now := time.Now()
	old := mustSigner(t, k1)
	oldTok, _ := old.Issue(Claims{Player: "p1", Expiry: now.Add(time.Hour)})

	rotating := mustSigner(t, k2, k1)
	if _, err := rotating.Verify(oldTok, now); err != nil {
		t.Fatalf("old-key token during rotation: %v", err)
	}
	newTok, _ := rotating.Issue(Claims{Player: "p1", Expiry: now.Add(time.Hour)})
	if kid := headerKid(t, newTok); kid != "k2" {
		t.Fatalf("new token kid %q, want k2", kid)
	}
	if _, err := old.Verify(newTok, now); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("gateway without k2: %v, want ErrUnknownKey", err)
	}
	done := mustSigner(t, k2)
	if _, err := done.Verify(oldTok, now); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old key removed: %v, want ErrUnknownKey", err)
	}
	if _, err := done.Verify(newTok, now); err != nil {
		t.Fatal(err)
	}
}

func headerKid(t *testing.T, tok string) string {
	t.Helper()
	p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := p.Header["kid"].(string)
	return kid
}

// TestForeignMintedToken: a token made without this package, the way a
// login service in another language makes it (base64url JSON + HMAC-SHA256),
// verifies; alg "none", other algorithms and a missing kid do not.
func TestForeignMintedToken(t *testing.T) {
	s := mustSigner(t, k1)
	now := time.Unix(1764000000, 0)
	mint := func(header, claims string, key []byte) string {
		e := base64.RawURLEncoding
		in := e.EncodeToString([]byte(header)) + "." + e.EncodeToString([]byte(claims))
		m := hmac.New(sha256.New, key)
		m.Write([]byte(in))
		return in + "." + e.EncodeToString(m.Sum(nil))
	}
	claims := `{"sub":"u42","name":"Zoe","iat":1764000000,"exp":1764003600,"iss":"my-login"}`
	c, err := s.Verify(mint(`{"alg":"HS256","typ":"JWT","kid":"k1"}`, claims, k1.Secret), now)
	if err != nil || c.Player != "u42" || c.Name != "Zoe" || !c.Expiry.Equal(time.Unix(1764003600, 0)) {
		t.Fatalf("foreign token: %+v, %v", c, err)
	}
	for name, tok := range map[string]string{
		"alg none":     mint(`{"alg":"none","kid":"k1"}`, claims, k1.Secret),
		"alg HS512":    mint(`{"alg":"HS512","kid":"k1"}`, claims, k1.Secret),
		"no kid":       mint(`{"alg":"HS256"}`, claims, k1.Secret),
		"unknown kid":  mint(`{"alg":"HS256","kid":"k9"}`, claims, k1.Secret),
		"no exp":       mint(`{"alg":"HS256","kid":"k1"}`, `{"sub":"u42","iat":1764000000}`, k1.Secret),
		"bad sub":      mint(`{"alg":"HS256","kid":"k1"}`, `{"sub":"u 42","iat":1764000000,"exp":1764003600}`, k1.Secret),
		"wrong secret": mint(`{"alg":"HS256","kid":"k1"}`, claims, k2.Secret),
	} {
		if _, err := s.Verify(tok, now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseKeys(t *testing.T) {
	keys, err := ParseKeys(" k2:secret-two-xxxxxxxx , k1:secret:with:colons ")
	if err != nil || len(keys) != 2 || keys[0].ID != "k2" || string(keys[1].Secret) != "secret:with:colons" {
		t.Fatalf("ParseKeys = %+v, %v", keys, err)
	}
	if _, err := ParseKeys("nocolon"); err == nil || strings.Contains(err.Error(), "nocolon") {
		t.Fatalf("bad spec: %v (and the secret must not be echoed)", err)
	}
}

func FuzzVerify(f *testing.F) {
	s, _ := NewSigner(k1)
	tok, _ := s.Issue(Claims{Player: "p", Expiry: time.Unix(1<<40, 0)})
	f.Add(tok)
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.Verify(tok, time.Unix(0, 0))
		if err == nil && c.Player == "" {
			t.Fatal("accepted token with no player")
		}
	})
}

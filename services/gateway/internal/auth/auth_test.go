package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestIssueVerify(t *testing.T) {
	s, err := NewSigner([]byte("0123456789abcdef-key"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := s.Issue(Claims{Player: "p1", Name: "Ann", Session: "s1", Expiry: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Verify(tok, now)
	if err != nil || c.Player != "p1" || c.Name != "Ann" || c.Session != "s1" {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	if _, err := s.Verify(tok, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: got %v", err)
	}
	other, _ := NewSigner([]byte("another-key-of-16-bytes"))
	if _, err := other.Verify(tok, now); !errors.Is(err, ErrSignature) {
		t.Fatalf("other key: got %v", err)
	}
	// Flip one character of the payload: the MAC no longer matches.
	bad := []byte(tok)
	bad[5] ^= 1
	if _, err := s.Verify(string(bad), now); err == nil {
		t.Fatal("tampered token accepted")
	}
	for _, junk := range []string{"", "v1.", "v1.x", "v2.a.b", strings.Repeat("v", 2000)} {
		if _, err := s.Verify(junk, now); err == nil {
			t.Fatalf("junk %q accepted", junk)
		}
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}

func FuzzVerify(f *testing.F) {
	s, _ := NewSigner([]byte("0123456789abcdef-key"))
	tok, _ := s.Issue(Claims{Player: "p", Expiry: time.Unix(1<<40, 0)})
	f.Add(tok)
	f.Add("v1.a.b")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.Verify(tok, time.Unix(0, 0))
		if err == nil && c.Player == "" {
			t.Fatal("accepted token with no player")
		}
	})
}

package handshake

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/services/gateway/internal/auth"
	"github.com/realmstream/realmstream/services/gateway/internal/session"
)

type records map[string]session.Record

func (r records) GetRev(_ context.Context, id string) (session.Record, uint64, error) {
	rec, ok := r[id]
	if !ok {
		return rec, 0, session.ErrNotFound
	}
	return rec, 7, nil
}

type noResponders struct{ asked []string }

func (n *noResponders) Request(subj string, _ []byte, _ time.Duration) (*nats.Msg, error) {
	n.asked = append(n.asked, subj)
	return nil, nats.ErrNoResponders
}

type deny struct{ err error }

func (d deny) Check(context.Context, string, time.Time, string, string) error { return d.err }

func newHandshake(t *testing.T, recs records) (*Handshake, *auth.Signer, *noResponders) {
	t.Helper()
	signer, err := auth.NewSigner(auth.Key{ID: "k", Secret: []byte("test-key-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	nc := &noResponders{}
	return &Handshake{Signer: signer, Records: recs, NC: nc, Version: "v-test", Instance: "gw-1", Lifetime: time.Hour,
		DupWindow: 2 * time.Minute, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, signer, nc
}

// TestProtocolVersions: 0 is version 1; versions outside MinProtocol..MaxProtocol
// are refused UNSUPPORTED_PROTOCOL, counted as such.
func TestProtocolVersions(t *testing.T) {
	hs, _, _ := newHandshake(t, nil)
	for v, want := range map[uint32]uint32{0: 1, 1: 1, MaxProtocol: MaxProtocol} {
		if got, r := hs.Protocol(&schema.Hello{ProtocolVersion: v}); r != nil || got != want {
			t.Errorf("version %d: %d %v, want %d", v, got, r, want)
		}
	}
	if _, r := hs.Protocol(&schema.Hello{ProtocolVersion: MaxProtocol + 1}); r == nil || r.Code != schema.ErrorCode_ERROR_CODE_UNSUPPORTED_PROTOCOL || r.Reason != "unsupported_protocol" {
		t.Errorf("version %d: %v", MaxProtocol+1, r)
	}
}

// TestAuthenticate: a token is required unless in dev mode; a bad token and
// a revoked player are refused UNAUTHENTICATED, a deny list that does not
// answer INTERNAL.
func TestAuthenticate(t *testing.T) {
	hs, signer, _ := newHandshake(t, nil)
	ctx, now := context.Background(), time.Now()
	if _, r := hs.Authenticate(ctx, &schema.Hello{Name: "ann"}, now); r == nil || r.Code != schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
		t.Fatalf("no token outside dev mode: %v", r)
	}
	if _, r := hs.Authenticate(ctx, &schema.Hello{Token: "not-a-token"}, now); r == nil || r.Code != schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
		t.Fatalf("bad token: %v", r)
	}
	tok, err := signer.Issue(auth.Claims{Player: "p-1", Expiry: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if c, r := hs.Authenticate(ctx, &schema.Hello{Token: tok, Name: "ann"}, now); r != nil || c.Player != "p-1" || c.Name != "ann" {
		t.Fatalf("token: %+v %v", c, r)
	}
	hs.Dev = true
	if c, r := hs.Authenticate(ctx, &schema.Hello{Name: "bob"}, now); r != nil || c.Player != "p-bob" {
		t.Fatalf("dev mode: %+v %v", c, r)
	}
	hs.Deny = deny{err: session.ErrRevoked}
	if _, r := hs.Authenticate(ctx, &schema.Hello{Name: "bob"}, now); r == nil || r.Reason != "revoked" {
		t.Fatalf("revoked: %v", r)
	}
	hs.Deny = deny{err: errors.New("timeout")}
	if _, r := hs.Authenticate(ctx, &schema.Hello{Name: "bob"}, now); r == nil || r.Code != schema.ErrorCode_ERROR_CODE_INTERNAL || r.Reason != "deny_list" {
		t.Fatalf("deny list down: %v", r)
	}
}

// TestSession: a Hello without resume gets a new session; a resume asks for
// the hand-over, reads the record and takes it for this gateway; one whose
// record is gone is SESSION_EXPIRED (not counted as a refusal reason), one
// of another player or another session's token UNAUTHENTICATED; a record
// left open by a gateway that is gone widens the unknown range.
func TestSession(t *testing.T) {
	now := time.Now()
	recs := records{"s-open": {Player: "p-1", Start: now.Add(-time.Minute), Gateway: "gw-0", Open: true, LastSeq: 1024, RecentTo: 10, WrittenAt: now}}
	hs, _, nc := newHandshake(t, recs)
	ctx := context.Background()
	sid, rec, rev, r := hs.Session(ctx, &schema.Hello{}, auth.Claims{Player: "p-1", Name: "ann"}, now)
	if r != nil || sid == "" || rev != 0 || rec.Player != "p-1" || rec.Gateway != "gw-1" || !rec.Start.Equal(now) {
		t.Fatalf("new session: %q %+v %d %v", sid, rec, rev, r)
	}
	sid, rec, rev, r = hs.Session(ctx, &schema.Hello{ResumeSession: "s-open"}, auth.Claims{Player: "p-1", Session: "s-open"}, now)
	if r != nil || sid != "s-open" || rev != 7 || rec.Gateway != "gw-1" || rec.UnknownFrom != 10 || rec.UnknownTo != 1024 {
		t.Fatalf("resume: %q %+v %d %v", sid, rec, rev, r)
	}
	if len(nc.asked) != 1 || nc.asked[0] != TakeoverSubject("s-open") {
		t.Fatalf("hand-over requests %v", nc.asked)
	}
	if _, _, _, r := hs.Session(ctx, &schema.Hello{ResumeSession: "s-gone"}, auth.Claims{Player: "p-1", Session: "s-gone"}, now); r == nil || r.Code != schema.ErrorCode_ERROR_CODE_SESSION_EXPIRED || r.Reason != "" {
		t.Fatalf("gone: %v", r)
	}
	if _, _, _, r := hs.Session(ctx, &schema.Hello{ResumeSession: "s-open"}, auth.Claims{Player: "p-2", Session: "s-open"}, now); r == nil || r.Code != schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
		t.Fatalf("another player: %v", r)
	}
	if _, _, _, r := hs.Session(ctx, &schema.Hello{ResumeSession: "s-open"}, auth.Claims{Player: "p-1", Session: "s-other"}, now); r == nil || r.Code != schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
		t.Fatalf("token of another session: %v", r)
	}
}

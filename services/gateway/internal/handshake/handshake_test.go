package handshake

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/services/gateway/internal/auth"
	"github.com/realmstream/realmstream/services/gateway/internal/session"
)

// newHandshake is a Handshake on a real NATS server: the session bucket,
// the deny list and the hand-over requests are the gateway's own.
func newHandshake(t *testing.T) (*Handshake, *auth.Signer, *nats.Conn, *session.Store, *session.DenyList) {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := natstest.Connect(t, srv.URL)
	ctx := context.Background()
	store, err := session.Open(ctx, js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := session.OpenDenyList(ctx, js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewSigner(auth.Key{ID: "k", Secret: []byte("test-key-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	return &Handshake{Signer: signer, Records: store, NC: nc, Version: "v-test", Instance: "gw-1", Lifetime: time.Hour,
		DupWindow: 2 * time.Minute, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, signer, nc, store, dl
}

// TestProtocolVersions: 0 is version 1; versions outside MinProtocol..MaxProtocol
// are refused UNSUPPORTED_PROTOCOL, counted as such.
func TestProtocolVersions(t *testing.T) {
	hs, _, _, _, _ := newHandshake(t)
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
	hs, signer, _, _, dl := newHandshake(t)
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
	hs.Deny = dl
	if _, r := hs.Authenticate(ctx, &schema.Hello{Name: "bob"}, now); r != nil {
		t.Fatalf("not revoked: %v", r)
	}
	if err := dl.Revoke(ctx, "player.p-bob"); err != nil {
		t.Fatal(err)
	}
	// Tokens issued before the revocation are refused (an hour earlier:
	// the deny list keeps the time to the second).
	if _, r := hs.Authenticate(ctx, &schema.Hello{Name: "bob"}, now.Add(-time.Hour)); r == nil || r.Reason != "revoked" {
		t.Fatalf("revoked: %v", r)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, r := hs.Authenticate(done, &schema.Hello{Name: "ann"}, now); r == nil || r.Code != schema.ErrorCode_ERROR_CODE_INTERNAL || r.Reason != "deny_list" {
		t.Fatalf("deny list unreachable: %v", r)
	}
}

// TestSession: a Hello without resume gets a new session; a resume asks for
// the hand-over, reads the record and takes it for this gateway; one whose
// record is gone is SESSION_EXPIRED (not counted as a refusal reason), one
// of another player or another session's token UNAUTHENTICATED; a record
// left open by a gateway that is gone widens the unknown range.
func TestSession(t *testing.T) {
	now := time.Now()
	hs, _, nc, store, _ := newHandshake(t)
	ctx := context.Background()
	open := session.Record{Player: "p-1", Start: now.Add(-time.Minute), Gateway: "gw-0", Open: true, LastSeq: 1024, RecentTo: 10, WrittenAt: now}
	if err := store.Put(ctx, "s-open", open); err != nil {
		t.Fatal(err)
	}
	sid, rec, rev, r := hs.Session(ctx, &schema.Hello{}, auth.Claims{Player: "p-1", Name: "ann"}, now)
	if r != nil || sid == "" || rev != 0 || rec.Player != "p-1" || rec.Gateway != "gw-1" || !rec.Start.Equal(now) {
		t.Fatalf("new session: %q %+v %d %v", sid, rec, rev, r)
	}
	// No connection answers the hand-over (its gateway is gone): the seqs
	// after the record's last write become the unknown range.
	sid, rec, rev, r = hs.Session(ctx, &schema.Hello{ResumeSession: "s-open"}, auth.Claims{Player: "p-1", Session: "s-open"}, now)
	if r != nil || sid != "s-open" || rev == 0 || rec.Gateway != "gw-1" || rec.UnknownFrom != 10 || rec.UnknownTo != 1024 {
		t.Fatalf("resume of a crashed connection: %q %+v %d %v", sid, rec, rev, r)
	}
	// A live connection hands over: asked once on the takeover subject, and
	// the record is taken as it is.
	var asked atomic.Int32
	sub, err := nc.Subscribe(TakeoverSubject("s-open"), func(m *nats.Msg) { asked.Add(1); _ = m.Respond(nil) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	_, rec, _, r = hs.Session(ctx, &schema.Hello{ResumeSession: "s-open"}, auth.Claims{Player: "p-1", Session: "s-open"}, now)
	if r != nil || rec.UnknownTo != 0 || asked.Load() != 1 {
		t.Fatalf("resume after a hand-over: %+v %v, asked %d times", rec, r, asked.Load())
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

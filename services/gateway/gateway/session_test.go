package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/auth"
	"github.com/realmstream/realmstream/services/gateway/internal/session"
)

// startGateway runs one more gateway against h's NATS server (same
// streams, same session buckets), stopped at the end of the test.
func startGateway(t *testing.T, h *harness, id string, mut func(*Config)) *Service {
	t.Helper()
	cfg := testConfig(h.srv.URL, id)
	if mut != nil {
		mut(&cfg)
	}
	gw, err := New(cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	r := startService(t, "gateway "+id, gw)
	t.Cleanup(func() { _ = r.Stop(time.Hour) })
	return gw
}

func dialGW(t *testing.T, gw *Service) *client.Conn {
	t.Helper()
	c, err := client.Dial(context.Background(), "tcp://"+gw.TCPAddr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func move(x float32) *schema.ClientPacket {
	return &schema.ClientPacket{Body: &schema.ClientPacket_Move{Move: &schema.Move{X: x, Y: 5}}}
}

// sendAcked sends n moves and waits for their fresh acks; it returns them.
func sendAcked(t *testing.T, c *client.Conn, n int) []*schema.ClientPacket {
	t.Helper()
	ctx := context.Background()
	var out []*schema.ClientPacket
	for i := 0; i < n; i++ {
		p := move(float32(10 + i))
		if _, err := c.Send(ctx, p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	for range out {
		if p := next(t, c, 5*time.Second); p.GetAck() == nil || p.GetAck().Duplicate {
			t.Fatalf("got %v, want a fresh ack", p)
		}
	}
	return out
}

func resume(t *testing.T, gw *Service, w *schema.Welcome) (*client.Conn, *schema.Welcome, error) {
	t.Helper()
	c := dialGW(t, gw)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w2, err := c.Hello(ctx, &schema.Hello{Token: w.Token, ResumeSession: w.SessionId})
	return c, w2, err
}

func expectCode(t *testing.T, err error, code schema.ErrorCode) {
	t.Helper()
	se, ok := err.(*client.ServerError)
	if !ok || se.Code != code {
		t.Fatalf("got %v, want server error %v", err, code)
	}
}

// TestResumeOnAnotherGateway (issue 10 #3): a session resumed on a second
// gateway gets the right Welcome.last_seq, a resend of an acked command is
// acked as a duplicate, the same seq with a different command is refused
// SEQ_REUSED (never acked), and new seqs above last_seq are stored.
func TestResumeOnAnotherGateway(t *testing.T) {
	h := start(t, nil)
	gw2 := startGateway(t, h, "gw2", nil)
	ctx := context.Background()
	c, w := h.login("tcp", "rita", "z1_1")
	sent := sendAcked(t, c, 10)
	last := sent[len(sent)-1].Seq
	_ = c.Close()

	c2, w2, err := resume(t, gw2, w)
	if err != nil {
		t.Fatal(err)
	}
	if w2.LastSeq != last || w2.SessionId != w.SessionId || w2.GatewayId != "gw2" {
		t.Fatalf("welcome on gw2: last_seq %d session %s gateway %s, want %d %s gw2", w2.LastSeq, w2.SessionId, w2.GatewayId, last, w.SessionId)
	}
	before := h.streamCount()
	// The same command again: a duplicate ack.
	if err := c2.SendRaw(ctx, sent[len(sent)-1]); err != nil {
		t.Fatal(err)
	}
	if p := next(t, c2, 5*time.Second); p.AckSeq != last || p.GetAck() == nil || !p.GetAck().Duplicate {
		t.Fatalf("resend: %v, want duplicate ack of %d", p, last)
	}
	// The same seq, another command: refused, never acked.
	other := move(999)
	other.Seq = last
	if err := c2.SendRaw(ctx, other); err != nil {
		t.Fatal(err)
	}
	expectError(t, c2, last, schema.ErrorCode_ERROR_CODE_SEQ_REUSED)
	// A client that started over at 1 (the defect): refused too.
	restart := move(7)
	restart.Seq = 1
	_ = c2.SendRaw(ctx, restart)
	if p := next(t, c2, 5*time.Second); p.GetAck() != nil {
		t.Fatalf("seq 1 reused for another command was acked: %v", p)
	}
	// Above last_seq: stored.
	c2.SetSeq(w2.LastSeq)
	seq, _ := c2.Move(ctx, 50, 50)
	if p := next(t, c2, 5*time.Second); p.AckSeq != seq || p.GetAck() == nil || p.GetAck().Duplicate {
		t.Fatalf("new seq: %v", p)
	}
	if after := h.streamCount(); after != before+1 {
		t.Fatalf("stream grew by %d, want 1", after-before)
	}
	// The zone came back on gw2 too.
	if z := gw2.down.SubscribedZones(); len(z) != 1 {
		t.Fatalf("gw2 zones %v, want the session's zone", z)
	}
}

// TestResumeTakesOverLiveConnection: resuming on another gateway while the
// old connection is still open closes the old one after it wrote the exact
// last seq, so nothing it accepted is reused.
func TestResumeTakesOverLiveConnection(t *testing.T) {
	h := start(t, nil)
	gw2 := startGateway(t, h, "gw2", nil)
	c, w := h.login("tcp", "tom", "z0_0")
	sent := sendAcked(t, c, 5)
	_, w2, err := resume(t, gw2, w)
	if err != nil {
		t.Fatal(err)
	}
	if w2.LastSeq != sent[4].Seq {
		t.Fatalf("last_seq %d, want %d", w2.LastSeq, sent[4].Seq)
	}
	expectError(t, c, 0, schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED) // "session resumed on another connection"
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("old connection not closed")
	}
}

// TestResumeAfterGatewayRestart: the record survives the gateway (it is in
// NATS KV): a new gateway process gets the right last_seq.
func TestResumeAfterGatewayRestart(t *testing.T) {
	h := start(t, nil)
	c, w := h.login("tcp", "ursula", "z2_2")
	sent := sendAcked(t, c, 7)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	gw := startGateway(t, h, "test", nil) // same instance id, new process state
	_, w2, err := resume(t, gw, w)
	if err != nil {
		t.Fatal(err)
	}
	if w2.LastSeq != sent[6].Seq {
		t.Fatalf("after restart last_seq %d, want %d", w2.LastSeq, sent[6].Seq)
	}
}

// TestResumeAfterGatewayCrash: a gateway that dies leaves its record open
// with the reserved upper bound. The resume gets last_seq >= every seq
// used; a seq used after the record's last write is checked against the
// stored command: the same command is a duplicate, another is SEQ_REUSED.
func TestResumeAfterGatewayCrash(t *testing.T) {
	h := start(t, nil)
	gw2 := startGateway(t, h, "gw2", nil)
	ctx := context.Background()
	c, w := h.login("tcp", "vic", "z1_0")
	sent := sendAcked(t, c, 6)
	_ = c.Close()
	// Make the record what a crash after seq 3's write would leave: open,
	// LastSeq the reservation, recent commands known only up to seq 3.
	st, err := session.Open(ctx, h.js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	waitRecordClosed(t, st, w.SessionId)
	rec, _ := st.Get(ctx, w.SessionId)
	rec.Open, rec.Gateway = true, "crashed"
	rec.LastSeq = sent[2].Seq + session.ReserveAhead
	rec.RecentTo = sent[2].Seq
	rec.Recent = rec.Recent[:0]
	for _, e := range append([]session.Entry(nil), recentOf(t, st, w.SessionId)...) {
		if e.Seq <= sent[2].Seq {
			rec.Recent = append(rec.Recent, e)
		}
	}
	if err := st.Put(ctx, w.SessionId, rec); err != nil {
		t.Fatal(err)
	}
	c2, w2, err := resume(t, gw2, w)
	if err != nil {
		t.Fatal(err)
	}
	if w2.LastSeq < sent[5].Seq {
		t.Fatalf("last_seq %d below the last used seq %d", w2.LastSeq, sent[5].Seq)
	}
	_ = c2.SendRaw(ctx, sent[4]) // used after the last write, same command
	if p := next(t, c2, 5*time.Second); p.AckSeq != sent[4].Seq || p.GetAck() == nil || !p.GetAck().Duplicate {
		t.Fatalf("same command: %v, want duplicate ack", p)
	}
	other := move(321)
	other.Seq = sent[5].Seq
	_ = c2.SendRaw(ctx, other) // used after the last write, another command
	expectError(t, c2, sent[5].Seq, schema.ErrorCode_ERROR_CODE_SEQ_REUSED)
}

func waitRecordClosed(t *testing.T, st *session.Store, sid string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := st.Get(context.Background(), sid); err == nil && !r.Open {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("record not closed")
}

func recentOf(t *testing.T, st *session.Store, sid string) []session.Entry {
	t.Helper()
	r, err := st.Get(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	return r.Recent
}

// TestRevocation: the deny list refuses a revoked player at Hello, and a
// revoked session at resume, on every gateway.
func TestRevocation(t *testing.T) {
	h := start(t, func(c *Config) { c.Dev = false })
	gw2 := startGateway(t, h, "gw2", func(c *Config) { c.Dev = false })
	ctx := context.Background()
	tok, err := h.gw.IssueToken("u-eve", "eve", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := h.dial("tcp")
	w, err := c.Hello(ctx, &schema.Hello{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if err := h.gw.Revoke(ctx, "session."+w.SessionId); err != nil {
		t.Fatal(err)
	}
	_, _, err = resume(t, gw2, w)
	expectCode(t, err, schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED)

	time.Sleep(1100 * time.Millisecond) // iat has second resolution: revoke strictly after it
	if err := gw2.Revoke(ctx, "player.u-eve"); err != nil {
		t.Fatal(err)
	}
	for _, gw := range []*Service{h.gw, gw2} {
		_, err := dialGW(t, gw).Hello(ctx, &schema.Hello{Token: tok})
		expectCode(t, err, schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED)
	}
	// A token issued after the revocation works.
	time.Sleep(1100 * time.Millisecond)
	fresh, _ := h.gw.IssueToken("u-eve", "eve", time.Hour)
	if _, err := dialGW(t, gw2).Hello(ctx, &schema.Hello{Token: fresh}); err != nil {
		t.Fatalf("token issued after the revocation: %v", err)
	}
}

// TestSessionLifetime: resuming does not extend a session: the resume token
// expires at the session's end, a resume after it is SESSION_EXPIRED, and
// a connection open at the end is told and closed.
func TestSessionLifetime(t *testing.T) {
	life := 2 * time.Second
	h := start(t, func(c *Config) { c.SessionLifetime = life })
	gw2 := startGateway(t, h, "gw2", func(c *Config) { c.SessionLifetime = life })
	c, w := h.login("tcp", "walt", "")
	end := time.Unix(0, w.SessionExpiresAtNs)
	if w.TokenExpiresAtNs > w.SessionExpiresAtNs || time.Until(end) > life {
		t.Fatalf("token expires %v, session %v", time.Unix(0, w.TokenExpiresAtNs), end)
	}
	_ = c.Close()
	time.Sleep(500 * time.Millisecond)
	c2, w2, err := resume(t, gw2, w)
	if err != nil {
		t.Fatal(err)
	}
	if w2.SessionExpiresAtNs != w.SessionExpiresAtNs {
		t.Fatalf("resume moved the session end from %d to %d", w.SessionExpiresAtNs, w2.SessionExpiresAtNs)
	}
	expectError(t, c2, 0, schema.ErrorCode_ERROR_CODE_SESSION_EXPIRED) // at the end, on the open connection
	// The resume token is expired now too; with a token whose exp was
	// stretched (a login service's mistake) the record's start still rules.
	long, _ := h.gw.signer.Issue(auth.Claims{Player: w.PlayerId, Session: w.SessionId, Expiry: time.Now().Add(time.Hour)})
	_, err = dialGW(t, h.gw).Hello(context.Background(), &schema.Hello{Token: long, ResumeSession: w.SessionId})
	expectCode(t, err, schema.ErrorCode_ERROR_CODE_SESSION_EXPIRED)
}

// TestHandshakeVersions: an unsupported protocol version is refused with a
// clear error; Welcome carries the versions, limits and (on request) the
// world; WorldInfoRequest is answered before and after Hello.
func TestHandshakeVersions(t *testing.T) {
	h := start(t, func(c *Config) { c.Version = "v9.8.7"; c.MaxFrame = 2048; c.Rate = 50; c.Burst = 70 })
	ctx := context.Background()
	_, err := h.dial("tcp").Hello(ctx, &schema.Hello{Name: "x", ProtocolVersion: 99})
	expectCode(t, err, schema.ErrorCode_ERROR_CODE_UNSUPPORTED_PROTOCOL)
	if se := err.(*client.ServerError); !bytes.Contains([]byte(se.Msg), []byte("1..3")) {
		t.Fatalf("message %q does not name the supported versions", se.Msg)
	}
	c := h.dial("ws")
	if _, err := c.Send(ctx, &schema.ClientPacket{Body: &schema.ClientPacket_WorldInfo{WorldInfo: &schema.WorldInfoRequest{}}}); err != nil {
		t.Fatal(err)
	}
	p := next(t, c, 5*time.Second)
	if wi := p.GetWorldInfo(); wi == nil || len(wi.Zones) != 9 || wi.ZoneSize != 1000 || p.AckSeq != 1 {
		t.Fatalf("world info before hello: %v", p)
	}
	w, err := c.Hello(ctx, &schema.Hello{Name: "yann", WantWorld: true})
	if err != nil {
		t.Fatal(err)
	}
	l := w.Limits
	if w.ServerVersion != "v9.8.7" || w.ProtocolVersion != client.ProtocolVersion || l.MaxFrameBytes != 2048 || l.RatePerSec != 50 || l.Burst != 70 || l.MaxChatBytes == 0 {
		t.Fatalf("welcome %v", w)
	}
	z := w.World.Zones[4] // z1_1: neighbours all around
	if z.Id != "z1_1" || len(z.Neighbours) != 8 || z.OriginX != 1000 || z.OriginY != 1000 {
		t.Fatalf("zone %v", z)
	}
	// A version 1 client (no protocol_version) is still served.
	old := h.dial("tcp") // without the SDK's defaults
	if _, err := old.Send(ctx, &schema.ClientPacket{Body: &schema.ClientPacket_Hello{Hello: &schema.Hello{Name: "old"}}}); err != nil {
		t.Fatal(err)
	}
	if w1 := next(t, old, 5*time.Second).GetWelcome(); w1 == nil || w1.ProtocolVersion != 1 {
		t.Fatalf("v1 hello: %v", w1)
	}
}

// TestLoginEndpointRefusals: POST /v1/session refuses bad requests with the
// documented codes and answers 503 while no account store (persist) runs.
// The whole login against a real persist is TestLoginAgainstStack in
// stack/cmd/realmstream; persist's TestAccountsServed covers both stores.
func TestLoginEndpointRefusals(t *testing.T) {
	h := start(t, func(c *Config) { c.Dev = false })
	url := "http://" + h.gw.WSAddr() + LoginPath
	post := func(body string) (int, LoginError) {
		resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("no CORS header")
		}
		var e LoginError
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, e
	}
	for body, want := range map[string]struct {
		status int
		code   string
	}{
		`{"device_id":"dev-0123456789"}`:                       {http.StatusServiceUnavailable, "unavailable"},
		`{"device_id":"dev-0123456789","custom_id":"abcdefg"}`: {http.StatusBadRequest, "invalid_argument"},
		`{}`:       {http.StatusBadRequest, "invalid_argument"},
		`not json`: {http.StatusBadRequest, "invalid_argument"},
		`{"device_id":"` + string(bytes.Repeat([]byte("a"), 5000)) + `"}`: {http.StatusRequestEntityTooLarge, "too_large"},
	} {
		if status, e := post(body); status != want.status || e.Error.Code != want.code || e.Error.Message == "" {
			t.Errorf("%.40s: %d %+v, want %d %s", body, status, e, want.status, want.code)
		}
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	_ = wire.AccountsAuthenticate
}

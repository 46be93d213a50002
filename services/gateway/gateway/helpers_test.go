package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/wire"
)

type harness struct {
	t    testing.TB
	srv  *natstest.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	gw   *Service
	stop func() error // cancels Run and returns its error
}

func testLogger() *slog.Logger {
	if os.Getenv("GATEWAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testConfig is a dev-mode gateway on loopback ports against natsURL.
func testConfig(natsURL, id string) Config {
	cfg := DefaultConfig()
	cfg.NATSURL = natsURL
	cfg.HTTPAddr, cfg.TCPAddr, cfg.WSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.InstanceID = id
	cfg.Dev = true
	cfg.TokenKey = "test-key-0123456789abcdef"
	return cfg
}

// startService starts gw the way the stack does (svcmain.Start) and fails
// the test when it is not ready within 15 s.
func startService(t testing.TB, name string, gw *Service) *svcmain.Running {
	t.Helper()
	r, err := svcmain.Start(context.Background(), name, gw, 15*time.Second)
	if err != nil {
		t.Fatalf("gateway did not start: %v", err)
	}
	return r
}

// start runs a gateway in dev mode against a fresh embedded JetStream server.
func start(t testing.TB, mut func(*Config)) *harness {
	t.Helper()
	srv, nc, js := natstest.StartWithStreams(t)
	cfg := testConfig(srv.URL, "test")
	cfg.ShutdownTimeout = 10 * time.Second
	if mut != nil {
		mut(&cfg)
	}
	gw, err := New(cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	r := startService(t, "gateway", gw)
	h := &harness{t: t, srv: srv, nc: nc, js: js, gw: gw}
	h.stop = func() error {
		err := r.Stop(30 * time.Second)
		select {
		case <-r.Done():
		default:
			t.Fatal("gateway Run did not return 30s after cancel")
		}
		return err
	}
	t.Cleanup(func() { _ = h.stop() })
	return h
}

func (h *harness) addr(transport string) string {
	if transport == "ws" {
		return "ws://" + h.gw.WSAddr() + "/"
	}
	return "tcp://" + h.gw.TCPAddr()
}

func (h *harness) dial(transport string) *client.Conn {
	h.t.Helper()
	c, err := client.Dial(context.Background(), h.addr(transport), client.Options{})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	return c
}

// login dials, says hello with name and joins zone (if not empty), waiting for the join's ack.
func (h *harness) login(transport, name, zone string) (*client.Conn, *schema.Welcome) {
	h.t.Helper()
	c := h.dial(transport)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := c.Hello(ctx, &schema.Hello{Name: name})
	if err != nil {
		h.t.Fatalf("hello: %v", err)
	}
	if zone != "" {
		seq, err := c.Join(ctx, zone)
		if err != nil {
			h.t.Fatal(err)
		}
		p := next(h.t, c, 10*time.Second)
		if p.AckSeq != seq || p.GetAck() == nil {
			h.t.Fatalf("join: got %v, want ack of %d", p, seq)
		}
	}
	return c, w
}

// next returns the next packet or fails after timeout.
func next(t testing.TB, c *client.Conn, timeout time.Duration) *schema.ServerPacket {
	t.Helper()
	select {
	case p, ok := <-c.Packets():
		if !ok {
			t.Fatalf("connection closed: %v", c.Err())
		}
		return p
	case <-time.After(timeout):
		t.Fatalf("no packet within %v", timeout)
	}
	return nil
}

// expectError reads the next packet and checks it is an Error with code for seq.
func expectError(t testing.TB, c *client.Conn, seq uint64, code schema.ErrorCode) {
	t.Helper()
	p := next(t, c, 5*time.Second)
	if p.GetError() == nil || p.GetError().Code != code || p.AckSeq != seq {
		t.Fatalf("got %v, want Error %v for seq %d", p, code, seq)
	}
}

// streamMsgs returns every message of the CMD stream.
func (h *harness) streamMsgs() []*jetstream.RawStreamMsg {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.js.Stream(ctx, wire.StreamCommands)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// streamCount counts the clients' commands in the CMD stream (not the
// gateway's own Disconnect commands of closed connections, issue 10 #13).
func (h *harness) streamCount() uint64 {
	h.t.Helper()
	n := uint64(0)
	for _, m := range h.streamMsgs() {
		if decodeCommand(h.t, m.Data).GetDisconnect() == nil {
			n++
		}
	}
	return n
}

func decodeCommand(t testing.TB, b []byte) *schema.Command {
	var c schema.Command
	if err := proto.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

func publishUpdate(t testing.TB, nc *nats.Conn, u *schema.ZoneUpdate) {
	t.Helper()
	b, err := proto.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(wire.UpdateSubject(u.Zone, u.Cell), b); err != nil {
		t.Fatal(err)
	}
}

func kind(p *schema.ServerPacket) string {
	switch b := p.Body.(type) {
	case *schema.ServerPacket_Ack:
		return "ack"
	case *schema.ServerPacket_Busy:
		return "busy"
	case *schema.ServerPacket_Error:
		return "error:" + b.Error.Code.String()
	default:
		return fmt.Sprintf("%T", b)
	}
}

// queuedBytes is what waits in c's send queue, in bytes.
func queuedBytes(c *conn) int64 {
	b, _ := c.q.Pending()
	return b
}

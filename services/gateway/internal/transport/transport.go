// Package transport is the client socket of the gateway: TCP with
// length-prefixed frames or a WebSocket with binary messages, behind one
// interface (Conn), and the listeners they are accepted on (with TLS when
// configured). It knows nothing of sessions, commands or updates.
package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/certs"
)

// ErrTooLarge is returned by ReadPacket for a packet above the max frame.
var ErrTooLarge = errors.New("packet too large")

// ErrTextMessage is returned by a WebSocket's ReadPacket for a text message.
var ErrTextMessage = errors.New("text message")

// errTruncatedFrames would mean a bug in the update fan-out's framing.
var errTruncatedFrames = errors.New("gateway: truncated update frames")

// Conn is one client socket. ReadPacket is called by the reader goroutine
// only; WritePackets and WriteFrames by the writer goroutine only (and once
// after the writer stopped writing, for a last notice).
type Conn interface {
	ReadPacket() ([]byte, error) // valid until the next call
	WritePackets(payloads [][]byte) error
	// WriteFrames writes payloads, then framed: packets already framed as
	// on TCP (4-byte big-endian length + packet), in one socket write.
	WriteFrames(payloads [][]byte, framed []byte) error
	SetWriteTimeout(d time.Duration) // writer goroutine only
	BoundWrite(d time.Duration)      // any goroutine: the write under way fails after d
	Close()
	// CloseGracefully ends the connection after everything written so far
	// has been delivered, waiting at most linger (or until readerDone).
	CloseGracefully(linger time.Duration, readerDone <-chan struct{})
	// Discard reads and drops input until the socket fails (after a fatal
	// packet, while CloseGracefully lingers).
	Discard()
	Name() string
}

// Listen opens a client listener (TCP frames or WebSocket) on addr, with TLS
// when certFile and keyFile are set (reloaded when they change): session
// tokens and play never cross the network in clear.
func Listen(addr, certFile, keyFile string, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || certFile == "" {
		return ln, err
	}
	r, err := certs.NewReloader(certFile, keyFile, time.Second, log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}), nil
}

// TCP is a client on a TCP socket: 4-byte big-endian length + packet.
type TCP struct {
	c       net.Conn
	raw     syscall.RawConn // plain TCP only: TryWrite
	fr      *wire.FrameReader
	wbuf    []byte
	timeout time.Duration
}

// NewTCP wraps c; packets above maxFrame are ErrTooLarge, and each write
// fails after writeTimeout.
func NewTCP(c net.Conn, maxFrame int, writeTimeout time.Duration) *TCP {
	return &TCP{c: c, raw: rawOf(c), fr: wire.NewFrameReader(c, maxFrame), timeout: writeTimeout}
}

// CanTry says whether TryWrite works on this socket (plain TCP on a unix
// system; not TLS): then a tick's update frames can be written by the
// fan-out itself when the socket takes them, instead of waking the
// connection's writer goroutine for each.
func (t *TCP) CanTry() bool { return t.raw != nil }

func (t *TCP) ReadPacket() ([]byte, error) {
	b, err := t.fr.Next()
	if errors.Is(err, wire.ErrFrameTooLarge) {
		return nil, ErrTooLarge
	}
	return b, err
}

func (t *TCP) WritePackets(ps [][]byte) error { return t.WriteFrames(ps, nil) }

// WriteFrames frames ps into the write buffer and appends framed; framed
// alone (a tick's update frames and nothing else) is written as it is.
func (t *TCP) WriteFrames(ps [][]byte, framed []byte) error {
	out := framed
	if len(ps) > 0 {
		t.wbuf = t.wbuf[:0]
		for _, p := range ps {
			t.wbuf = wire.AppendFrame(t.wbuf, p)
		}
		t.wbuf = append(t.wbuf, framed...)
		out = t.wbuf
	}
	_ = t.c.SetWriteDeadline(time.Now().Add(t.timeout))
	_, err := t.c.Write(out)
	if cap(t.wbuf) > 256<<10 {
		t.wbuf = nil // do not keep a burst's buffer forever
	}
	return err
}

func (t *TCP) SetWriteTimeout(d time.Duration) { t.timeout = d }
func (t *TCP) BoundWrite(d time.Duration)      { _ = t.c.SetWriteDeadline(time.Now().Add(d)) }

func (t *TCP) Close()   { _ = t.c.Close() }
func (t *TCP) Discard() { _, _ = io.Copy(io.Discard, t.c) }

// CloseGracefully half-closes (FIN after our last byte) and lets the reader
// drain what the client still sends until it closes or linger passes. Closing
// with unread input would make the kernel send a reset, and a reset can
// destroy answers the client has not read yet.
func (t *TCP) CloseGracefully(linger time.Duration, readerDone <-chan struct{}) {
	if tc, ok := t.c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = t.c.SetReadDeadline(time.Now().Add(linger))
	select {
	case <-readerDone:
	case <-time.After(linger):
	}
	_ = t.c.Close()
}
func (t *TCP) Name() string { return "tcp" }

// WebSocket is a client on a WebSocket: one binary message per packet.
type WebSocket struct {
	c       *websocket.Conn
	ctx     context.Context
	buf     []byte // max+1 bytes: a full buffer means the message was too large
	timeout time.Duration
}

// NewWebSocket wraps c; ctx must outlive the connection (not the upgrade
// request's context).
func NewWebSocket(ctx context.Context, c *websocket.Conn, maxFrame int, writeTimeout time.Duration) *WebSocket {
	return &WebSocket{c: c, ctx: ctx, buf: make([]byte, maxFrame+1), timeout: writeTimeout}
}

func (t *WebSocket) ReadPacket() ([]byte, error) {
	typ, r, err := t.c.Reader(t.ctx)
	if err != nil {
		return nil, err
	}
	n := 0
	for {
		m, err := r.Read(t.buf[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if n == len(t.buf) {
			return nil, ErrTooLarge
		}
	}
	if typ != websocket.MessageBinary {
		return nil, ErrTextMessage
	}
	return t.buf[:n], nil
}

func (t *WebSocket) WritePackets(ps [][]byte) error {
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	defer cancel()
	for _, p := range ps {
		if err := t.c.Write(ctx, websocket.MessageBinary, p); err != nil {
			return err
		}
	}
	return nil
}

// WriteFrames sends ps, then each frame of framed, as one binary message
// each (a WebSocket message is its own frame: no length prefix).
func (t *WebSocket) WriteFrames(ps [][]byte, framed []byte) error {
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	defer cancel()
	for _, p := range ps {
		if err := t.c.Write(ctx, websocket.MessageBinary, p); err != nil {
			return err
		}
	}
	for len(framed) >= wire.FrameHeaderSize {
		n := int(binary.BigEndian.Uint32(framed))
		framed = framed[wire.FrameHeaderSize:]
		if n > len(framed) {
			return errTruncatedFrames
		}
		if err := t.c.Write(ctx, websocket.MessageBinary, framed[:n]); err != nil {
			return err
		}
		framed = framed[n:]
	}
	return nil
}

func (t *WebSocket) SetWriteTimeout(d time.Duration) { t.timeout = d }

// BoundWrite does nothing on a WebSocket (its writes are bounded by a
// context made per write); the slow consumer's kill timer closes it.
func (t *WebSocket) BoundWrite(time.Duration) {}

func (t *WebSocket) Close() { _ = t.c.CloseNow() }

// Discard does nothing on a WebSocket: after an oversized message the
// stream is mid-message, and the close handshake (CloseGracefully) already
// orders our last messages before the close frame.
func (t *WebSocket) Discard() {}

// CloseGracefully runs the WebSocket close handshake: the client reads every
// message before our close frame.
func (t *WebSocket) CloseGracefully(linger time.Duration, _ <-chan struct{}) {
	done := make(chan struct{})
	go func() { _ = t.c.Close(websocket.StatusGoingAway, "closing"); close(done) }()
	select {
	case <-done:
	case <-time.After(linger):
		_ = t.c.CloseNow()
	}
}
func (t *WebSocket) Name() string { return "ws" }

package bots

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/realmstream/realmstream/libs/wire"
)

// transport is one connection to a gateway. write takes length-prefixed
// frames (TCP sends them with one write; WebSocket one message per frame);
// read returns one payload, valid until the next read. One goroutine reads,
// one at a time writes (the bot's connect code, then its scheduler).
type transport interface {
	write(frames []byte) error
	read() ([]byte, error)
	setReadDeadline(t time.Time)
	close()
}

func dial(ctx context.Context, addr string) (transport, error) {
	if strings.HasPrefix(addr, "ws://") || strings.HasPrefix(addr, "wss://") {
		c, _, err := websocket.Dial(ctx, addr, nil)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		c.SetReadLimit(int64(wire.DefaultMaxFrame * 16))
		return &wsConn{c: c}, nil
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(addr, "tcp://"))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &tcpConn{c: nc, fr: wire.NewFrameReader(nc, wire.DefaultMaxFrame*16)}, nil
}

type tcpConn struct {
	c          net.Conn
	fr         *wire.FrameReader
	deadlineAt time.Time // when the write deadline was last pushed forward
}

func (t *tcpConn) write(frames []byte) error {
	// A write deadline guards against a gateway that stopped reading; it is
	// pushed forward at most once a second (a timer update, not per packet).
	if now := time.Now(); now.Sub(t.deadlineAt) > time.Second {
		_ = t.c.SetWriteDeadline(now.Add(5 * time.Second))
		t.deadlineAt = now
	}
	_, err := t.c.Write(frames)
	return err
}

func (t *tcpConn) read() ([]byte, error)       { return t.fr.Next() }
func (t *tcpConn) setReadDeadline(d time.Time) { _ = t.c.SetReadDeadline(d) }
func (t *tcpConn) close()                      { _ = t.c.Close() }

type wsConn struct {
	c        *websocket.Conn
	deadline time.Time
}

func (w *wsConn) write(frames []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(frames) >= wire.FrameHeaderSize {
		n := int(binary.BigEndian.Uint32(frames))
		frames = frames[wire.FrameHeaderSize:]
		if err := w.c.Write(ctx, websocket.MessageBinary, frames[:n]); err != nil {
			return err
		}
		frames = frames[n:]
	}
	return nil
}

func (w *wsConn) read() ([]byte, error) {
	ctx := context.Background()
	if !w.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, w.deadline)
		defer cancel()
	}
	_, b, err := w.c.Read(ctx)
	return b, err
}

func (w *wsConn) setReadDeadline(d time.Time) { w.deadline = d }
func (w *wsConn) close()                      { _ = w.c.CloseNow() }

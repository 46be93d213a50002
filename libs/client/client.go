// Package client is the Go SDK of a Realmstream game client: it connects to a
// gateway over TCP (length-prefixed frames) or WebSocket (binary messages),
// opens or resumes a session, sends packets with an auto-incrementing seq and
// delivers the server's packets on a channel.
//
// A Conn is safe for concurrent use. Received packets are delivered in order
// on Packets(); if nobody reads them the reader stops and the gateway, whose
// per-client send queue then fills, disconnects the client as a slow consumer.
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// ProtocolVersion is the wire protocol this SDK speaks (Hello.protocol_version).
// Version 3: a zone tick's cell views arrive merged in one Updates packet per
// tick (ZoneUpdates reads both shapes); send Hello.protocol_version 2 to get
// one Update packet per cell.
const ProtocolVersion = 3

// ClientName and ClientVersion identify this SDK in Hello (logged by the gateway).
const (
	ClientName    = "realmstream-go"
	ClientVersion = "0.3.0"
)

// ErrClosed is returned by Send after the connection closed.
var ErrClosed = errors.New("client: connection closed")

// ServerError is an Error packet received in answer to a request.
type ServerError struct {
	AckSeq uint64
	Code   schema.ErrorCode
	Msg    string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("client: server error %s for seq %d: %s", e.Code, e.AckSeq, e.Msg)
}

// ResendSameSeq says whether the command this error answers should be sent
// again with the SAME seq (SendRaw with the packet as first sent). See
// ResendSameSeq for the codes.
func (e *ServerError) ResendSameSeq() bool { return resendCode(e.Code) }

// ResendSameSeq says whether p, an answer to a command, asks for the command
// to be sent again unchanged, with the same seq:
//   - Busy: not accepted; resend after retry_after_ms.
//   - OUTCOME_UNKNOWN: the gateway could not learn whether it was stored; the
//     resend is deduplicated (Ack duplicate=true if it was), so it is applied
//     at most once. A NEW seq here could apply it twice.
//   - INTERNAL: not stored; resend.
//   - SHUTTING_DOWN: not stored; resend after reconnecting (resume the session).
//
// The gateway accepts such a resend on the same connection (it remembers the
// last 64 of them) and on a resumed one. Every other answer is final.
func ResendSameSeq(p *schema.ServerPacket) bool {
	switch b := p.GetBody().(type) {
	case *schema.ServerPacket_Busy:
		return true
	case *schema.ServerPacket_Error:
		return resendCode(b.Error.GetCode())
	}
	return false
}

func resendCode(c schema.ErrorCode) bool {
	switch c {
	case schema.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN, schema.ErrorCode_ERROR_CODE_INTERNAL, schema.ErrorCode_ERROR_CODE_SHUTTING_DOWN:
		return true
	}
	return false
}

// ZoneUpdates returns the cell views a server packet carries: every cell of
// an Updates packet (protocol 3: one per zone tick) or the one cell of an
// Update packet (protocols 1 and 2); nil for any other packet.
func ZoneUpdates(p *schema.ServerPacket) []*schema.ZoneUpdate {
	switch b := p.GetBody().(type) {
	case *schema.ServerPacket_Updates:
		return b.Updates.GetZoneUpdates()
	case *schema.ServerPacket_Update:
		if u := b.Update.GetZoneUpdate(); u != nil {
			return []*schema.ZoneUpdate{u}
		}
	}
	return nil
}

// Options configure a connection.
type Options struct {
	// MaxFrame bounds a received frame (default wire.DefaultMaxFrame*16: updates can be larger than commands).
	MaxFrame int
	// RecvBuffer is the capacity of the Packets channel (default 1024).
	RecvBuffer int
	// DialTimeout bounds the connection set-up (default 5s).
	DialTimeout time.Duration
}

type transport interface {
	write(ctx context.Context, payload []byte) error
	read() ([]byte, error)
	close() error
}

// Conn is one client connection.
type Conn struct {
	tr transport

	wmu  sync.Mutex // serialises seq assignment and writes so seqs reach the wire in order
	seq  uint64
	wbuf []byte

	packets chan *schema.ServerPacket
	done    chan struct{}
	err     error // set before done closes

	pmu   sync.Mutex
	pings map[uint64]chan *schema.ServerPacket

	closeOnce sync.Once
}

// Dial connects to addr: "tcp://host:port", "ws://host:port/path", or a bare
// "host:port" (TCP).
func Dial(ctx context.Context, addr string, o Options) (*Conn, error) {
	if o.MaxFrame <= 0 {
		o.MaxFrame = wire.DefaultMaxFrame * 16
	}
	if o.RecvBuffer <= 0 {
		o.RecvBuffer = 1024
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	var tr transport
	switch {
	case strings.HasPrefix(addr, "ws://"), strings.HasPrefix(addr, "wss://"):
		u, err := url.Parse(addr)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		ws, _, err := websocket.Dial(dctx, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("client: dial %s: %w", addr, err)
		}
		ws.SetReadLimit(int64(o.MaxFrame))
		tr = &wsTransport{c: ws}
	default:
		hostport := strings.TrimPrefix(addr, "tcp://")
		var d net.Dialer
		nc, err := d.DialContext(dctx, "tcp", hostport)
		if err != nil {
			return nil, fmt.Errorf("client: dial %s: %w", addr, err)
		}
		tr = &tcpTransport{c: nc, fr: wire.NewFrameReader(nc, o.MaxFrame)}
	}
	c := &Conn{
		tr:      tr,
		packets: make(chan *schema.ServerPacket, o.RecvBuffer),
		done:    make(chan struct{}),
		pings:   map[uint64]chan *schema.ServerPacket{},
	}
	go c.readLoop()
	return c, nil
}

// Packets delivers every received packet except Pongs answering Ping. It is
// closed when the connection ends; Err then says why.
func (c *Conn) Packets() <-chan *schema.ServerPacket { return c.packets }

// Done is closed when the connection ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is the reason the connection ended (after Done).
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close closes the connection.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() { err = c.tr.close() })
	return err
}

func (c *Conn) readLoop() {
	var err error
	defer func() {
		c.err = err
		close(c.done)
		close(c.packets)
		_ = c.Close()
	}()
	for {
		var b []byte
		b, err = c.tr.read()
		if err != nil {
			return
		}
		p := &schema.ServerPacket{}
		if err = proto.Unmarshal(b, p); err != nil {
			err = fmt.Errorf("client: bad server packet: %w", err)
			return
		}
		if _, ok := p.Body.(*schema.ServerPacket_Pong); ok {
			c.pmu.Lock()
			ch := c.pings[p.AckSeq]
			delete(c.pings, p.AckSeq)
			c.pmu.Unlock()
			if ch != nil {
				ch <- p
				continue
			}
		}
		c.packets <- p
	}
}

// Seq returns the last seq assigned.
func (c *Conn) Seq() uint64 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.seq
}

// Reserve assigns the next seq without sending anything: the caller sets it
// on a packet and sends it with SendRaw (to record it before the write).
func (c *Conn) Reserve() uint64 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.seq++
	return c.seq
}

// SetSeq sets the last assigned seq (e.g. to continue a resumed session).
func (c *Conn) SetSeq(s uint64) {
	c.wmu.Lock()
	c.seq = s
	c.wmu.Unlock()
}

// Send assigns the next seq to p, sends it and returns the seq.
func (c *Conn) Send(ctx context.Context, p *schema.ClientPacket) (uint64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.seq++
	p.Seq = c.seq
	return p.Seq, c.writeLocked(ctx, p)
}

// SendRaw sends p with the seq it already has (resends after a resume).
func (c *Conn) SendRaw(ctx context.Context, p *schema.ClientPacket) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(ctx, p)
}

// SendBytes sends an arbitrary payload as one frame/message (tests of bad input).
func (c *Conn) SendBytes(ctx context.Context, b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.tr.write(ctx, b)
}

func (c *Conn) writeLocked(ctx context.Context, p *schema.ClientPacket) error {
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	var err error
	c.wbuf, err = proto.MarshalOptions{}.MarshalAppend(c.wbuf[:0], p)
	if err != nil {
		return fmt.Errorf("client: marshal: %w", err)
	}
	return c.tr.write(ctx, c.wbuf)
}

// Move sends a Move.
func (c *Conn) Move(ctx context.Context, x, y float32) (uint64, error) {
	return c.Send(ctx, &schema.ClientPacket{Body: &schema.ClientPacket_Move{Move: &schema.Move{X: x, Y: y}}})
}

// Join sends a Join.
func (c *Conn) Join(ctx context.Context, zone string) (uint64, error) {
	return c.Send(ctx, &schema.ClientPacket{Body: &schema.ClientPacket_Join{Join: &schema.Join{Zone: zone}}})
}

// Chat sends a Chat.
func (c *Conn) Chat(ctx context.Context, text string) (uint64, error) {
	return c.Send(ctx, &schema.ClientPacket{Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: text}}})
}

// Attack sends an Attack.
func (c *Conn) Attack(ctx context.Context, target string) (uint64, error) {
	return c.Send(ctx, &schema.ClientPacket{Body: &schema.ClientPacket_Attack{Attack: &schema.Attack{TargetId: target}}})
}

// Hello opens (token or dev-mode name) or resumes (resumeSession) a session and
// waits for the Welcome. It fills the protocol version and client name when
// they are empty. After a resume, continue numbering above
// Welcome.last_seq (SetSeq(max(Seq(), w.LastSeq))) and resend unanswered
// commands with their own seqs (docs/clients.md "Resume"). Packets that arrive before it are dropped; use it
// right after Dial.
func (c *Conn) Hello(ctx context.Context, h *schema.Hello) (*schema.Welcome, error) {
	if h.ProtocolVersion == 0 {
		h.ProtocolVersion = ProtocolVersion
	}
	if h.ClientName == "" {
		h.ClientName, h.ClientVersion = ClientName, ClientVersion
	}
	if _, err := c.Send(ctx, &schema.ClientPacket{Body: &schema.ClientPacket_Hello{Hello: h}}); err != nil {
		return nil, err
	}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case p, ok := <-c.packets:
			if !ok {
				return nil, fmt.Errorf("client: closed before welcome: %w", c.err)
			}
			switch b := p.Body.(type) {
			case *schema.ServerPacket_Welcome:
				return b.Welcome, nil
			case *schema.ServerPacket_Error:
				return nil, &ServerError{AckSeq: p.AckSeq, Code: b.Error.Code, Msg: b.Error.Message}
			}
		}
	}
}

// Ping measures the round trip to the gateway.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	ch := make(chan *schema.ServerPacket, 1)
	c.wmu.Lock()
	c.seq++
	seq := c.seq
	c.pmu.Lock()
	c.pings[seq] = ch
	c.pmu.Unlock()
	start := time.Now()
	err := c.writeLocked(ctx, &schema.ClientPacket{Seq: seq, Body: &schema.ClientPacket_Ping{Ping: &schema.Ping{ClientTimeNs: start.UnixNano()}}})
	c.wmu.Unlock()
	if err != nil {
		return 0, err
	}
	select {
	case <-ch:
		return time.Since(start), nil
	case <-c.done:
		return 0, fmt.Errorf("client: closed during ping: %w", c.err)
	case <-ctx.Done():
		c.pmu.Lock()
		delete(c.pings, seq)
		c.pmu.Unlock()
		return 0, ctx.Err()
	}
}

type tcpTransport struct {
	c  net.Conn
	fr *wire.FrameReader
	hb []byte
}

func (t *tcpTransport) write(ctx context.Context, payload []byte) error {
	if d, ok := ctx.Deadline(); ok {
		_ = t.c.SetWriteDeadline(d)
	} else {
		_ = t.c.SetWriteDeadline(time.Time{})
	}
	t.hb = wire.AppendFrame(t.hb[:0], payload)
	_, err := t.c.Write(t.hb)
	return err
}

func (t *tcpTransport) read() ([]byte, error) { return t.fr.Next() }
func (t *tcpTransport) close() error          { return t.c.Close() }

type wsTransport struct{ c *websocket.Conn }

func (t *wsTransport) write(ctx context.Context, payload []byte) error {
	return t.c.Write(ctx, websocket.MessageBinary, payload)
}

func (t *wsTransport) read() ([]byte, error) {
	_, b, err := t.c.Read(context.Background())
	return b, err
}

func (t *wsTransport) close() error { return t.c.Close(websocket.StatusNormalClosure, "") }

// Package faultproxy is a small TCP proxy that sits between one service
// process and one server (NATS, Redis, Postgres) in the end-to-end tests and
// injects network faults on that link only: added latency, connection resets,
// and cuts (the link refuses connections until restored).
//
// Latency is added per chunk in each direction by a delay line: every chunk
// read from one side is written to the other side no earlier than
// read time + latency, in order, so throughput is not capped by the latency
// (a pipe with a delay, not a stop-and-wait link).
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards every connection accepted on its listener to Target.
type Proxy struct {
	// Name labels the link in logs and reports, e.g. "world-1->redis".
	Name   string
	Target string

	ln      net.Listener
	latency atomic.Int64 // nanoseconds
	cut     atomic.Bool

	mu     sync.Mutex
	conns  map[*link]struct{}
	closed bool
	wg     sync.WaitGroup

	accepted atomic.Int64
	refused  atomic.Int64
	resets   atomic.Int64
}

type link struct {
	client, server net.Conn
	once           sync.Once
}

// closeReset closes both sides with SO_LINGER 0, so the peers see a RST
// (ECONNRESET) rather than an orderly FIN.
func (l *link) closeReset() {
	l.once.Do(func() {
		for _, c := range []net.Conn{l.client, l.server} {
			if c == nil {
				continue
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
	})
}

func (l *link) close() {
	l.once.Do(func() {
		_ = l.client.Close()
		if l.server != nil {
			_ = l.server.Close()
		}
	})
}

// Start listens on a free port of 127.0.0.1 and forwards to target.
func Start(name, target string) (*Proxy, error) {
	return StartOn(name, "127.0.0.1:0", target)
}

// StartOn listens on addr and forwards to target.
func StartOn(name, addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy %s: listen %s: %w", name, addr, err)
	}
	p := &Proxy{Name: name, Target: target, ln: ln, conns: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address clients connect to (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the port of Addr.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// SetLatency adds d of one-way delay in each direction (0 removes it).
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// Reset closes every open connection with a TCP reset; new connections are
// accepted as usual (the peer reconnects).
func (p *Proxy) Reset() {
	p.mu.Lock()
	ls := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	for _, l := range ls {
		l.closeReset()
	}
	p.resets.Add(int64(len(ls)))
}

// Cut resets every open connection and refuses (accepts and resets at once)
// every new one until Restore: the server looks unreachable from this
// service only.
func (p *Proxy) Cut() {
	p.cut.Store(true)
	p.Reset()
}

// Restore ends a Cut.
func (p *Proxy) Restore() { p.cut.Store(false) }

// Stats reports connections accepted, refused during cuts, and reset.
func (p *Proxy) Stats() (accepted, refused, resets int64) {
	return p.accepted.Load(), p.refused.Load(), p.resets.Load()
}

// Open returns the number of open links.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening and closes every link.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	ls := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range ls {
		l.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if p.cut.Load() {
			p.refused.Add(1)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	s, err := net.DialTimeout("tcp", p.Target, 5*time.Second)
	if err != nil {
		// The server is down: the client sees its connection closed, as if
		// the server had refused it.
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		return
	}
	l := &link{client: c, server: s}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.close()
		return
	}
	p.conns[l] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, l)
		p.mu.Unlock()
	}()
	done := make(chan struct{}, 2)
	go func() { p.pipe(s, c); done <- struct{}{} }()
	go func() { p.pipe(c, s); done <- struct{}{} }()
	<-done
	l.close()
	<-done
}

type chunk struct {
	due time.Time
	b   []byte
}

// pipe copies src to dst. Without latency it is a plain copy; with latency
// every chunk goes through a bounded delay line.
func (p *Proxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, 256)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for ch := range q {
			if d := time.Until(ch.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := dst.Write(ch.b); err != nil {
				for range q { //nolint:revive // drain so the reader does not block
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			b := make([]byte, n)
			copy(b, buf[:n])
			q <- chunk{due: time.Now().Add(time.Duration(p.latency.Load())), b: b}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-writerDone
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		_ = dst.Close()
	}
}

var _ io.Closer = (*Proxy)(nil)

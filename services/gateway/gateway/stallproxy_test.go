package gateway

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stallProxy is a TCP proxy between the gateway and NATS that can hold back
// everything the server sends (PubAcks included) for a while, then deliver it
// in order: an ack stall without a disconnect. Client -> server traffic flows
// freely, so the server stores the publishes while their acks wait.
type stallProxy struct {
	ln        net.Listener
	target    string
	holdUntil atomic.Int64 // unix ns; server -> client bytes wait until then
	mu        sync.Mutex
	conns     []net.Conn
	wg        sync.WaitGroup
}

func startStallProxy(t testing.TB, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// URL is the nats:// URL of the proxy.
func (p *stallProxy) URL() string { return "nats://" + p.ln.Addr().String() }

// stall holds server -> client traffic for d from now.
func (p *stallProxy) stall(d time.Duration) { p.holdUntil.Store(time.Now().Add(d).UnixNano()) }

func (p *stallProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(s, c); _ = s.Close() }()
		go func() { defer p.wg.Done(); p.delayed(c, s); _ = c.Close() }()
	}
}

// delayed copies src to dst; a chunk read while the link stalls is written
// when the stall ends (chunks keep their order: one reader, one writer).
func (p *stallProxy) delayed(dst, src net.Conn) {
	chunks := make(chan []byte, 4096)
	go func() {
		defer close(chunks)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				chunks <- b[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	for b := range chunks {
		if d := time.Until(time.Unix(0, p.holdUntil.Load())); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(b); err != nil {
			for range chunks {
			}
			return
		}
	}
}

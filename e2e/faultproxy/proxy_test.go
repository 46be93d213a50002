package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echoServer echoes lines back; it stands in for a real server.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, msg string) error {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != msg {
		t.Fatalf("echo: got %q want %q", got, msg)
	}
	return nil
}

func TestProxyForwardsLatencyResetCut(t *testing.T) {
	target := echoServer(t)
	p, err := Start("test", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })

	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if err := roundTrip(t, c, r, "hello"); err != nil {
		t.Fatal(err)
	}

	// Latency: a round trip crosses the delay line twice.
	p.SetLatency(50 * time.Millisecond)
	start := time.Now()
	if err := roundTrip(t, c, r, "slow"); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 100*time.Millisecond {
		t.Fatalf("round trip with 50ms one-way latency took %v, want >= 100ms", rtt)
	}
	// Pipelined chunks are not serialised by the latency: 20 round trips
	// in flight take about one RTT, not 20.
	start = time.Now()
	for i := 0; i < 20; i++ {
		if _, err := c.Write([]byte("p\n")); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("20 pipelined round trips took %v: the delay line serialises", d)
	}
	p.SetLatency(0)

	// Reset: the client sees its connection reset.
	p.Reset()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = r.ReadString('\n')
	if err == nil {
		t.Fatal("read after Reset succeeded")
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Logf("read after reset: %v", err)
	}
	c.Close()

	// Cut: new connections are refused until Restore.
	p.Cut()
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		r2 := bufio.NewReader(c2)
		if err := roundTrip(t, c2, r2, "cut"); err == nil {
			t.Fatal("round trip through a cut link succeeded")
		}
		c2.Close()
	}
	p.Restore()
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if err := roundTrip(t, c3, bufio.NewReader(c3), "back"); err != nil {
		t.Fatalf("after Restore: %v", err)
	}
	acc, ref, res := p.Stats()
	if acc != 2 || ref < 1 || res < 1 {
		t.Fatalf("stats accepted=%d refused=%d resets=%d", acc, ref, res)
	}
}

func TestProxyTargetDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	p, err := Start("down", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		return // reset before the dial returned: refused, as wanted
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read through a proxy whose target is down succeeded")
	}
}

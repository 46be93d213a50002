package sendq

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/transport"
)

// tcpPair is a real loopback TCP connection: the gateway's side wrapped as
// transport.TCP, and the client's side.
func tcpPair(t *testing.T) (*transport.TCP, *net.TCPConn) {
	tr, client, _ := tcpPairConn(t)
	return tr, client
}

func tcpPairConn(t *testing.T) (*transport.TCP, *net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return transport.NewTCP(server, 1<<20, 5*time.Second), client.(*net.TCPConn), server.(*net.TCPConn)
}

func newTCPQueue(tr *transport.TCP, cfg Config) (*Queue, *Metrics) {
	m := metrics()
	return New(tr, cfg, m, slog.New(slog.NewTextHandler(io.Discard, nil)), owner{}, make(chan struct{}), &Flusher{}), m
}

// readFrames reads n length-prefixed packets from c.
func readFrames(t *testing.T, c net.Conn, n int) [][]byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out [][]byte
	for range n {
		var h [4]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			t.Fatalf("after %d frames: %v", len(out), err)
		}
		b := make([]byte, binary.BigEndian.Uint32(h[:]))
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatalf("frame %d: %v", len(out), err)
		}
		out = append(out, b)
	}
	return out
}

// TestDirectWriteNeedsNoWriter: on plain TCP a tick's frames, with the acks
// held for them in front, are written by SendFrames itself: the client gets
// them although no writer goroutine runs, in one write.
func TestDirectWriteNeedsNoWriter(t *testing.T) {
	tr, client := tcpPair(t)
	if !tr.CanTry() {
		t.Fatal("a plain TCP socket should allow non-blocking writes")
	}
	q, m := newTCPQueue(tr, Config{Packets: 64, Bytes: 1 << 20, Age: time.Minute, AckHold: time.Minute})
	q.SendAck([]byte("ack-1"))
	q.SendAck([]byte("ack-2"))
	q.SendFrames(wire.AppendFrame(wire.AppendFrame(nil, []byte("tick-1 cell a")), []byte("tick-1 cell b")), 2, time.Now().UnixNano())
	got := readFrames(t, client, 4)
	want := []string{"ack-1", "ack-2", "tick-1 cell a", "tick-1 cell b"}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("frame %d = %q, want %q", i, got[i], want[i])
		}
	}
	if w := testutil.ToFloat64(m.Writes); w != 1 {
		t.Fatalf("%v socket writes, want 1", w)
	}
	if b, n := q.Pending(); b != 0 || n != 0 {
		t.Fatalf("pending %d bytes, %d packets after a direct write; want 0, 0", b, n)
	}
}

// TestDirectWriteKeepsOrderWhenTheSocketIsFull: a client that reads late
// fills the socket; direct writes then write part of a tick and leave the
// tail to the writer, and later ticks wait behind it. The client reads every
// frame, whole and in order.
func TestDirectWriteKeepsOrderWhenTheSocketIsFull(t *testing.T) {
	tr, client, server := tcpPairConn(t)
	_ = server.SetWriteBuffer(16 << 10) // before any data: the socket fills after a few ticks
	q, m := newTCPQueue(tr, Config{Packets: 1 << 16, Bytes: 64 << 20, Age: time.Minute})
	go q.Run()
	defer q.Kill()
	const ticks = 400
	for i := range ticks {
		payload := bytes.Repeat([]byte{byte(i)}, 20000+i)
		f := wire.AppendFrame(nil, payload)
		q.SendFrames(f, 1, time.Now().UnixNano())
	}
	got := readFrames(t, client, ticks)
	for i, b := range got {
		if len(b) != 20000+i || !bytes.Equal(b, bytes.Repeat([]byte{byte(i)}, 20000+i)) {
			t.Fatalf("frame %d: %d bytes starting %d; want %d bytes of %d", i, len(b), b[0], 20000+i, byte(i))
		}
	}
	// A full socket hands over to the writer, which then writes the ticks
	// that piled up together.
	if w := testutil.ToFloat64(m.Writes); w >= ticks {
		t.Fatalf("%v socket writes for %d ticks: the socket never filled, so no tail was left to the writer", w, ticks)
	}
	if d := testutil.ToFloat64(m.Dropped.WithLabelValues("write_error")); d != 0 {
		t.Fatalf("%v write errors", d)
	}
}

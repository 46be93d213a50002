package sendq

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// socket records what the writer writes.
type socket struct {
	mu     sync.Mutex
	writes [][]byte // each write: payloads (unframed) then the framed bytes, concatenated
	closed bool
}

func (s *socket) WritePackets(p [][]byte) error { return s.WriteFrames(p, nil) }
func (s *socket) WriteFrames(p [][]byte, framed []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var w []byte
	for _, b := range p {
		w = append(w, b...)
	}
	s.writes = append(s.writes, append(w, framed...))
	return nil
}
func (s *socket) SetWriteTimeout(time.Duration)                  {}
func (s *socket) BoundWrite(time.Duration)                       {}
func (s *socket) Close()                                         { s.mu.Lock(); s.closed = true; s.mu.Unlock() }
func (s *socket) CloseGracefully(time.Duration, <-chan struct{}) { s.Close() }

func (s *socket) written() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, w := range s.writes {
		out = append(out, string(w))
	}
	return out
}

type owner struct{}

func (owner) Session() string    { return "s-test" }
func (owner) Outstanding() int64 { return 0 }

func metrics() *Metrics {
	return &Metrics{BytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "b"}), Writes: prometheus.NewCounter(prometheus.CounterOpts{Name: "w"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "d"}, []string{"reason"}), Slow: prometheus.NewCounter(prometheus.CounterOpts{Name: "s"}),
		SlowCode: prometheus.NewCounter(prometheus.CounterOpts{Name: "c"})}
}

func newQueue(cfg Config, sock *socket, f *Flusher) (*Queue, *Metrics) {
	m := metrics()
	return New(sock, cfg, m, slog.New(slog.NewTextHandler(io.Discard, nil)), owner{}, make(chan struct{}), f), m
}

// TestByteBoundMakesASlowConsumer: a packet that would take the queued
// bytes past Config.Bytes is refused, the client is a slow consumer (counted
// once) and its socket is closed within slowKillAfter, writer or not.
func TestByteBoundMakesASlowConsumer(t *testing.T) {
	sock := &socket{}
	q, m := newQueue(Config{Packets: 16, Bytes: 100, Age: time.Minute}, sock, &Flusher{})
	q.Send(make([]byte, 60))
	if b, n := q.Pending(); b != 60 || n != 1 {
		t.Fatalf("pending %d bytes, %d packets; want 60, 1", b, n)
	}
	q.Send(make([]byte, 60))
	q.Send(make([]byte, 1)) // after detection: dropped
	if b, n := q.Pending(); b != 60 || n != 1 {
		t.Fatalf("pending %d bytes, %d packets after the bound; want 60, 1", b, n)
	}
	if testutil.ToFloat64(m.Slow) != 1 || testutil.ToFloat64(m.SlowCode) != 1 || testutil.ToFloat64(m.Dropped.WithLabelValues("slow_consumer")) != 1 {
		t.Fatal("slow consumer not counted once")
	}
	select {
	case <-q.Dead():
	case <-time.After(5 * slowKillAfter):
		t.Fatal("slow consumer's socket not closed")
	}
	if !q.Closed() {
		t.Fatal("Closed after Dead is false")
	}
}

// TestHeldAckRidesTheNextWrite: with AckHold, an Ack waits for the next
// write and goes out in it with the update frames; Finish flushes what is
// left and closes.
func TestHeldAckRidesTheNextWrite(t *testing.T) {
	sock := &socket{}
	f := &Flusher{}
	q, _ := newQueue(Config{Packets: 16, Bytes: 1 << 20, Age: time.Minute, AckHold: time.Hour}, sock, f)
	go q.Run()
	q.SendAck([]byte("ack1"))
	time.Sleep(20 * time.Millisecond) // a writer that wrote the held ack on its own would have done so by now
	if w := sock.written(); len(w) != 0 {
		t.Fatalf("held ack written on its own: %q", w)
	}
	q.SendFrames([]byte("frame"), 1, time.Now().UnixNano())
	deadline := time.Now().Add(5 * time.Second)
	for len(sock.written()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if w := sock.written(); len(w) != 1 || w[0] != "ack1frame" {
		t.Fatalf("writes %q, want one with the ack and the frame", w)
	}
	q.Send([]byte("last"))
	q.Finish()
	select {
	case <-q.Dead():
	case <-time.After(5 * time.Second):
		t.Fatal("finished queue not closed")
	}
	if w := sock.written(); w[len(w)-1] != "last" {
		t.Fatalf("writes %q, want the last packet flushed", w)
	}
	if b, n := q.Pending(); b != 0 || n != 0 {
		t.Fatalf("pending %d bytes, %d packets after the flush", b, n)
	}
}

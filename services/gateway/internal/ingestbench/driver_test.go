// Package ingestbench is the gateway ingest benchmark (tests only: nothing
// here is built into a binary). This file is its driver: the same N TCP
// clients with the same ~64-byte packets against (a) the gateway, (b) a bare
// pipeline (one goroutine per connection reading frames and calling
// PublishMsgAsync itself: no ring, no validation, no sessions), and (c) the
// ceiling: PublishMsgAsync from one nats.go client with no TCP clients at all.
//
// All three publish to the CMD stream with a Nats-Msg-Id header (JetStream
// deduplication is part of the contract, so its cost is in every figure), and
// every client keeps a window of unacknowledged packets so that no pipeline is
// measured while it is overloaded (the gateway would answer Busy).
package ingestbench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// Result of one pipeline run.
type Result struct {
	Msgs     int
	Elapsed  time.Duration
	Busy     int
	Errors   int
	Lat      []time.Duration // per message: send -> ack (client side; publish -> PubAck for the ceiling)
	P50, P99 time.Duration
}

// MsgsPerSec is the acknowledged throughput.
func (r Result) MsgsPerSec() float64 { return float64(r.Msgs) / r.Elapsed.Seconds() }

func (r *Result) finish() {
	slices.Sort(r.Lat)
	if n := len(r.Lat); n > 0 {
		r.P50 = r.Lat[n*50/100]
		r.P99 = r.Lat[min(n-1, int(math.Ceil(float64(n)*0.99))-1)]
	}
	r.Lat = nil
}

// Payload returns the client packet used by every pipeline: a Chat whose
// encoding with seq is 64 bytes.
func Payload(seq uint64) []byte {
	text := "benchmark chat line of a typical length for a game client.."
	p := &schema.ClientPacket{Seq: seq, Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: text}}}
	b, _ := proto.Marshal(p)
	if len(b) > 64 {
		cut := len(b) - 64
		p.GetChat().Text = text[:len(text)-cut]
		b, _ = proto.Marshal(p)
	}
	return b
}

// Ceiling publishes msgs messages of payload size from one client with up to
// window in flight and waits for every PubAck.
func Ceiling(ctx context.Context, url string, msgs, window int) (Result, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return Result{}, err
	}
	defer nc.Close()
	sent := make([]int64, msgs)
	lat := make([]time.Duration, msgs)
	var acked atomic.Int64
	done := make(chan struct{})
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(window),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
			i, _ := strconv.Atoi(m.Header.Get(nats.MsgIdHdr)[2:])
			lat[i] = time.Duration(time.Now().UnixNano() - sent[i])
			if acked.Add(1) == int64(msgs) {
				close(done)
			}
		}))
	if err != nil {
		return Result{}, err
	}
	payload := Payload(1)
	start := time.Now()
	for i := 0; i < msgs; i++ {
		m := &nats.Msg{Subject: "cmd.bench", Data: payload, Header: nats.Header{nats.MsgIdHdr: []string{"c:" + strconv.Itoa(i)}}}
		sent[i] = time.Now().UnixNano()
		if _, err := js.PublishMsgAsync(m, stall); err != nil {
			return Result{}, fmt.Errorf("ceiling publish: %w", err)
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	r := Result{Msgs: msgs, Elapsed: time.Since(start), Lat: lat}
	r.finish()
	return r, nil
}

// stall lets a publish wait for a window slot instead of failing after 200ms.
var stall = jetstream.WithStallWait(time.Minute)

// Bare is the bare pipeline: a TCP listener whose per-connection goroutine
// reads frames and calls PublishMsgAsync directly; a second goroutine per
// connection waits for the PubAcks in order and writes an 8-byte ack frame.
type Bare struct {
	// Shaped makes the bare pipeline publish messages of the gateway's shape
	// (a schema.Command wrapping the frame, the five contract headers)
	// without anything else the gateway does: an ablation that separates
	// the cost of the message from the cost of the pipeline.
	Shaped bool

	ln  net.Listener
	js  jetstream.JetStream
	nc  *nats.Conn
	wg  sync.WaitGroup
	ids atomic.Uint64
}

// StartBare listens on 127.0.0.1:0.
func StartBare(url string, maxPending int, shaped bool) (*Bare, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxPending))
	if err != nil {
		nc.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		nc.Close()
		return nil, err
	}
	b := &Bare{ln: ln, js: js, nc: nc, Shaped: shaped}
	b.wg.Add(1)
	go b.accept()
	return b, nil
}

// Addr is the listener address.
func (b *Bare) Addr() string { return b.ln.Addr().String() }

// Close stops the listener and the NATS connection.
func (b *Bare) Close() {
	_ = b.ln.Close()
	b.wg.Wait()
	b.nc.Close()
}

func (b *Bare) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.serve(c)
	}
}

type pending struct {
	f   jetstream.PubAckFuture
	seq uint64
}

func (b *Bare) serve(c net.Conn) {
	defer c.Close()
	conn := strconv.FormatUint(b.ids.Add(1), 10)
	futures := make(chan pending, 4096)
	go func() {
		w := bufio.NewWriterSize(c, 16<<10)
		var fr [12]byte
		for p := range futures {
			select {
			case <-p.f.Ok():
			case <-p.f.Err():
			}
			binary.BigEndian.PutUint32(fr[:4], 8)
			binary.BigEndian.PutUint64(fr[4:], p.seq)
			_, _ = w.Write(fr[:])
			if len(futures) == 0 {
				_ = w.Flush()
			}
		}
		_ = w.Flush()
	}()
	defer close(futures)
	r := wire.NewFrameReader(c, 4096)
	var seq uint64
	for {
		f, err := r.Next()
		if err != nil {
			return
		}
		seq++
		id := conn + ":" + strconv.FormatUint(seq, 10)
		var m *nats.Msg
		if b.Shaped {
			session := "s0123456789abcdef01234567" + conn
			data, _ := proto.Marshal(&schema.Command{CommandId: id, SessionId: session, PlayerId: "p-bench" + conn, PlayerName: "bench" + conn,
				Zone: "z0_0", ClientSeq: seq, ReceivedAtNs: time.Now().UnixNano(), Body: &schema.Command_Chat{Chat: &schema.Chat{Text: string(f)}}})
			// The gateway's message shape (libs/wire CommandHeaderBuf): msg id,
			// schema and the command digest; session, player and zone are in
			// the body only (issue 12 #4).
			m = &nats.Msg{Subject: "cmd.bare", Data: data, Header: nats.Header{nats.MsgIdHdr: []string{id},
				wire.HeaderSchema: []string{wire.SchemaVersion}, wire.HeaderCmdDigest: []string{"0123456789abcdef"}}}
		} else {
			m = &nats.Msg{Subject: "cmd.bare", Data: append([]byte(nil), f...), Header: nats.Header{nats.MsgIdHdr: []string{id}}}
		}
		fut, err := b.js.PublishMsgAsync(m, stall)
		if err != nil {
			return
		}
		futures <- pending{fut, seq}
	}
}

// Clients is the load: n TCP connections, each sending its share of msgs
// packets (Payload with increasing seqs) with at most window unacknowledged.
type Clients struct {
	conns []net.Conn
	gw    bool // gateway protocol (Hello, Join, ServerPacket answers) vs bare 8-byte acks
	first []uint64
}

// Dial opens n connections to addr. With gateway set they say Hello (dev
// mode) and Join zone first.
func Dial(addr string, n int, gateway bool, zone string) (*Clients, error) {
	cs := &Clients{gw: gateway}
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			cs.Close()
			return nil, err
		}
		cs.conns = append(cs.conns, c)
		cs.first = append(cs.first, 1)
		if !gateway {
			continue
		}
		fr := wire.NewFrameReader(c, 1<<16)
		for seq, p := range []*schema.ClientPacket{
			{Seq: 1, Body: &schema.ClientPacket_Hello{Hello: &schema.Hello{Name: fmt.Sprintf("bench%d", i)}}},
			{Seq: 2, Body: &schema.ClientPacket_Join{Join: &schema.Join{Zone: zone}}},
		} {
			b, _ := proto.Marshal(p)
			if err := wire.WriteFrame(c, b); err != nil {
				cs.Close()
				return nil, err
			}
			f, err := fr.Next()
			if err != nil {
				cs.Close()
				return nil, fmt.Errorf("handshake: %w", err)
			}
			var sp schema.ServerPacket
			if err := proto.Unmarshal(f, &sp); err != nil || sp.GetError() != nil || sp.GetBusy() != nil {
				cs.Close()
				return nil, fmt.Errorf("handshake packet %d: %v %v", seq, &sp, err)
			}
		}
		cs.first[i] = 3
	}
	return cs, nil
}

// Close closes every connection.
func (cs *Clients) Close() {
	for _, c := range cs.conns {
		_ = c.Close()
	}
}

// Run sends msgs packets in total and waits for every answer.
func (cs *Clients) Run(ctx context.Context, msgs, window int) (Result, error) {
	n := len(cs.conns)
	per := msgs / n
	// Pre-encode every frame so that client-side encoding is not measured.
	frames := make([][][]byte, n)
	for i := range cs.conns {
		frames[i] = make([][]byte, per)
		for k := 0; k < per; k++ {
			frames[i][k] = wire.AppendFrame(nil, Payload(cs.first[i]+uint64(k)))
		}
	}
	lat := make([]time.Duration, n*per)
	var busy, errs atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 2*n)
	start := time.Now()
	for i, c := range cs.conns {
		wg.Add(2)
		sem := make(chan struct{}, window)
		sent := make([]int64, per)
		go func() { // writer
			defer wg.Done()
			w := bufio.NewWriterSize(c, 16<<10)
			for k := 0; k < per; k++ {
				select {
				case sem <- struct{}{}:
				default:
					if err := w.Flush(); err != nil {
						errc <- err
						return
					}
					sem <- struct{}{}
				}
				sent[k] = time.Now().UnixNano()
				if _, err := w.Write(frames[i][k]); err != nil {
					errc <- err
					return
				}
			}
			if err := w.Flush(); err != nil {
				errc <- err
			}
		}()
		go func() { // reader
			defer wg.Done()
			fr := wire.NewFrameReader(c, 1<<16)
			for got := 0; got < per; got++ {
				f, err := fr.Next()
				if err != nil {
					errc <- fmt.Errorf("client %d after %d answers: %w", i, got, err)
					return
				}
				now := time.Now().UnixNano()
				var seq uint64
				if cs.gw {
					var kind protowire.Number
					seq, kind, err = ParseAnswer(f)
					if err != nil {
						errc <- err
						return
					}
					switch kind {
					case 14:
						busy.Add(1)
					case 13:
						errs.Add(1)
					}
				} else {
					seq = binary.BigEndian.Uint64(f)
				}
				k := int(seq - cs.first[i])
				if k < 0 || k >= per {
					errc <- fmt.Errorf("client %d: answer for unknown seq %d", i, seq)
					return
				}
				lat[i*per+k] = time.Duration(now - sent[k])
				<-sem
			}
		}()
	}
	waitDone := make(chan struct{})
	go func() { wg.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case err := <-errc:
		cs.Close()
		return Result{}, err
	case <-ctx.Done():
		cs.Close()
		return Result{}, ctx.Err()
	}
	select {
	case err := <-errc:
		return Result{}, err
	default:
	}
	for i := range cs.first {
		cs.first[i] += uint64(per)
	}
	r := Result{Msgs: n * per, Elapsed: time.Since(start), Busy: int(busy.Load()), Errors: int(errs.Load()), Lat: lat}
	r.finish()
	return r, nil
}

// ParseAnswer reads ack_seq and the body field number of a ServerPacket
// without unmarshalling it (11 Ack, 13 Error, 14 Busy).
func ParseAnswer(b []byte) (seq uint64, body protowire.Number, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, errors.New("bad answer")
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, 0, errors.New("bad ack_seq")
			}
			seq, b = v, b[n:]
			continue
		}
		if num >= 10 {
			body = num
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, 0, errors.New("bad field")
		}
		b = b[n:]
	}
	return seq, body, nil
}

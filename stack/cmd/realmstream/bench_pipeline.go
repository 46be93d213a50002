package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natsembed"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// The bare pipeline is the baseline of `bench capacity`: the shape of the
// stack's path with none of its work. A plain TCP reader takes the bots'
// packets (Hello gets a Welcome, every command is published to cmd.<zone>
// on the same CMD stream with its Nats-Msg-Id and answered with an Ack once
// JetStream acked it); an appender consumes CMD in batches, appends one
// event per command to evt.<zone> (async publishes, Nats-Msg-Id), acks the
// batch once every event is stored and echoes an update per command to its
// bot (so input->update is measured the same way); a second consumer reads
// EVT and acks each batch, as persist would. It runs as its own process
// (`realmstream bench pipeline-server`) so that its CPU time is its own.

const barePubWindow = 4096 // async publishes in flight per connection (as the gateway's MaxPending)

func runPipelineServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("realmstream bench pipeline-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("tcp-addr", "127.0.0.1:7000", "TCP listen address for the bots")
	dir := fs.String("data-dir", "", "JetStream store directory (required)")
	linger := fs.Duration("batch-linger", 0, "with --batch: how long a zone's batcher waits for more commands after the first one of a batch (0: only what has queued)")
	batch := fs.Bool("batch", false, "publish each zone's waiting commands as one JetStream message (the command-batch experiment of docs/command-batches.md)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("pipeline-server: --data-dir is required")
	}
	ns, err := natsembed.Start(natsembed.Config{Port: -1, StoreDir: filepath.Join(*dir, "nats")})
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := nats.Connect(ns.ClientURL(), nats.Name("bare-pipeline"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4*barePubWindow))
	if err != nil {
		return err
	}
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
		return err
	}
	p := &bare{nc: nc, js: js, conns: map[string]*bareConn{}, appended: make(chan appended, 64), batch: *batch, linger: *linger, zones: map[string]chan bareCmd{}}
	go p.waitAppended()
	defer func() {
		if b := p.batches.Load(); b > 0 {
			fmt.Fprintf(stdout, "bare pipeline: %d commands in %d batch messages (%.1f per message)\n", p.batched.Load(), b, float64(p.batched.Load())/float64(b))
		}
	}()
	if _, err := nc.Subscribe("bare.upd", p.onUpdate); err != nil {
		return err
	}
	if err := p.consume(ctx, wire.StreamCommands, "bare-append", p.appendBatch); err != nil {
		return err
	}
	if err := p.consume(ctx, wire.StreamEvents, "bare-persist", func(batch []jetstream.Msg) {
		_ = batch[len(batch)-1].Ack() // AckAll: one ack per fetched batch
	}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Fprintf(stdout, "bare pipeline listening on %s (NATS %s)\n", ln.Addr(), ns.ClientURL())
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go p.serve(c)
	}
}

type bare struct {
	nc *nats.Conn
	js jetstream.JetStream

	appended chan appended // batches in flight, in order

	// batch: commands go through one batcher per zone (zones) that
	// publishes what has queued as one message (--batch).
	batch            bool
	linger           time.Duration
	batches, batched atomic.Int64 // messages and commands published by the batchers

	mu    sync.Mutex
	zones map[string]chan bareCmd
	conns map[string]*bareConn // player -> connection
	next  int
}

type bareConn struct {
	c   net.Conn
	wmu sync.Mutex
	buf []byte
}

func (c *bareConn) send(p *schema.ServerPacket) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.buf = append(c.buf[:0], 0, 0, 0, 0)
	c.buf, _ = proto.MarshalOptions{}.MarshalAppend(c.buf, p)
	binary.BigEndian.PutUint32(c.buf, uint32(len(c.buf)-wire.FrameHeaderSize))
	_, _ = c.c.Write(c.buf)
}

func (p *bare) serve(nc net.Conn) {
	defer nc.Close()
	c := &bareConn{c: nc}
	fr := wire.NewFrameReader(nc, wire.DefaultMaxFrame)
	var pkt schema.ClientPacket
	var session, player, zone string
	type inflight struct {
		f   jetstream.PubAckFuture
		seq uint64
	}
	acks := make(chan inflight, barePubWindow)
	defer close(acks)
	go func() { // answers in order, as JetStream acks
		for a := range acks {
			ack, err := outcome(a.f)
			c.send(answer(a.seq, ack, err))
		}
	}()
	defer func() {
		if player != "" {
			p.mu.Lock()
			if p.conns[player] == c {
				delete(p.conns, player)
			}
			p.mu.Unlock()
		}
	}()
	var cmd schema.Command
	for {
		b, err := fr.Next()
		if err != nil {
			return
		}
		if err := proto.Unmarshal(b, &pkt); err != nil {
			return
		}
		received := time.Now()
		switch body := pkt.Body.(type) {
		case *schema.ClientPacket_Hello:
			p.mu.Lock()
			p.next++
			session = "bare" + strconv.Itoa(p.next)
			player = "p-" + body.Hello.Name
			p.conns[player] = c
			p.mu.Unlock()
			c.send(&schema.ServerPacket{AckSeq: pkt.Seq, Body: &schema.ServerPacket_Welcome{Welcome: &schema.Welcome{
				SessionId: session, PlayerId: player, Token: "bare", GatewayId: "bare", ServerTimeNs: received.UnixNano()}}})
			continue
		case *schema.ClientPacket_Ping:
			c.send(&schema.ServerPacket{AckSeq: pkt.Seq, Body: &schema.ServerPacket_Pong{Pong: &schema.Pong{ClientTimeNs: body.Ping.ClientTimeNs, ServerTimeNs: received.UnixNano()}}})
			continue
		case *schema.ClientPacket_Join:
			zone = body.Join.Zone
		}
		if session == "" || zone == "" {
			c.send(&schema.ServerPacket{AckSeq: pkt.Seq, Body: &schema.ServerPacket_Error{Error: &schema.Error{Code: schema.ErrorCode_ERROR_CODE_NOT_IN_ZONE, Message: "hello and join first"}}})
			continue
		}
		cmd.Reset()
		cmd.CommandId = wire.CommandID(session, pkt.Seq)
		cmd.SessionId, cmd.PlayerId, cmd.Zone, cmd.ClientSeq, cmd.ReceivedAtNs = session, player, zone, pkt.Seq, received.UnixNano()
		wire.SetCommandBody(&cmd, &pkt)
		data, _ := proto.Marshal(&cmd)
		if p.batch {
			p.zone(zone) <- bareCmd{c: c, seq: pkt.Seq, data: data}
			continue
		}
		m := &nats.Msg{Subject: wire.CommandSubject(zone), Data: data, Header: nats.Header{}}
		wire.SetMsgID(m.Header, cmd.CommandId)
		f, err := p.js.PublishMsgAsync(m)
		if err != nil {
			c.send(&schema.ServerPacket{AckSeq: pkt.Seq, Body: &schema.ServerPacket_Busy{Busy: &schema.Busy{RetryAfterMs: 10}}})
			continue
		}
		acks <- inflight{f: f, seq: pkt.Seq}
	}
}

// outcome waits for a publish's PubAck or error.
func outcome(f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	}
}

// answer is what the client of command seq is told once its publish ended.
func answer(seq uint64, ack *jetstream.PubAck, err error) *schema.ServerPacket {
	if err != nil {
		return &schema.ServerPacket{AckSeq: seq, Body: &schema.ServerPacket_Error{Error: &schema.Error{Code: schema.ErrorCode_ERROR_CODE_INTERNAL, Message: err.Error()}}}
	}
	return &schema.ServerPacket{AckSeq: seq, Body: &schema.ServerPacket_Ack{Ack: &schema.Ack{StreamSeq: ack.Sequence, Duplicate: ack.Duplicate}}}
}

// bareCmd is one command waiting in its zone's batcher.
type bareCmd struct {
	c    *bareConn
	seq  uint64
	data []byte
}

// zone returns the queue of zone's batcher, starting it on first use.
func (p *bare) zone(zone string) chan bareCmd {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.zones[zone]
	if q == nil {
		q = make(chan bareCmd, barePubWindow)
		p.zones[zone] = q
		go p.batcher(zone, q)
	}
	return q
}

// batcher publishes what has queued for its zone (at most bareBatchMax
// commands) as one message, a command batch of libs/wire (the gateway's
// --command-batch format); the message id names the batch. Every command of a batch is answered
// with the batch's PubAck, in order, by one waiter per zone.
func (p *bare) batcher(zone string, q chan bareCmd) {
	type inflight struct {
		f    jetstream.PubAckFuture
		cmds []bareCmd
	}
	acks := make(chan inflight, barePubWindow/bareBatchMax)
	go func() {
		for a := range acks {
			ack, err := outcome(a.f)
			for _, c := range a.cmds {
				c.c.send(answer(c.seq, ack, err))
			}
		}
	}()
	subject := wire.CommandSubject(zone)
	for n := uint64(1); ; n++ {
		cmds := []bareCmd{<-q}
		var until <-chan time.Time
		if p.linger > 0 {
			until = time.After(p.linger)
		}
	more:
		for len(cmds) < bareBatchMax {
			select {
			case c := <-q:
				cmds = append(cmds, c)
				continue
			default:
			}
			if until == nil {
				break
			}
			select {
			case c := <-q:
				cmds = append(cmds, c)
			case <-until:
				break more
			}
		}
		var data []byte
		for _, c := range cmds {
			data = wire.AppendCommandBatchEntry(data, c.data)
		}
		m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
		new(wire.CommandBatchHeaderBuf).Fill(m.Header, wire.CommandBatchID("bare", zone, n), len(cmds))
		f, err := p.js.PublishMsgAsync(m)
		if err != nil {
			for _, c := range cmds {
				c.c.send(&schema.ServerPacket{AckSeq: c.seq, Body: &schema.ServerPacket_Busy{Busy: &schema.Busy{RetryAfterMs: 10}}})
			}
			continue
		}
		p.batches.Add(1)
		p.batched.Add(int64(len(cmds)))
		acks <- inflight{f: f, cmds: cmds}
	}
}

// bareBatchMax bounds a command batch (the design's --command-batch-max).
const bareBatchMax = 64

// consume feeds a durable AckAll consumer of stream to handle in batches:
// the Consume callback queues each message, one goroutine takes what has
// queued (at most 500) as one batch.
func (p *bare) consume(ctx context.Context, stream, durable string, handle func([]jetstream.Msg)) error {
	cons, err := p.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckAllPolicy, MaxAckPending: 100000, AckWait: 30 * time.Second})
	if err != nil {
		return err
	}
	q := make(chan jetstream.Msg, 8192)
	if _, err := cons.Consume(func(m jetstream.Msg) { q <- m }, jetstream.PullMaxMessages(2000)); err != nil {
		return err
	}
	go func() {
		batch := make([]jetstream.Msg, 0, 500)
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-q:
				batch = append(batch[:0], m)
			}
		more:
			for len(batch) < cap(batch) {
				select {
				case m := <-q:
					batch = append(batch, m)
				default:
					break more
				}
			}
			handle(batch)
		}
	}()
	return nil
}

// appended is one batch whose events are published: the waiter acks it
// once every event is stored and echoes its updates.
type appended struct {
	futs   []jetstream.PubAckFuture
	last   jetstream.Msg
	echoes [][]byte // player length (2 bytes), player, update frame
}

// appendBatch appends one event per command (async publishes) and hands the
// batch to the waiter, so that several batches are in flight at once (as
// nine zones commit at once in the stack).
func (p *bare) appendBatch(batch []jetstream.Msg) {
	var cmd schema.Command
	a := appended{futs: make([]jetstream.PubAckFuture, 0, len(batch)), last: batch[len(batch)-1], echoes: make([][]byte, 0, len(batch))}
	for _, m := range batch {
		err := wire.ForEachCommand(m.Headers(), m.Data(), func(data []byte) error {
			if proto.Unmarshal(data, &cmd) != nil {
				return nil // not a command: nothing to append
			}
			ev := &nats.Msg{Subject: wire.EventSubject(cmd.Zone), Data: data, Header: nats.Header{}}
			wire.SetMsgID(ev.Header, "e:"+cmd.CommandId)
			f, err := p.js.PublishMsgAsync(ev)
			if err != nil {
				return err
			}
			a.futs = append(a.futs, f)
			var x, y float32
			if mv := cmd.GetMove(); mv != nil {
				x, y = mv.X, mv.Y
			}
			up, _ := proto.Marshal(&schema.ServerPacket{Body: &schema.ServerPacket_Update{Update: &schema.Update{ZoneUpdate: &schema.ZoneUpdate{
				Zone: cmd.Zone, ServerTimeNs: time.Now().UnixNano(),
				Entities: []*schema.EntityView{{Id: cmd.PlayerId, X: x, Y: y, Hp: 100, LastInputSeq: cmd.ClientSeq}}}}}})
			msg := make([]byte, 0, 2+len(cmd.PlayerId)+len(up))
			msg = binary.BigEndian.AppendUint16(msg, uint16(len(cmd.PlayerId)))
			a.echoes = append(a.echoes, append(append(msg, cmd.PlayerId...), up...))
			return nil
		})
		if err != nil { // a publish failed (our own batches are never malformed)
			_ = m.Nak()
			return
		}
	}
	p.appended <- a
}

// waitAppended acks each batch, in order, once its events are stored, and
// echoes its updates.
func (p *bare) waitAppended() {
	for a := range p.appended {
		ok := true
		for _, f := range a.futs {
			select {
			case <-f.Ok():
			case <-f.Err():
				ok = false
			}
		}
		if !ok {
			_ = a.last.Nak()
			continue
		}
		_ = a.last.Ack()
		for _, e := range a.echoes {
			_ = p.nc.Publish("bare.upd", e)
		}
	}
}

// onUpdate forwards an echoed update to the bot's connection.
func (p *bare) onUpdate(m *nats.Msg) {
	if len(m.Data) < 2 {
		return
	}
	n := int(binary.BigEndian.Uint16(m.Data))
	if len(m.Data) < 2+n {
		return
	}
	player, frame := string(m.Data[2:2+n]), m.Data[2+n:]
	p.mu.Lock()
	c := p.conns[player]
	p.mu.Unlock()
	if c == nil {
		return
	}
	c.wmu.Lock()
	c.buf = wire.AppendFrame(c.buf[:0], frame)
	_, _ = c.c.Write(c.buf)
	c.wmu.Unlock()
}

package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/mpsc"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
)

// item is one accepted command on its way to JetStream. The reader that
// accepted it builds msg completely (payload, subject, headers with the
// Nats-Msg-Id); after TryEnqueue succeeds the item belongs to the publisher
// and, once published, to the ack callbacks, which return it to the pool
// when its outcome is final (nats.go drops its reference to msg when the
// publish is acked, failed or timed out).
type item struct {
	c        *conn
	seq      uint64
	msg      nats.Msg
	buf      []byte
	hdr      wire.CommandHeaderBuf // header values; the header slices point into it
	received time.Time
	span     trace.Span
	attempts int
	// ambiguous: some failed attempt may have stored the message (a
	// timeout, a lost connection): giving up answers OUTCOME_UNKNOWN, not
	// "not stored".
	ambiguous bool
	lastErr   error // the failure that sent it to retryq
	// verified: the reader checked this command against the one its seq was
	// first used for (a resend); a Duplicate answer needs no second check.
	verified bool
}

var itemPool = sync.Pool{New: func() any { return &item{msg: nats.Msg{Header: make(nats.Header, 8)}} }}

var marshalCmd = proto.MarshalOptions{}

func newItem() *item { return itemPool.Get().(*item) }

// freeItem returns it to the pool; nothing may use it afterwards.
func freeItem(it *item) {
	it.c, it.span, it.attempts, it.ambiguous, it.lastErr, it.verified = nil, nil, 0, false, nil, false
	it.msg.Data, it.msg.Subject = nil, ""
	if cap(it.buf) > 4096 {
		it.buf = nil
	}
	itemPool.Put(it)
}

// setHeaders fills the contract's headers without allocating (the map keeps
// its buckets across reuses; the value slices point into it.hdr).
func (it *item) setHeaders(msgID, session, player, zone, digest string) {
	it.hdr.Fill(it.msg.Header, wire.CommandHeaders{MsgID: msgID, Session: session, Player: player, Zone: zone, Digest: digest})
}

// publisher is the single consumer of the ring. Concurrency contract:
//   - run is the ONE goroutine that calls DequeueBatch/Wait and PublishMsgAsync
//     (retries included: they come back to it through retryq). Wherever run
//     blocks (ring Wait, acquire, the drain loop) it also serves retryq: an
//     item in retryq holds a window slot, so a run that waits for slots
//     without serving retryq deadlocks after an ack stall (issue 10 #2).
//   - onAck/onErr run on nats.go's ack goroutine (and its timeout timers);
//     they never block. onAck answers the client through its bounded send
//     queue and frees the item (an ack cannot arrive before PublishMsgAsync
//     copied the message). onErr only hands the item to run through retryq,
//     whose capacity equals the window so a send to it never blocks (each
//     item in it holds a slot); run decides retry or give-up, because a
//     timeout timer can fire while run is still publishing that item.
//   - pending maps a published *nats.Msg to its item; guarded by mu.
//   - the window: inflight counts published, unanswered items (at most
//     MaxPending). Only run increments it; the ack side decrements it. When
//     run needs n slots it stores n in need and parks on space; the ack side
//     wakes it once n slots are free, not on every ack (a wake-up per ack
//     would ping-pong two goroutines per message when the window is full).
type publisher struct {
	s      *Service
	ring   *mpsc.Ring[*item]
	retryq chan *item

	mu      sync.Mutex
	pending map[*nats.Msg]*item

	inflight atomic.Int64
	need     atomic.Int64  // slots run waits for; 0 when it does not wait
	space    chan struct{} // cap 1: wakes run when need slots are free
	idle     chan struct{} // signalled when inflight drops to 0
	lost     atomic.Int64  // items not stored when the drain deadline passed
	deadline <-chan struct{}
}

func newPublisher(s *Service, ring *mpsc.Ring[*item]) *publisher {
	return &publisher{
		s:       s,
		ring:    ring,
		space:   make(chan struct{}, 1),
		retryq:  make(chan *item, s.cfg.MaxPending),
		pending: make(map[*nats.Msg]*item, s.cfg.MaxPending),
		idle:    make(chan struct{}, 1),
	}
}

// jsOptions are the JetStream options the publisher needs: its callbacks, a
// publish timeout so every future resolves, and nats.go's own pending limit
// set above our window so it never stalls the publisher.
func (p *publisher) jsOptions() []jetstream.JetStreamOpt {
	return []jetstream.JetStreamOpt{
		jetstream.WithPublishAsyncAckHandler(p.onAck),
		jetstream.WithPublishAsyncErrHandler(p.onErr),
		jetstream.WithPublishAsyncMaxPending(p.s.cfg.MaxPending + 64),
		jetstream.WithPublishAsyncTimeout(p.s.cfg.PublishTimeout),
	}
}

// run drains the ring until it is closed and empty, then waits (until
// drainDeadline is done) for every outstanding ack. It returns when nothing is
// in flight or the deadline passed.
func (p *publisher) run(drainDeadline <-chan struct{}) {
	p.deadline = drainDeadline
	buf := make([]*item, p.s.cfg.BatchSize)
	bg := context.Background()
	for {
		p.takeRetries()
		n := p.ring.DequeueBatch(buf)
		if n == 0 {
			if err := p.ring.Wait(bg); errors.Is(err, mpsc.ErrClosed) {
				break
			}
			continue
		}
		p.s.m.batch.Observe(float64(n))
		p.publishBatch(buf[:n])
		clear(buf[:n])
	}
	// The ring is closed and drained: wait for the acks of what is in flight,
	// still serving retries.
	for p.inflight.Load() > 0 {
		select {
		case it := <-p.retryq:
			p.republish(it)
		case <-p.idle:
		case <-drainDeadline:
			n := p.inflight.Load()
			p.lost.Add(n)
			p.s.log.Error("drain deadline passed with publishes unacknowledged; their clients are told the outcome is unknown", "inflight", n)
			p.abandonInflight()
			return
		}
	}
}

func (p *publisher) takeRetries() {
	for {
		select {
		case it := <-p.retryq:
			p.republish(it)
		default:
			return
		}
	}
}

// publishBatch takes window slots for the batch (blocking while MaxPending
// publishes are unanswered: readers meanwhile answer Busy), registers it in
// pending under one lock, then publishes it. nil items are wake-ups.
func (p *publisher) publishBatch(batch []*item) {
	k := 0
	for _, it := range batch {
		if it != nil {
			batch[k] = it
			k++
		}
	}
	batch = batch[:k]
	for len(batch) > 0 {
		n := min(len(batch), p.s.cfg.MaxPending)
		if !p.acquire(n) {
			for _, it := range batch {
				p.abandon(it)
			}
			return
		}
		p.publishAcquired(batch[:n])
		batch = batch[n:]
	}
}

func (p *publisher) publishAcquired(batch []*item) {
	p.mu.Lock()
	for _, it := range batch {
		p.pending[&it.msg] = it
	}
	p.mu.Unlock()
	for _, it := range batch {
		dequeued(it) // before the publish: its ack may free it
		if _, err := p.s.js.PublishMsgAsync(&it.msg); err != nil {
			p.mu.Lock()
			delete(p.pending, &it.msg)
			p.mu.Unlock()
			if p.shouldRetry(it, err) {
				time.Sleep(20 * time.Millisecond)
				p.send(it)
			}
		}
	}
}

// acquire takes n (<= MaxPending) window slots, republishing retries while
// it waits (issue 10 #2). It returns false if the drain deadline passes first.
func (p *publisher) acquire(n int) bool {
	limit, want := int64(p.s.cfg.MaxPending), int64(n)
	for {
		if p.inflight.Load()+want <= limit { // only run increments: no lost race
			p.inflight.Add(want)
			return true
		}
		// Arm, then re-check: pairs with release's "decrement, then load need".
		p.need.Store(want)
		if p.inflight.Load()+want <= limit {
			p.need.Store(0)
			continue
		}
		// Serve retries while parked: each retried item holds a slot that
		// only its republish (and then its ack) can free, so waiting for
		// space without serving them waits forever after an ack stall.
		select {
		case <-p.space:
		case it := <-p.retryq:
			p.need.Store(0)
			p.republish(it)
		case <-p.deadline:
			p.need.Store(0)
			return false
		}
	}
}

// abandon answers an accepted item that can no longer be published (the
// drain deadline passed): its client is told it was not stored.
func (p *publisher) abandon(it *item) {
	p.lost.Add(1)
	it.span.End()
	it.c.outstanding.Add(-1)
	it.c.resend.add(it.seq, itemKey(it))
	it.c.sendError(it.seq, schema.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "not stored before the shutdown deadline; resend it with the same seq")
	freeItem(it)
}

// abandonInflight answers every published, unanswered item when the drain
// deadline has passed: each was published at least once, so its outcome is
// unknown. Later callbacks for them find nothing in pending.
func (p *publisher) abandonInflight() {
	p.mu.Lock()
	items := make([]*item, 0, len(p.pending))
	for m, it := range p.pending {
		items = append(items, it)
		delete(p.pending, m)
	}
	p.mu.Unlock()
drain:
	for {
		select {
		case it := <-p.retryq:
			items = append(items, it)
		default:
			break drain
		}
	}
	for _, it := range items {
		it.span.End()
		it.c.outstanding.Add(-1)
		it.c.resend.add(it.seq, itemKey(it))
		it.c.sendError(it.seq, schema.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN, "no answer from JetStream before the shutdown deadline; resend it with the same seq")
		// Not freed: nats.go may still hold &it.msg until its timeout fires.
	}
}

// send publishes an item that holds a window slot.
func (p *publisher) send(it *item) {
	for {
		p.mu.Lock()
		p.pending[&it.msg] = it
		p.mu.Unlock()
		_, err := p.s.js.PublishMsgAsync(&it.msg)
		if err == nil {
			return
		}
		p.mu.Lock()
		delete(p.pending, &it.msg)
		p.mu.Unlock()
		if !p.shouldRetry(it, err) {
			return
		}
		time.Sleep(time.Duration(it.attempts) * 20 * time.Millisecond)
	}
}

// republish resends an item whose publish failed asynchronously, or gives
// up on it (run only). No backoff here: the failure already took a publish
// timeout or a server answer, and a sleep per item would serialise a burst of
// timeouts into a long stall.
func (p *publisher) republish(it *item) {
	if p.shouldRetry(it, it.lastErr) {
		p.send(it)
	}
}

// shouldRetry counts an attempt; when retries are exhausted it answers the
// client and frees the slot: OUTCOME_UNKNOWN if some attempt may have stored
// the command, INTERNAL (not stored) otherwise. Either way the client may
// resend with the same seq (issue 10 #4), which is deduplicated.
func (p *publisher) shouldRetry(it *item, err error) bool {
	it.attempts++
	if it.attempts <= p.s.cfg.PublishRetries {
		p.s.m.retries.Inc()
		p.s.log.Warn("publish failed; retrying with the same msg id", "err", err, "msg_id", it.msg.Header.Get(nats.MsgIdHdr), "attempt", it.attempts)
		return true
	}
	p.s.log.Error("publish failed; giving up", "err", err, "msg_id", it.msg.Header.Get(nats.MsgIdHdr), "attempts", it.attempts)
	it.span.RecordError(err)
	it.span.SetStatus(codes.Error, "publish failed")
	it.span.End()
	it.c.outstanding.Add(-1)
	it.c.resend.add(it.seq, itemKey(it))
	if it.ambiguous {
		it.c.sendError(it.seq, schema.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN, "no answer from JetStream: the command may or may not be stored; resend it with the same seq")
	} else {
		it.c.sendError(it.seq, schema.ErrorCode_ERROR_CODE_INTERNAL, "the command was not stored ("+err.Error()+"); resend it with the same seq")
	}
	freeItem(it)
	p.release()
	return false
}

func (p *publisher) release() {
	v := p.inflight.Add(-1)
	if n := p.need.Load(); n > 0 && v+n <= int64(p.s.cfg.MaxPending) && p.need.CompareAndSwap(n, 0) {
		select {
		case p.space <- struct{}{}:
		default:
		}
	}
	if v == 0 {
		select {
		case p.idle <- struct{}{}:
		default:
		}
	}
}

func (p *publisher) take(m *nats.Msg) *item {
	p.mu.Lock()
	it := p.pending[m]
	delete(p.pending, m)
	p.mu.Unlock()
	return it
}

func (p *publisher) onAck(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
	it := p.take(m)
	if it == nil {
		return
	}
	telemetry.Observe(p.s.m.pubLatency, time.Since(it.received).Seconds(), it.span.SpanContext())
	if ack.Duplicate {
		p.s.m.acksDup.Inc()
	} else {
		p.s.m.acksFresh.Inc()
	}
	if it.span.IsRecording() { // the attributes' variadic slice is a heap allocation per ack
		it.span.SetAttributes(attribute.Int64("realm.stream_seq", int64(ack.Sequence)), attribute.Bool("realm.duplicate", ack.Duplicate))
	}
	it.span.End()
	it.c.outstanding.Add(-1)
	if ack.Duplicate && !it.verified {
		it.c.onDuplicate(it.seq, ack.Sequence, it.msg.Header.Get(wire.HeaderCmdDigest)) // a resend or a reused seq? (session.go)
	} else {
		it.c.sendAck(it.seq, ack.Sequence, ack.Duplicate)
	}
	freeItem(it)
	p.release()
}

func (p *publisher) onErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	it := p.take(m)
	if it == nil {
		return
	}
	// The decision (retry or give up, which frees the item) is run's: a
	// publish timeout can fire while run is still inside PublishMsgAsync
	// for this very item (nats.go arms the timer before it copies the
	// message), so freeing it here would let a reader reuse it mid-publish.
	it.lastErr = err
	it.ambiguous = it.ambiguous || ambiguousPublishErr(err)
	p.retryq <- it // never blocks: capacity == window and it holds a slot
	// Wake the publisher if it is parked in Wait; a full ring means it is busy
	// and will see retryq on its next loop; a closed ring means it is in the
	// drain loop, which selects on retryq.
	_ = p.ring.TryEnqueue(nil)
}

package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/realmstream/realmstream/libs/mpsc"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/jsasync"
)

// Publisher is the single consumer of the ring. Concurrency contract:
//   - run is the ONE goroutine that calls DequeueBatch/Wait and Publish
//     (retries included: they come back to it through retryq). Wherever run
//     blocks (ring Wait, acquire, the drain loop) it also serves retryq: an
//     item in retryq holds a window slot, so a run that waits for slots
//     without serving retryq deadlocks after an ack stall (issue 10 #2).
//   - onAck/onErr run on the jsasync reply goroutine (and its timeout
//     sweeper); they never block. onAck answers the client through its
//     bounded send queue and frees the item (an ack cannot arrive before
//     Publish wrote the message out). onErr only hands the item to run
//     through retryq, whose capacity equals the window so a send to it
//     never blocks (each item in it holds a slot); run decides retry or
//     give-up, because a timeout can fire while run is still publishing
//     that item.
//   - js (jsasync) holds the published, unanswered items: each gets one
//     callback, or comes back from Abandon, never both.
//   - the window: inflight counts published, unanswered items (at most
//     MaxPending). Only run increments it; the ack side decrements it. When
//     run needs n slots it stores n in need and parks on space; the ack side
//     wakes it once n slots are free, not on every ack (a wake-up per ack
//     would ping-pong two goroutines per message when the window is full).
type Publisher struct {
	cfg    Config
	m      Metrics
	log    *slog.Logger
	js     AsyncPublisher // set by Run
	ring   *mpsc.Ring[*Item]
	retryq chan *Item

	inflight atomic.Int64
	need     atomic.Int64  // slots run waits for; 0 when it does not wait
	space    chan struct{} // cap 1: wakes run when need slots are free
	idle     chan struct{} // signalled when inflight drops to 0
	lost     atomic.Int64  // items not stored when the drain deadline passed
	deadline <-chan struct{}

	// Command batches (batch.go; run only): the groups waiting by subject,
	// how many are not empty, the batches published, the boot nonce of
	// their ids.
	groups    map[string]*group
	lingering int
	batches   uint64
	boot      string
}

func New(cfg Config, m Metrics, log *slog.Logger) *Publisher {
	return &Publisher{
		cfg:    cfg,
		m:      m,
		log:    log,
		ring:   mpsc.New[*Item](cfg.RingSize),
		space:  make(chan struct{}, 1),
		retryq: make(chan *Item, cfg.MaxPending),
		idle:   make(chan struct{}, 1),
		groups: map[string]*group{},
		boot:   bootNonce(),
	}
}

// AsyncPublisher makes the JetStream publisher Run publishes with, on nc:
// the publisher's callbacks and its publish timeout, so every publish gets
// an outcome. The caller closes it after Run returned.
func (p *Publisher) AsyncPublisher(nc *nats.Conn) (*jsasync.Publisher[*Item], error) {
	return jsasync.New(nc, jsasync.Options[*Item]{Timeout: p.cfg.PublishTimeout, OnAck: p.onAck, OnErr: p.onErr, Capacity: p.cfg.MaxPending})
}

// Run publishes on js (made with AsyncPublisher) what the readers
// enqueue: it drains the ring until it is closed (Close) and empty, then
// waits (until drainDeadline is done) for every outstanding ack. It returns
// when nothing is in flight or the deadline passed.
func (p *Publisher) Run(js AsyncPublisher, drainDeadline <-chan struct{}) {
	p.js, p.deadline = js, drainDeadline
	buf := make([]*Item, p.cfg.BatchSize)
	bg := context.Background()
	for {
		p.takeRetries()
		n := p.ring.DequeueBatch(buf)
		if n == 0 {
			if p.lingering > 0 {
				// Batches wait for their linger: sleep until the first is
				// due rather than park (no reader needs to wake us).
				if d := p.flushDue(time.Now(), false); d > 0 {
					time.Sleep(d)
				}
				continue
			}
			if err := p.ring.Wait(bg); errors.Is(err, mpsc.ErrClosed) {
				break
			}
			continue
		}
		p.m.Batch.Observe(float64(n))
		p.publishBatch(buf[:n])
		clear(buf[:n])
		if p.lingering > 0 { // no clock read per drain when nothing waits (batches off)
			p.flushDue(time.Now(), false)
		}
	}
	p.flushDue(time.Now(), true)
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
			p.log.Error("drain deadline passed with publishes unacknowledged; their clients are told the outcome is unknown", "inflight", n)
			p.abandonInflight()
			return
		}
	}
}

func (p *Publisher) takeRetries() {
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
// publishes are unanswered: readers meanwhile answer Busy), then publishes
// it (js registers each item). nil items are wake-ups.
func (p *Publisher) publishBatch(batch []*Item) {
	k := 0
	for _, it := range batch {
		if it != nil {
			batch[k] = it
			k++
		}
	}
	batch = batch[:k]
	for len(batch) > 0 {
		n := min(len(batch), p.cfg.MaxPending)
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

func (p *Publisher) publishAcquired(batch []*Item) {
	if p.cfg.CommandBatch {
		now := time.Now()
		for _, it := range batch {
			if p.batchable(it) {
				p.gather(it, now)
				continue
			}
			p.flushSubject(it.Msg.Subject)
			p.publishOne(it)
		}
		return
	}
	for _, it := range batch {
		p.publishOne(it)
	}
}

// publishOne publishes one item (a command or a batch's carrier) that
// holds its window slots; a publish that fails at once is retried (after a
// pause) or given up here.
func (p *Publisher) publishOne(it *Item) {
	it.Dequeued() // before the publish: its ack may free it
	if err := p.js.Publish(&it.Msg, it); err != nil {
		if p.shouldRetry(it, err) {
			time.Sleep(20 * time.Millisecond)
			p.send(it)
		}
	}
}

// acquire takes n (<= MaxPending) window slots, republishing retries while
// it waits (issue 10 #2). It returns false if the drain deadline passes first.
func (p *Publisher) acquire(n int) bool {
	limit, want := int64(p.cfg.MaxPending), int64(n)
	for {
		if p.inflight.Load()+want <= limit { // only run increments: no lost race
			p.inflight.Add(want)
			return true
		}
		if p.lingering > 0 {
			// Commands waiting in batch groups hold slots that only their
			// publish (and then its ack) frees: publish them before
			// waiting for slots, or wait forever.
			p.flushDue(time.Now(), true)
			continue
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
func (p *Publisher) abandon(it *Item) {
	p.lost.Add(1)
	it.Span.End()
	it.Client.Failed(it.Seq, it.Key(), schema.ErrorCode_ERROR_CODE_SHUTTING_DOWN, "not stored before the shutdown deadline; resend it with the same seq")
	it.Free()
}

// abandonInflight answers every published, unanswered item when the drain
// deadline has passed: each was published at least once, so its outcome is
// unknown. No callback comes for them after Abandon.
func (p *Publisher) abandonInflight() {
	items := p.js.Abandon()
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
		for _, m := range it.members() {
			m.Span.End()
			m.Client.Failed(m.Seq, m.Key(), schema.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN, "no answer from JetStream before the shutdown deadline; resend it with the same seq")
		}
		// Not freed: the gateway is stopping, so the pool gains nothing.
	}
}

// send publishes an item that holds a window slot.
func (p *Publisher) send(it *Item) {
	for {
		err := p.js.Publish(&it.Msg, it)
		if err == nil {
			return
		}
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
func (p *Publisher) republish(it *Item) {
	if p.shouldRetry(it, it.lastErr) {
		p.send(it)
	}
}

// shouldRetry counts an attempt; when retries are exhausted it answers the
// client and frees the slot: OUTCOME_UNKNOWN if some attempt may have stored
// the command, INTERNAL (not stored) otherwise. Either way the client may
// resend with the same seq (issue 10 #4), which is deduplicated.
func (p *Publisher) shouldRetry(it *Item, err error) bool {
	it.attempts++
	if it.attempts <= p.cfg.PublishRetries {
		p.m.Retries.Inc()
		p.log.Warn("publish failed; retrying with the same msg id", "err", err, "msg_id", it.Msg.Header.Get(nats.MsgIdHdr), "attempt", it.attempts)
		return true
	}
	p.log.Error("publish failed; giving up", "err", err, "msg_id", it.Msg.Header.Get(nats.MsgIdHdr), "attempts", it.attempts, "commands", len(it.members()))
	ambiguous := it.ambiguous
	p.settle(it, func(m *Item) {
		m.Span.RecordError(err)
		m.Span.SetStatus(codes.Error, "publish failed")
		m.Span.End()
		if ambiguous {
			m.Client.Failed(m.Seq, m.Key(), schema.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN, "no answer from JetStream: the command may or may not be stored; resend it with the same seq")
		} else {
			m.Client.Failed(m.Seq, m.Key(), schema.ErrorCode_ERROR_CODE_INTERNAL, "the command was not stored ("+err.Error()+"); resend it with the same seq")
		}
	})
	return false
}

// releaseN frees n window slots.
func (p *Publisher) releaseN(n int64) {
	v := p.inflight.Add(-n)
	if n := p.need.Load(); n > 0 && v+n <= int64(p.cfg.MaxPending) && p.need.CompareAndSwap(n, 0) {
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

func (p *Publisher) onAck(it *Item, ack jsasync.Ack) {
	if it.isBatch() {
		// One PubAck stores every command of the batch; a duplicate one
		// answers our own retry of it (batch ids are never reused).
		p.settle(it, func(c *Item) {
			telemetry.Observe(p.m.Latency, time.Since(c.Received).Seconds(), c.Span.SpanContext())
			p.m.AcksFresh.Inc()
			c.Span.End()
			c.Client.Acked(c.Seq, ack.Sequence, false)
		})
		return
	}
	telemetry.Observe(p.m.Latency, time.Since(it.Received).Seconds(), it.Span.SpanContext())
	if ack.Duplicate {
		p.m.AcksDup.Inc()
	} else {
		p.m.AcksFresh.Inc()
	}
	if it.Span.IsRecording() { // the attributes' variadic slice is a heap allocation per ack
		it.Span.SetAttributes(attribute.Int64("realm.stream_seq", int64(ack.Sequence)), attribute.Bool("realm.duplicate", ack.Duplicate))
	}
	it.Span.End()
	if ack.Duplicate && !it.Verified {
		it.Client.CheckDuplicate(it.Seq, ack.Sequence, it.Msg.Header.Get(wire.HeaderCmdDigest)) // a resend or a reused seq?
	} else {
		it.Client.Acked(it.Seq, ack.Sequence, ack.Duplicate)
	}
	it.Free()
	p.releaseN(1)
}

func (p *Publisher) onErr(it *Item, err error) {
	// The decision (retry or give up, which frees the item) is run's: a
	// publish timeout can fire while run is still inside Publish for this
	// very item (jsasync registers it before it writes the message out), so
	// freeing it here would let a reader reuse it mid-publish.
	it.lastErr = err
	it.ambiguous = it.ambiguous || ambiguousPublishErr(err)
	p.retryq <- it // never blocks: capacity == window and it holds a slot
	// Wake the publisher if it is parked in Wait; a full ring means it is busy
	// and will see retryq on its next loop; a closed ring means it is in the
	// drain loop, which selects on retryq.
	_ = p.ring.TryEnqueue(nil)
}

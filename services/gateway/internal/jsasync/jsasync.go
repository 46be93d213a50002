// Package jsasync publishes JetStream messages asynchronously on a core NATS
// connection and hands each PubAck to a callback: the gateway publisher's
// lean replacement of nats.go's jetstream.PublishMsgAsync (issue 12 #4).
//
// What it leaves out, measured in the gateway's ingest profile: nats.go
// allocates a future and arms a timer per publish, keeps its ack map under
// the same lock that publishers take, and decodes every PubAck with
// encoding/json under that lock (8% of the gateway process's CPU alone).
// Here a publish is one slot of an array (by reply token) and one
// PublishMsg; the timeouts are one sweep of the registry per Timeout/8, not
// a timer per message; the PubAck the server writes ({"stream":"S","seq":N}
// and its duplicate and domain forms) is parsed by hand, anything else by
// encoding/json with nats.go's error semantics (ParsePubAck).
//
// Semantics kept from nats.go: one reply subscription on a wildcard inbox,
// a unique reply token per publish (a late answer to a timed-out publish is
// ignored, never taken for a later one), no responders (no stream for the
// subject) -> jetstream.ErrNoStreamResponse, a stream's error answer ->
// *jetstream.APIError, an unreadable answer -> jetstream.ErrInvalidJSAck,
// no answer within Timeout -> ErrTimeout. Every Publish that returned nil
// gets exactly one OnAck or OnErr, unless Abandon or Close comes first; a
// Publish that returned an error gets neither.
package jsasync

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrTimeout: no PubAck came within Options.Timeout; the message may or may
// not be stored. It wraps nats.ErrTimeout.
var ErrTimeout = fmt.Errorf("jsasync: no PubAck within the publish timeout: %w", nats.ErrTimeout)

// ErrClosed: Publish after Close.
var ErrClosed = errors.New("jsasync: publisher closed")

// Ack is a stored message's PubAck.
type Ack struct {
	Stream    string
	Domain    string
	Sequence  uint64
	Duplicate bool // the stream already had the Nats-Msg-Id (within its window)
}

// Options configure a Publisher: Timeout, OnAck and OnErr are required.
type Options[T any] struct {
	// Timeout fails a publish with ErrTimeout when no answer came within
	// it (detected within Timeout/8 after it passed).
	Timeout time.Duration
	// OnAck and OnErr are called on the reply subscription's goroutine
	// (OnErr also on the timeout sweeper's); they must not block. v is
	// what was given to Publish with the message.
	OnAck func(v T, ack Ack)
	OnErr func(v T, err error)
	// Capacity is how many publishes are expected in flight at most (the
	// caller's window; default 8192): the registry is an array of twice
	// that many slots indexed by reply token, with a map for what does not
	// fit (a slot still held by a publish that long awaits its answer).
	Capacity int
}

// Publisher publishes messages, each with a value of T that its outcome's
// callback gets back: the publisher's registry of what is in flight is the
// caller's too (Abandon). Safe for concurrent use.
type Publisher[T any] struct {
	nc     *nats.Conn
	sub    *nats.Subscription
	prefix string
	opts   Options[T]

	mu       sync.Mutex
	next     uint64
	slots    []slot[T] // by token & mask; id 0: free
	mask     uint64
	overflow map[uint64]entry[T]
	pending  int
	closed   bool

	tick atomic.Uint32 // sweeper ticks so far
	stop chan struct{}
	done chan struct{}
}

type entry[T any] struct {
	v    T
	born uint32 // tick at publish
}

type slot[T any] struct {
	id uint64
	entry[T]
}

// sweepsPerTimeout is the timeout's granularity: a publish fails between
// Timeout and Timeout*(1+1/sweepsPerTimeout) after it was made.
const sweepsPerTimeout = 8

// New subscribes to a fresh inbox on nc for the answers and starts the
// timeout sweeper. Close releases both.
func New[T any](nc *nats.Conn, opts Options[T]) (*Publisher[T], error) {
	if opts.Timeout <= 0 || opts.OnAck == nil || opts.OnErr == nil {
		return nil, errors.New("jsasync: Timeout, OnAck and OnErr are required")
	}
	if opts.Capacity <= 0 {
		opts.Capacity = 8192
	}
	n := 1
	for n < 2*opts.Capacity {
		n <<= 1
	}
	p := &Publisher[T]{
		nc:       nc,
		prefix:   nc.NewInbox() + ".",
		opts:     opts,
		slots:    make([]slot[T], n),
		mask:     uint64(n - 1),
		overflow: map[uint64]entry[T]{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	sub, err := nc.Subscribe(p.prefix+"*", p.handle)
	if err != nil {
		return nil, fmt.Errorf("jsasync: reply subscription: %w", err)
	}
	// The window of the caller bounds what is pending; never drop an
	// answer as a slow consumer (it would surface as a timeout).
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("jsasync: reply subscription limits: %w", err)
	}
	p.sub = sub
	go p.sweep(opts.Timeout / sweepsPerTimeout)
	return p, nil
}

// Publish sends m (its Reply is overwritten) and registers v for its
// answer. An error means m was not sent and no callback will come for v.
func (p *Publisher[T]) Publish(m *nats.Msg, v T) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.next++
	id := p.next
	p.register(id, entry[T]{v: v, born: p.tick.Load()})
	p.mu.Unlock()
	var b [16]byte
	m.Reply = p.prefix + string(strconv.AppendUint(b[:0], id, 36))
	if err := p.nc.PublishMsg(m); err != nil {
		p.mu.Lock()
		_, mine := p.take(id)
		p.mu.Unlock()
		if !mine {
			// The sweeper timed it out meanwhile and OnErr has it: one
			// outcome per publish.
			return nil
		}
		return err
	}
	return nil
}

// Pending is the number of publishes awaiting their answer.
func (p *Publisher[T]) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending
}

// Abandon forgets every publish awaiting its answer and returns their
// values: no callback will come for them (a later answer is ignored).
func (p *Publisher[T]) Abandon() []T {
	p.mu.Lock()
	defer p.mu.Unlock()
	vs := make([]T, 0, p.pending)
	p.each(func(e entry[T]) bool { vs = append(vs, e.v); return true })
	return vs
}

// register, take and each keep the registry; p.mu is held.
func (p *Publisher[T]) register(id uint64, e entry[T]) {
	if s := &p.slots[id&p.mask]; s.id == 0 {
		s.id, s.entry = id, e
	} else {
		p.overflow[id] = e
	}
	p.pending++
}

func (p *Publisher[T]) take(id uint64) (entry[T], bool) {
	if s := &p.slots[id&p.mask]; s.id == id {
		e := s.entry
		*s = slot[T]{}
		p.pending--
		return e, true
	}
	if e, ok := p.overflow[id]; ok {
		delete(p.overflow, id)
		p.pending--
		return e, true
	}
	return entry[T]{}, false
}

// each removes every entry for which drop says true.
func (p *Publisher[T]) each(drop func(entry[T]) bool) {
	if p.pending == 0 {
		return
	}
	for i := range p.slots {
		if s := &p.slots[i]; s.id != 0 && drop(s.entry) {
			*s = slot[T]{}
			p.pending--
		}
	}
	for id, e := range p.overflow {
		if drop(e) {
			delete(p.overflow, id)
			p.pending--
		}
	}
}

// Close stops the sweeper and the reply subscription and forgets what is
// pending: no callback starts after Close returns (Abandon first to get the
// values back); later publishes fail with ErrClosed. Idempotent.
func (p *Publisher[T]) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.each(func(entry[T]) bool { return true })
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	_ = p.sub.Unsubscribe()
}

func (p *Publisher[T]) handle(r *nats.Msg) {
	if len(r.Subject) <= len(p.prefix) {
		return
	}
	id, err := strconv.ParseUint(r.Subject[len(p.prefix):], 36, 64)
	if err != nil {
		return
	}
	p.mu.Lock()
	e, ok := p.take(id)
	p.mu.Unlock()
	if !ok {
		return // answered late, after its timeout
	}
	if len(r.Data) == 0 && r.Header.Get("Status") == "503" {
		p.opts.OnErr(e.v, jetstream.ErrNoStreamResponse)
		return
	}
	ack, err := ParsePubAck(r.Data)
	if err != nil {
		p.opts.OnErr(e.v, err)
		return
	}
	p.opts.OnAck(e.v, ack)
}

func (p *Publisher[T]) sweep(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	var expired []T
	var zero T
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		now := p.tick.Add(1)
		p.mu.Lock()
		p.each(func(e entry[T]) bool {
			// At least ticks whole intervals since the publish: born is
			// the tick count when it was made, so now-born-1 of them.
			if now-e.born > sweepsPerTimeout {
				expired = append(expired, e.v)
				return true
			}
			return false
		})
		p.mu.Unlock()
		for i, v := range expired {
			p.opts.OnErr(v, ErrTimeout)
			expired[i] = zero
		}
		expired = expired[:0]
	}
}

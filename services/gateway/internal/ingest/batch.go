package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/realmstream/realmstream/libs/wire"
)

// Command batches (Config.CommandBatch, docs/command-batches.md): the
// publisher groups the fresh commands it drains by subject (zone) and
// publishes each group as one message (wire's command batch) once it holds
// BatchMax commands or BatchBytes, or once Linger has passed since its first
// command. A command that is not fresh (a resend, a verified duplicate, a
// retry, a traced command with its own span and traceparent) is published
// alone, after the group of its subject: a session's commands keep their
// order on cmd.<zone>.
//
// Every command of a batch keeps its window slot until the batch's PubAck:
// the window counts commands. The batch is one published Item (a carrier
// whose members are the commands): retries, give-up and the drain deadline
// act on the carrier and answer each member as a single command is
// answered. JetStream deduplicates the batch by its own id (the carrier's
// retries), not the commands in it: docs/command-batches.md says what that
// gives up after a gateway crash and what covers it.

// batchBytesMax bounds a batch's payload (well under NATS' default 1 MiB
// max payload: 64 commands of the largest frame fit).
const batchBytesMax = 256 << 10

// group is the commands of one subject waiting to be published as a batch.
type group struct {
	subject string
	items   []*Item
	bytes   int
	since   time.Time // when its first command was drained
}

var noSpan = trace.SpanFromContext(context.Background())

func bootNonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// batchable says whether it may go into a batch: fresh (the reader said so)
// and never published.
func (p *Publisher) batchable(it *Item) bool {
	return p.cfg.CommandBatch && it.Batchable && it.attempts == 0 && !it.isBatch()
}

// gather adds it to its subject's group, publishing the group first when it
// would exceed BatchBytes and after when it reaches BatchMax (run only).
func (p *Publisher) gather(it *Item, now time.Time) {
	g := p.groups[it.Msg.Subject]
	if g == nil {
		g = &group{subject: it.Msg.Subject}
		p.groups[it.Msg.Subject] = g
	}
	size := wire.CommandBatchEntrySize(len(it.Buf))
	if len(g.items) > 0 && g.bytes+size > batchBytesMax {
		p.flush(g)
	}
	if len(g.items) == 0 {
		g.since = now
		p.lingering++
	}
	g.items = append(g.items, it)
	g.bytes += size
	if len(g.items) >= p.cfg.BatchMax {
		p.flush(g)
	}
}

// flushSubject publishes the waiting group of subject, if any: an unbatched
// command of that subject goes after it.
func (p *Publisher) flushSubject(subject string) {
	if g := p.groups[subject]; g != nil && len(g.items) > 0 {
		p.flush(g)
	}
}

// flushDue publishes every group whose linger has passed at now (every
// group when all is set or the linger is 0); it returns how long until the
// next group is due (0: none waits).
func (p *Publisher) flushDue(now time.Time, all bool) time.Duration {
	if p.lingering == 0 {
		return 0
	}
	var next time.Duration
	for _, g := range p.groups {
		if len(g.items) == 0 {
			continue
		}
		left := p.cfg.Linger - now.Sub(g.since)
		if all || left <= 0 {
			p.flush(g)
			continue
		}
		if next == 0 || left < next {
			next = left
		}
	}
	return next
}

// flush publishes g's commands: alone when there is one, else as one batch
// carried by an Item of its own.
func (p *Publisher) flush(g *group) {
	n := len(g.items)
	if n == 0 {
		return
	}
	p.lingering--
	if p.m.Commands != nil {
		p.m.Commands.Observe(float64(n))
	}
	if n == 1 {
		it := g.items[0]
		g.items[0], g.items, g.bytes = nil, g.items[:0], 0
		p.publishOne(it)
		return
	}
	c := NewItem()
	c.batch = append(c.batch[:0], g.items...)
	c.Buf = c.Buf[:0]
	for _, it := range g.items {
		c.Buf = wire.AppendCommandBatchEntry(c.Buf, it.Buf)
		it.Dequeued()
	}
	clear(g.items)
	g.items, g.bytes = g.items[:0], 0
	p.batches++
	c.bhdr.Fill(c.Msg.Header, wire.CommandBatchID(p.cfg.Instance, p.boot, p.batches), n)
	c.Msg.Subject, c.Msg.Data = g.subject, c.Buf
	c.Span = noSpan // its members' spans are their own (none is traced)
	p.publishOne(c)
}

// settle ends it for good: f answers each command it carries (it itself, or
// every member of a batch), which is freed after; then its window slots are
// released.
func (p *Publisher) settle(it *Item, f func(*Item)) {
	if !it.isBatch() {
		f(it)
		it.Free()
		p.releaseN(1)
		return
	}
	n := len(it.batch)
	for _, m := range it.batch {
		f(m)
		m.Free()
	}
	it.Free()
	p.releaseN(int64(n))
}

// members returns the commands it carries: a batch's members, or it.
func (it *Item) members() []*Item {
	if it.isBatch() {
		return it.batch
	}
	return []*Item{it}
}

// isBatch says whether it carries a batch (a carrier has two or more).
func (it *Item) isBatch() bool { return len(it.batch) > 0 }

// Package pipeline moves events from the EVT stream into a store: a durable
// pull consumer, batches by size and time, one Store.Write per fetched
// batch (for Pebble: one synced Pebble batch), acks after the write
// returned. A message is a tick record of many events (or a legacy single
// event); store.DecodeMessage turns it into one Record per event, and the
// message is acked once all of them are stored.
//
// Ordering and failure contract: batches are written one at a time. If the
// write fails for some physical shards only (store.PartialError), the
// messages stored on the others are acked at once and the failed ones are
// carried into the next write, merged with the next fetched batch, so a
// shard that is down pauses only the messages that touch it (its logical
// shards' rows, or read-model rows it holds) while the others keep being
// stored and acked. The carried set is bounded (MaxCarry messages): beyond
// it no new batch is taken and only the carried messages are retried with
// backoff (the consumer pauses, memory stays bounded), as it does when a
// write fails whole. Shards that committed skip a retried message by their
// high-water mark. Every held message (being written, carried, or
// prefetched and waiting) is kept alive with InProgress every AckWait/4, so
// a short AckWait (default 5s) does not redeliver it. On shutdown or crash
// before the ack the keep-alives stop, JetStream redelivers after AckWait to
// another replica, and the store's exactly-once write makes the replay
// harmless.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/store"
)

// Writer stores a batch exactly once. An error that is a
// *store.PartialError names the messages not stored; any other error means
// none may be acked.
type Writer interface {
	Write(ctx context.Context, recs []store.Record) (store.WriteResult, error)
}

// Reloader is implemented by stores whose shard map can change.
type Reloader interface {
	Reload(ctx context.Context) error
}

// Config of the pipeline.
type Config struct {
	BatchSize  int           // max messages per batch (default 1000)
	BatchWait  time.Duration // max wait to fill a batch (default 100ms)
	AckWait    time.Duration // JetStream redelivery timeout (default 5s); held batches get InProgress every AckWait/4
	MaxBackoff time.Duration // cap of the retry backoff (default 2s)
	// WriteTimeout bounds the write of a batch in flight when ctx is
	// cancelled (drain), default 10s.
	WriteTimeout time.Duration
	// MaxCarry bounds the messages carried over while some shards fail
	// (default 4 x BatchSize); MaxAckPending of the consumer is sized so
	// that a full carry still leaves room for new batches.
	MaxCarry int
	// BeforeAck, if set, runs after a successful write and before the acks;
	// an error makes Run return without acking (tests use it to simulate a
	// crash between commit and ack).
	BeforeAck func(recs []store.Record) error
	// TracerProvider makes the batch and row spans (trace.go); nil = the
	// global provider. StoreName names the store in them ("postgres",
	// "pebble").
	TracerProvider trace.TracerProvider
	StoreName      string
}

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.BatchWait <= 0 {
		c.BatchWait = 100 * time.Millisecond
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 2 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxCarry <= 0 {
		c.MaxCarry = 4 * c.BatchSize
	}
	return c
}

// DefaultAckWait bounds how long the messages of a replica that died
// mid-batch wait before another replica gets them.
const DefaultAckWait = 5 * time.Second

// Stats are cumulative counters of the pipeline.
type Stats struct {
	Batches, Events, Inserted, Skipped, Retries atomic.Int64
	// Messages counts messages acked; Carried is the number of messages
	// held back now because a shard they touch failed.
	Messages, Carried atomic.Int64
	// KeepAlives counts InProgress rounds sent for held batches.
	KeepAlives atomic.Int64
}

// Pipeline is one consumer of EVT.
type Pipeline struct {
	cfg   Config
	cons  jetstream.Consumer
	w     Writer
	log   *slog.Logger
	Stats Stats

	liveMu sync.Mutex
	live   map[*fetched]time.Time // batches held, with the time of their last keep-alive
}

// ConsumerConfig is the durable consumer persist uses.
func ConsumerConfig(c Config) jetstream.ConsumerConfig {
	c = c.withDefaults()
	return jetstream.ConsumerConfig{
		Durable:       wire.DurablePersist,
		Description:   "persist: EVT -> storage",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxAckPending: c.MaxCarry + 4*c.BatchSize,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: wire.EventSubjects,
		MaxDeliver:    -1,
	}
}

// New creates or updates the durable consumer and returns the pipeline.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, w Writer, log *slog.Logger) (*Pipeline, error) {
	cfg = cfg.withDefaults()
	cons, err := js.CreateOrUpdateConsumer(ctx, wire.StreamEvents, ConsumerConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("pipeline: consumer %s: %w", wire.DurablePersist, err)
	}
	return &Pipeline{cfg: cfg, cons: cons, w: w, log: log, live: map[*fetched]time.Time{}}, nil
}

// Consumer returns the JetStream consumer (lag for stats).
func (p *Pipeline) Consumer() jetstream.Consumer { return p.cons }

// Lag is the number of messages not yet acked (pending + in flight).
func (p *Pipeline) Lag(ctx context.Context) (int64, error) {
	info, err := p.cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(info.NumPending) + int64(info.NumAckPending), nil
}

// fetched is a set of messages taken from the consumer and their records:
// the records of msgs[i] are recs[ends[i-1]:ends[i]].
type fetched struct {
	msgs []jetstream.Msg
	seqs []uint64 // stream sequence of each message
	ends []int
	recs []store.Record
}

func (f *fetched) add(m jetstream.Msg, seq uint64, recs []store.Record) {
	f.msgs = append(f.msgs, m)
	f.seqs = append(f.seqs, seq)
	f.recs = append(f.recs, recs...)
	f.ends = append(f.ends, len(f.recs))
}

func (f *fetched) records(i int) []store.Record {
	start := 0
	if i > 0 {
		start = f.ends[i-1]
	}
	return f.recs[start:f.ends[i]]
}

// merge returns the messages of a then b, a message held twice (carried and
// redelivered meanwhile) once: both deliveries are acked (either ack acks
// the message).
func merge(a, b *fetched) (*fetched, []jetstream.Msg) {
	if a == nil {
		return b, nil
	}
	if b == nil {
		return a, nil
	}
	out := &fetched{}
	var dup []jetstream.Msg
	have := make(map[uint64]bool, len(a.seqs))
	for i, m := range a.msgs {
		have[a.seqs[i]] = true
		out.add(m, a.seqs[i], a.records(i))
	}
	for i, m := range b.msgs {
		if have[b.seqs[i]] {
			dup = append(dup, m)
			continue
		}
		out.add(m, b.seqs[i], b.records(i))
	}
	return out, dup
}

// Run consumes until ctx is cancelled; the batch in flight is finished
// (bounded by WriteTimeout) and acked. It returns nil on a clean stop.
//
// One goroutine fetches and decodes the next batch while the current one is
// written (at most one batch waits), so NATS round trips and decoding overlap
// the database commit. A paused writer thus holds at most two batches; the
// waiting one may be redelivered after AckWait, which is harmless.
func (p *Pipeline) Run(ctx context.Context) error {
	fctx, stopFetch := context.WithCancel(ctx)
	ch := make(chan *fetched, 1)
	go p.fetchLoop(fctx, ch)
	kctx, stopKeep := context.WithCancel(context.WithoutCancel(ctx))
	keepDone := make(chan struct{})
	go func() {
		defer close(keepDone)
		p.keepAlive(kctx)
	}()
	drain := func() {
		stopFetch()
		for f := range ch { // let the fetcher finish; unwritten batches are redelivered
			p.release(f)
		}
		// No more keep-alives: what is not acked now is redelivered after
		// AckWait to whichever replica consumes.
		stopKeep()
		<-keepDone
		p.liveMu.Lock()
		clear(p.live)
		p.liveMu.Unlock()
	}
	defer drain()
	var (
		carry   *fetched                       // messages a failed shard holds back
		dups    = map[uint64][]jetstream.Msg{} // second deliveries of carried messages, acked with them
		backoff = 50 * time.Millisecond
		retry   *time.Timer
		bt      = newBatchTrace(p.cfg.TracerProvider, p.cfg.StoreName)
	)
	for {
		var f *fetched
		switch {
		case carry == nil:
			var ok bool
			if f, ok = <-ch; !ok {
				return nil
			}
		case len(carry.msgs) >= p.cfg.MaxCarry:
			// Carry full: pause the consumer, retry what is held.
			if !sleep(ctx, backoff) {
				return nil
			}
		default:
			// Go on with new batches; retry the carried ones with them, or
			// alone after the backoff if nothing comes.
			if retry == nil {
				retry = time.NewTimer(backoff)
			}
			select {
			case nf, ok := <-ch:
				if !ok {
					return nil
				}
				f = nf
			case <-retry.C:
				retry = nil
			case <-ctx.Done():
				return nil
			}
		}
		batch, dup := merge(carry, f)
		for _, d := range dup {
			if md, err := d.Metadata(); err == nil {
				dups[md.Sequence.Stream] = append(dups[md.Sequence.Stream], d)
			}
		}
		if f != nil && carry != nil {
			p.hold(batch)
			p.release(carry)
			p.release(f)
		}
		wctx, retries := bt.begin(ctx, batch), p.Stats.Retries.Load()
		failed, err := p.write(wctx, batch.recs)
		bt.end(batch, failed, p.Stats.Retries.Load()-retries, err)
		if err != nil {
			return nil // shutdown: what is not acked is redelivered
		}
		if len(failed) == 0 && p.cfg.BeforeAck != nil {
			if err := p.cfg.BeforeAck(batch.recs); err != nil {
				return err
			}
		}
		var keep fetched
		acked := 0
		for i, m := range batch.msgs {
			if failed[batch.seqs[i]] {
				keep.add(m, batch.seqs[i], batch.records(i))
				continue
			}
			_ = m.Ack()
			for _, d := range dups[batch.seqs[i]] {
				_ = d.Ack()
			}
			delete(dups, batch.seqs[i])
			acked++
			p.Stats.Events.Add(int64(len(batch.records(i))))
		}
		p.Stats.Messages.Add(int64(acked))
		p.release(batch)
		if len(keep.msgs) == 0 {
			carry = nil
			backoff = 50 * time.Millisecond
			if retry != nil {
				retry.Stop()
				retry = nil
			}
		} else {
			carry = &keep
			p.hold(carry)
			if retry == nil || len(carry.msgs) >= p.cfg.MaxCarry {
				backoff = min(2*backoff, p.cfg.MaxBackoff)
			}
		}
		p.Stats.Carried.Store(int64(len(keep.msgs)))
		p.Stats.Batches.Add(1)
	}
}

// hold registers a fetched batch for keep-alives until release.
func (p *Pipeline) hold(f *fetched) {
	p.liveMu.Lock()
	p.live[f] = time.Now()
	p.liveMu.Unlock()
}

func (p *Pipeline) release(f *fetched) {
	p.liveMu.Lock()
	delete(p.live, f)
	p.liveMu.Unlock()
}

// keepAlive sends InProgress for the messages of every batch held longer
// than AckWait/4 since its delivery or last keep-alive, so that a batch
// whose write takes longer than AckWait (a slow or paused database, a
// retried write, the prefetched batch waiting behind it) is not redelivered
// to another replica meanwhile. Batches written quickly cost nothing.
func (p *Pipeline) keepAlive(ctx context.Context) {
	every := max(p.cfg.AckWait/4, 10*time.Millisecond)
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var due []*fetched
		now := time.Now()
		p.liveMu.Lock()
		for f, last := range p.live {
			if now.Sub(last) >= every {
				due = append(due, f)
				p.live[f] = now
			}
		}
		p.liveMu.Unlock()
		for _, f := range due {
			for _, m := range f.msgs {
				_ = m.InProgress()
			}
			p.Stats.KeepAlives.Add(1)
		}
	}
}

func (p *Pipeline) fetchLoop(ctx context.Context, ch chan<- *fetched) {
	defer close(ch)
	for ctx.Err() == nil {
		batch, err := p.cons.Fetch(p.cfg.BatchSize, jetstream.FetchMaxWait(p.cfg.BatchWait))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("fetch failed", "err", err)
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		f := &fetched{}
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				p.log.Error("message without metadata; terminating it", "subject", m.Subject(), "err", err)
				_ = m.Term()
				continue
			}
			f.add(m, meta.Sequence.Stream, store.DecodeMessage(meta.Sequence.Stream, m.Subject(), m.Headers(), m.Data(), meta.Timestamp))
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && len(f.msgs) == 0 && ctx.Err() == nil {
			p.log.Warn("fetch error", "err", err)
		}
		if len(f.msgs) == 0 {
			continue
		}
		p.hold(f)
		select {
		case ch <- f:
		case <-ctx.Done():
			p.release(f)
			return
		}
	}
}

// write stores the batch. It retries a write that failed whole until it
// succeeds, fails in part (it returns the message sequences not stored, to
// carry), or ctx (plus the drain timeout) ends (it returns the error).
// Meanwhile keepAlive keeps the messages from being redelivered.
func (p *Pipeline) write(ctx context.Context, recs []store.Record) (map[uint64]bool, error) {
	backoff := 50 * time.Millisecond
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(p.cfg.WriteTimeout, cancel) // drain: bounded
		_ = t
	})
	defer stop()
	for attempt := 1; ; attempt++ {
		res, err := p.w.Write(wctx, recs)
		p.Stats.Inserted.Add(int64(res.Inserted))
		p.Stats.Skipped.Add(int64(res.Skipped))
		if err == nil {
			if res.Skipped > 0 {
				p.log.Info("redelivered events skipped", "skipped", res.Skipped, "inserted", res.Inserted)
			}
			return nil, nil
		}
		p.Stats.Retries.Add(1)
		if ctx.Err() != nil || wctx.Err() != nil {
			p.log.Warn("batch not stored before shutdown; it will be redelivered", "events", len(recs), "err", err)
			return nil, err
		}
		if r, ok := p.w.(Reloader); ok {
			if rerr := r.Reload(wctx); rerr != nil {
				p.log.Warn("shard map reload failed", "err", rerr)
			}
		}
		var pe *store.PartialError
		if errors.As(err, &pe) && len(pe.Failed) > 0 {
			p.log.Warn("batch stored in part; messages of the failed shards carried over", "not_stored", len(pe.Failed), "err", pe.Err)
			return pe.Failed, nil
		}
		p.log.Warn("batch write failed; consumer paused, retrying", "attempt", attempt, "events", len(recs), "backoff", backoff, "err", err)
		if !sleep(ctx, backoff) {
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, p.cfg.MaxBackoff)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

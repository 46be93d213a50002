// Package ingest carries accepted client commands to JetStream: the readers
// build an Item and enqueue it on the MPSC ring (Publisher.Enqueue), and ONE
// publisher goroutine (Publisher.Run) publishes the ring's batches on
// cmd.<zone> within a window of in-flight acks, retries with the same msg id,
// and answers each command's Client once its outcome is final. It knows
// nothing of sockets, sessions or updates: a Client is whatever accepted the
// command.
package ingest

import (
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// Client is the connection that accepted an item; the publisher tells it the
// item's outcome, exactly once, from the ack goroutine or from Run. None of
// its methods may block.
type Client interface {
	// Acked: JetStream stored the command at streamSeq (dup: it already
	// had it, and the reader had verified it was the same command).
	Acked(seq, streamSeq uint64, dup bool)
	// CheckDuplicate: JetStream already had the command id at streamSeq
	// and the reader could not tell a resend from a reused seq; digest is
	// the command's Realm-Cmd-Digest.
	CheckDuplicate(seq, streamSeq uint64, digest string)
	// Failed: the command was not stored, or its outcome is unknown (code
	// says which); key is its CommandKey, for the resend rules.
	Failed(seq, key uint64, code schema.ErrorCode, msg string)
}

// AsyncPublisher is the part of jsasync.Publisher the publisher uses:
// Publish's error means the message was not sent and gets no callback;
// Abandon hands back every published, unanswered item (no callback follows).
type AsyncPublisher interface {
	Publish(msg *nats.Msg, it *Item) error
	Abandon() []*Item
}

// Config is the publisher's part of the gateway's configuration (the same
// flags: --ring-size, --max-pending, --batch-size, --publish-retries,
// --publish-timeout).
type Config struct {
	RingSize       int
	MaxPending     int
	BatchSize      int
	PublishRetries int
	PublishTimeout time.Duration

	// CommandBatch (--command-batch) publishes fresh commands of one zone
	// as one batch message (batch.go); Linger (--command-linger) is how long
	// a batch waits for more after its first command, BatchMax
	// (--command-batch-max) the most commands in one. Instance names the
	// gateway in batch ids.
	CommandBatch bool
	Linger       time.Duration
	BatchMax     int
	Instance     string
}

// Metrics are the publisher's series (registered by the gateway).
type Metrics struct {
	Batch     prometheus.Observer // items per publisher batch
	Retries   prometheus.Counter  // publish retries
	Latency   prometheus.Observer // packet received -> PubAck
	AcksDup   prometheus.Counter
	AcksFresh prometheus.Counter
	Commands  prometheus.Observer // commands per published group (--command-batch); nil: not observed
}

// Enqueue hands it to the publisher; after it returns nil the item is the
// publisher's. mpsc.ErrFull: the ring is full (answer Busy); mpsc.ErrClosed:
// draining.
func (p *Publisher) Enqueue(it *Item) error { return p.ring.TryEnqueue(it) }

// Len is the number of items in the ring.
func (p *Publisher) Len() int { return p.ring.Len() }

// Inflight is the number of published items awaiting their PubAck.
func (p *Publisher) Inflight() int64 { return p.inflight.Load() }

// Lost is the number of items not stored when the drain deadline passed.
func (p *Publisher) Lost() int64 { return p.lost.Load() }

// Close closes the ring: Run publishes what is in it, waits for the acks and
// returns; a later Enqueue fails with mpsc.ErrClosed.
func (p *Publisher) Close() { p.ring.Close() }

// Item is one accepted command on its way to JetStream. The reader that
// accepted it builds Msg completely (payload, subject, headers with the
// Nats-Msg-Id); after Enqueue succeeds the item belongs to the publisher
// and, once published, to the ack callbacks, which return it to the pool
// when its outcome is final (jsasync drops its reference to Msg when the
// publish is acked, failed or timed out).
type Item struct {
	Client   Client
	Seq      uint64
	Msg      nats.Msg
	Buf      []byte // the encoded command (Msg.Data)
	Received time.Time
	Span     trace.Span
	// Verified: the reader checked this command against the one its seq
	// was first used for (a resend); a Duplicate answer needs no second
	// check.
	Verified bool
	// Batchable: the reader found the command fresh (a first use of its seq,
	// above what the session's earlier connections used, not traced), so
	// it may share a batch message (Config.CommandBatch).
	Batchable bool

	hdr      wire.CommandHeaderBuf // header values; the header slices point into it
	bhdr     wire.CommandBatchHeaderBuf
	batch    []*Item // a batch's carrier: the commands it carries
	attempts int
	// ambiguous: some failed attempt may have stored the message (a
	// timeout, a lost connection): giving up answers OUTCOME_UNKNOWN, not
	// "not stored".
	ambiguous bool
	lastErr   error // the failure that sent it to retryq
}

var itemPool = sync.Pool{New: func() any { return &Item{Msg: nats.Msg{Header: make(nats.Header, 8)}} }}

// NewItem takes an item from the pool.
func NewItem() *Item { return itemPool.Get().(*Item) }

// Free returns it to the pool; nothing may use it afterwards.
func (it *Item) Free() {
	it.Client, it.Span, it.attempts, it.ambiguous, it.lastErr, it.Verified, it.Batchable = nil, nil, 0, false, nil, false, false
	clear(it.batch)
	it.batch = it.batch[:0] // a reused carrier keeps its slice; len 0 = not a batch
	it.Msg.Data, it.Msg.Subject, it.Msg.Reply = nil, "", ""
	if cap(it.Buf) > 4096 {
		it.Buf = nil
	}
	itemPool.Put(it)
}

// SetHeaders fills the contract's headers without allocating (the map keeps
// its buckets across reuses; the value slices point into the item).
func (it *Item) SetHeaders(msgID, session, player, zone, digest string) {
	it.hdr.Fill(it.Msg.Header, wire.CommandHeaders{MsgID: msgID, Session: session, Player: player, Zone: zone, Digest: digest})
}

// Dequeued notes the end of the ring wait of a sampled command (its first
// publish attempt) on its span.
func (it *Item) Dequeued() {
	if it.attempts == 0 && it.Span.IsRecording() {
		q := time.Since(it.Received).Seconds()
		it.Span.AddEvent("dequeued")
		it.Span.SetAttributes(attribute.Float64("realm.queue_seconds", q))
	}
}

var keyMarshal = proto.MarshalOptions{Deterministic: true}

// CommandKey hashes what a client chose in a command (its body); never 0.
// A resend must carry the command its seq was first used for: the resend
// rules compare keys.
func CommandKey(cmd *schema.Command) uint64 {
	b, _ := keyMarshal.Marshal(&schema.Command{Body: cmd.Body})
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64() | 1
}

// Key is CommandKey of the item's encoded command (failure paths only).
func (it *Item) Key() uint64 {
	var cmd schema.Command
	if err := proto.Unmarshal(it.Buf, &cmd); err != nil {
		return 1
	}
	return CommandKey(&cmd)
}

// ambiguousPublishErr says whether a failed publish attempt may nevertheless
// have stored the message: a timeout, a lost connection or an unreadable
// answer may; an answer of the stream (an API error) or no stream at all
// (no responders) means it was not stored.
func ambiguousPublishErr(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr), errors.Is(err, jetstream.ErrNoStreamResponse):
		return false
	}
	return true
}

// Package audit checks, after an end-to-end run, that nothing was lost or
// applied twice: the bots' acknowledged commands against the CMD stream, every
// zone's event log against the log invariants (linear, fenced, each command
// applied once), and Postgres (rows and read models) against the event log.
//
// It reads only the public contract (libs/wire, libs/schema) and the
// databases: it trusts no service's own account of what it did.
package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamMsg is one stored message of a stream.
type StreamMsg struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Data    []byte
	Time    time.Time
}

// ReadStream calls fn for every message of stream in sequence order, from the
// first to the last sequence at the time of the call. It uses an ordered
// (ephemeral, flow-controlled) consumer, so it leaves nothing behind.
func ReadStream(ctx context.Context, js jetstream.JetStream, stream string, fn func(StreamMsg) error) (int, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("audit: stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit: stream %s info: %w", stream, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return 0, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return 0, fmt.Errorf("audit: ordered consumer on %s: %w", stream, err)
	}
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		batch, err := cons.FetchNoWait(1000)
		if err != nil {
			return n, fmt.Errorf("audit: fetch %s: %w", stream, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return n, err
			}
			seq := md.Sequence.Stream
			if err := fn(StreamMsg{Seq: seq, Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Time: md.Timestamp}); err != nil {
				return n, err
			}
			n++
			if seq >= last {
				return n, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			return n, fmt.Errorf("audit: fetch %s: %w", stream, err)
		}
		if got == 0 {
			// FetchNoWait returns at once when nothing is buffered yet.
			select {
			case <-ctx.Done():
				return n, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// WaitConsumersIdle waits until every durable consumer of stream whose name
// satisfies match has nothing pending and nothing awaiting ack: the services
// have processed everything that was in the stream. It returns the names of
// the consumers still busy at the deadline.
func WaitConsumersIdle(ctx context.Context, js jetstream.JetStream, stream string, match func(string) bool, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return nil, err
		}
		var busy []string
		names := s.ConsumerNames(ctx)
		for name := range names.Name() {
			if !match(name) {
				continue
			}
			c, err := s.Consumer(ctx, name)
			if err != nil {
				busy = append(busy, name+": "+err.Error())
				continue
			}
			ci, err := c.Info(ctx)
			if err != nil {
				busy = append(busy, name+": "+err.Error())
				continue
			}
			if ci.NumPending > 0 || ci.NumAckPending > 0 {
				busy = append(busy, fmt.Sprintf("%s: pending %d, ack pending %d", name, ci.NumPending, ci.NumAckPending))
			}
		}
		if names.Err() != nil {
			busy = append(busy, "list consumers: "+names.Err().Error())
		}
		if len(busy) == 0 {
			return nil, nil
		}
		if time.Now().After(deadline) {
			return busy, nil
		}
		select {
		case <-ctx.Done():
			return busy, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func headerUint(h nats.Header, key string) (uint64, bool) {
	v := h.Get(key)
	if v == "" {
		return 0, false
	}
	u, err := strconv.ParseUint(v, 10, 64)
	return u, err == nil
}

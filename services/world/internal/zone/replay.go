package zone

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/wire"
)

// scanLog calls fn with every message of evt.<zone> from stream sequence
// start on, in order, up to the last message stored when it began. Unlike
// zonelog.Scan it hands over raw messages, so that one undecodable message
// does not stop recovery (the caller quarantines it).
func scanLog(ctx context.Context, js jetstream.JetStream, zone string, start uint64, fn func(seq uint64, h nats.Header, data []byte)) error {
	subj := wire.EventSubject(zone)
	st, err := js.Stream(ctx, wire.StreamEvents)
	if err != nil {
		return fmt.Errorf("stream %s: %w", wire.StreamEvents, err)
	}
	last, err := st.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("last message of %s: %w", subj, err)
	}
	if start == 0 {
		start = 1
	}
	if last.Sequence < start {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
	})
	if err != nil {
		return fmt.Errorf("consumer on %s: %w", subj, err)
	}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("fetch %s: %w", subj, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
			fn(md.Sequence.Stream, m.Headers(), m.Data())
			if md.Sequence.Stream >= last.Sequence {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("fetch %s: %w", subj, err)
		}
		if n == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("%s: no messages before seq %d arrived", subj, last.Sequence)
		}
	}
}

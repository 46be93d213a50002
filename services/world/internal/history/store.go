package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/zonelog"
)

// StoreSource reads a zone's events from persist's store (Postgres or
// Pebble) through its query API (wire.QueryZoneRange), page by page: the part
// of the log that JetStream no longer holds.
type StoreSource struct {
	NC      *nats.Conn
	Timeout time.Duration // per page; default 10s
}

// Events calls fn for every stored event of zone with sequence in [from, to]
// in (seq, index) order. The entries carry no headers (the store keeps the
// events, not the message envelope).
func (s StoreSource) Events(ctx context.Context, zone string, from, to uint64, fn func(zonelog.Entry) error) error {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	req := wire.ZoneRangeRequest{Zone: zone, FromSeq: from, ToSeq: to, Limit: 1000}
	for {
		b, _ := json.Marshal(req)
		rctx, cancel := context.WithTimeout(ctx, timeout)
		m, err := s.NC.RequestWithContext(rctx, wire.QueryZoneRange, b)
		cancel()
		if err != nil {
			return fmt.Errorf("history: persist %s: %w (is persist running?)", wire.QueryZoneRange, err)
		}
		var rep wire.ZoneRangeReply
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			return fmt.Errorf("history: persist answer: %w", err)
		}
		if rep.Error != "" {
			return errors.New("history: persist: " + rep.Error)
		}
		for _, r := range rep.Events {
			ev := &schema.Event{}
			if err := proto.Unmarshal(r.Payload, ev); err != nil {
				return fmt.Errorf("history: stored event %d/%d of %s: %w", r.Seq, r.Index, zone, err)
			}
			if err := fn(zonelog.Entry{Seq: r.Seq, Index: int(r.Index), Event: ev}); err != nil {
				return err
			}
		}
		if !rep.More || len(rep.Events) == 0 {
			return nil
		}
		last := rep.Events[len(rep.Events)-1]
		req.AfterSeq, req.AfterIndex, req.HasAfter = last.Seq, last.Index, true
	}
}

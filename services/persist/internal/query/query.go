// Package query serves persist's read API over NATS request/reply, JSON in
// and out (see docs/persist.md for the exact shapes):
//
//	persist.query.zone_events  {"zone","from_ns","to_ns","after_seq","limit"} -> {"events":[...]}
//	persist.query.player       {"player_id"}                                  -> {"found","player"}
//	persist.query.zone         {"zone"}                                       -> {"found","zone"}
//	persist.query.zone_range   {"zone","from_seq","to_seq","after_seq","after_index","has_after","limit"} -> {"events":[...],"more"}
//	persist.query.ack_floor    {}                                             -> {"ack_floor","stream_last_seq","num_pending","num_ack_pending"}
//
// Every reply may carry "error" (bad request or store failure). Replicas
// subscribe in one queue group, so each request is answered once.
package query

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/store"
)

// QueueGroup is the queue group of the query subscriptions.
const QueueGroup = "persist"

// Reader is the read side of a store.
type Reader interface {
	ZoneEvents(ctx context.Context, q store.ZoneEventsQuery) ([]store.EventRow, error)
	Player(ctx context.Context, id string) (store.Player, bool, error)
	Zone(ctx context.Context, zone string) (store.ZoneSummary, bool, error)
	EventsBySeq(ctx context.Context, q store.SeqRangeQuery) ([]store.EventRow, error)
}

// FloorFunc reports persist's acknowledged floor (nil: not served).
type FloorFunc func(ctx context.Context) (AckFloorReply, error)

// ZoneRangeReply answers persist.query.zone_range (the world decodes the same type).
type ZoneRangeReply = wire.ZoneRangeReply

// AckFloorReply answers persist.query.ack_floor (the world's trim decodes the same type).
type AckFloorReply = wire.AckFloorReply

// PlayerRequest asks for one player.
type PlayerRequest struct {
	PlayerID string `json:"player_id"`
}

// ZoneRequest asks for one zone summary.
type ZoneRequest struct {
	Zone string `json:"zone"`
}

// ZoneEventsReply answers persist.query.zone_events.
type ZoneEventsReply struct {
	Events []store.EventRow `json:"events"`
	Error  string           `json:"error,omitempty"`
}

// PlayerReply answers persist.query.player.
type PlayerReply struct {
	Found  bool          `json:"found"`
	Player *store.Player `json:"player,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// ZoneReply answers persist.query.zone.
type ZoneReply struct {
	Found bool               `json:"found"`
	Zone  *store.ZoneSummary `json:"zone,omitempty"`
	Error string             `json:"error,omitempty"`
}

// MaxRequest bounds a request body.
const MaxRequest = 4096

// Handle answers one request; it never panics on any input (fuzzed).
func Handle(ctx context.Context, r Reader, floor FloorFunc, subject string, data []byte) []byte {
	out, _ := json.Marshal(handle(ctx, r, floor, subject, data))
	return out
}

func handle(ctx context.Context, r Reader, floor FloorFunc, subject string, data []byte) any {
	if len(data) > MaxRequest {
		return map[string]string{"error": fmt.Sprintf("request larger than %d bytes", MaxRequest)}
	}
	switch subject {
	case wire.QueryZoneEvents:
		var q store.ZoneEventsQuery
		if err := json.Unmarshal(data, &q); err != nil {
			return ZoneEventsReply{Error: "bad request: " + err.Error()}
		}
		evs, err := r.ZoneEvents(ctx, q)
		if err != nil {
			return ZoneEventsReply{Error: err.Error()}
		}
		if evs == nil {
			evs = []store.EventRow{}
		}
		return ZoneEventsReply{Events: evs}
	case wire.QueryPlayer:
		var q PlayerRequest
		if err := json.Unmarshal(data, &q); err != nil {
			return PlayerReply{Error: "bad request: " + err.Error()}
		}
		if q.PlayerID == "" || len(q.PlayerID) > 256 {
			return PlayerReply{Error: "player_id: required, at most 256 bytes"}
		}
		p, ok, err := r.Player(ctx, q.PlayerID)
		if err != nil {
			return PlayerReply{Error: err.Error()}
		}
		if !ok {
			return PlayerReply{}
		}
		return PlayerReply{Found: true, Player: &p}
	case wire.QueryZone:
		var q ZoneRequest
		if err := json.Unmarshal(data, &q); err != nil {
			return ZoneReply{Error: "bad request: " + err.Error()}
		}
		if !wire.ValidToken(q.Zone) {
			return ZoneReply{Error: "zone: want a zone id like z0_0"}
		}
		z, ok, err := r.Zone(ctx, q.Zone)
		if err != nil {
			return ZoneReply{Error: err.Error()}
		}
		if !ok {
			return ZoneReply{}
		}
		return ZoneReply{Found: true, Zone: &z}
	case wire.QueryZoneRange:
		var q store.SeqRangeQuery
		if err := json.Unmarshal(data, &q); err != nil {
			return ZoneRangeReply{Error: "bad request: " + err.Error()}
		}
		q, err := q.Normalize()
		if err != nil {
			return ZoneRangeReply{Error: err.Error()}
		}
		evs, err := r.EventsBySeq(ctx, q)
		if err != nil {
			return ZoneRangeReply{Error: err.Error()}
		}
		if evs == nil {
			evs = []store.EventRow{}
		}
		return ZoneRangeReply{Events: evs, More: len(evs) == q.Limit}
	case wire.QueryAckFloor:
		if floor == nil {
			return AckFloorReply{Error: "ack floor not served"}
		}
		f, err := floor(ctx)
		if err != nil {
			return AckFloorReply{Error: err.Error()}
		}
		return f
	}
	return map[string]string{"error": "unknown query subject " + subject}
}

// Serve subscribes the query subjects. Unsubscribe (or drain the
// connection) to stop.
func Serve(nc *nats.Conn, r Reader, floor FloorFunc, timeout time.Duration, log *slog.Logger) ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	for _, subj := range []string{wire.QueryZoneEvents, wire.QueryPlayer, wire.QueryZone, wire.QueryZoneRange, wire.QueryAckFloor} {
		sub, err := nc.QueueSubscribe(subj, QueueGroup, func(m *nats.Msg) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if err := m.Respond(Handle(ctx, r, floor, m.Subject, m.Data)); err != nil {
				log.Debug("query reply failed", "subject", m.Subject, "err", err)
			}
		})
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			return nil, err
		}
		subs = append(subs, sub)
	}
	return subs, nil
}

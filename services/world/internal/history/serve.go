package history

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/realmstream/realmstream/libs/wire"
)

// Request is the JSON body of a wire.QueryZoneState request.
type Request struct {
	Zone  string `json:"zone"`
	AtSeq uint64 `json:"at_seq,omitempty"`
	AtNs  int64  `json:"at_ns,omitempty"` // unix nanoseconds; 0 = not by time
}

// Player is one player of a zone state as the query API answers it.
type Player struct {
	PlayerID string  `json:"player_id"`
	Name     string  `json:"name"`
	X        float32 `json:"x"`
	Y        float32 `json:"y"`
	HP       int32   `json:"hp"`
	MaxHP    int32   `json:"max_hp"`
	Dead     bool    `json:"dead,omitempty"`
	Kills    int64   `json:"kills"`
	Deaths   int64   `json:"deaths"`
}

// Reply is the JSON answer of a wire.QueryZoneState request.
type Reply struct {
	Zone        string   `json:"zone"`
	AtSeq       uint64   `json:"at_seq"`
	SnapshotSeq uint64   `json:"snapshot_seq"`
	Replayed    int      `json:"replayed"`
	LogEnd      uint64   `json:"log_end"`
	Fence       uint64   `json:"fence"`
	Tick        uint64   `json:"tick"`
	Events      uint64   `json:"events"`
	LastEventNs int64    `json:"last_event_ns"`
	TookMs      float64  `json:"took_ms"`
	Players     []Player `json:"players"`
	// ZoneSize and Obstacles describe the zone's ground (zone coordinates
	// 0..ZoneSize; obstacles as [x0, y0, x1, y1]) so a viewer can draw it.
	ZoneSize  float32      `json:"zone_size,omitempty"`
	Obstacles [][4]float32 `json:"obstacles,omitempty"`
	Error     string       `json:"error,omitempty"`
}

// ReplyOf turns a Result into the query API's answer (players sorted by id).
func ReplyOf(res *Result) Reply {
	st := res.State
	out := Reply{Zone: res.Zone, AtSeq: res.AtSeq, SnapshotSeq: res.SnapshotSeq, Replayed: res.Replayed, LogEnd: res.LogEnd,
		Fence: st.Fence, Tick: st.Tick, Events: st.Events, LastEventNs: st.LastEventNs,
		TookMs: float64(res.Took.Microseconds()) / 1000, Players: make([]Player, 0, len(st.Players))}
	for _, p := range st.Players {
		out.Players = append(out.Players, Player{PlayerID: p.PlayerId, Name: p.Name, X: p.X, Y: p.Y, HP: p.Hp, MaxHP: p.MaxHp,
			Dead: p.Dead, Kills: p.Kills, Deaths: p.Deaths})
	}
	sort.Slice(out.Players, func(i, j int) bool { return out.Players[i].PlayerID < out.Players[j].PlayerID })
	return out
}

// Serve answers wire.QueryZoneState requests (queue group "world") until ctx
// ends. Each request is bounded by timeout.
func Serve(ctx context.Context, nc *nats.Conn, r *Reader, timeout time.Duration) (*nats.Subscription, error) {
	return nc.QueueSubscribe(wire.QueryZoneState, "world", func(m *nats.Msg) {
		var req Request
		var rep Reply
		if err := json.Unmarshal(m.Data, &req); err != nil {
			rep.Error = "bad request: " + err.Error() + ` (want {"zone":"z1_1","at_seq":N} or {"zone":"z1_1","at_ns":T})`
		} else {
			q := Query{Zone: req.Zone, AtSeq: req.AtSeq}
			if req.AtNs != 0 {
				q.AtTime = time.Unix(0, req.AtNs)
			}
			qctx, cancel := context.WithTimeout(ctx, timeout)
			res, err := r.StateAt(qctx, q)
			cancel()
			if err != nil {
				rep.Zone, rep.Error = req.Zone, err.Error()
			} else {
				rep = ReplyOf(res)
				if r.Rules != nil {
					rep.ZoneSize = r.Rules.Map.ZoneSize
					for _, o := range r.Rules.Obstacles {
						rep.Obstacles = append(rep.Obstacles, [4]float32{o.X0, o.Y0, o.X1, o.Y1})
					}
				}
			}
		}
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
	})
}

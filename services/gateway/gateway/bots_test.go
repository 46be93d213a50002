package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/bots"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// TestBotSwarm runs the bot swarm (libs/bots) against a gateway over TCP and
// WebSocket, with a stand-in world that echoes every move as a ZoneUpdate, and
// checks the swarm's counts and both latency measurements.
func TestBotSwarm(t *testing.T) {
	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr, func(t *testing.T) {
			h := start(t, nil)
			echo, err := h.nc.Subscribe("cmd.>", func(m *nats.Msg) {
				var c schema.Command
				if proto.Unmarshal(m.Data, &c) != nil || c.GetMove() == nil {
					return
				}
				mv := c.GetMove()
				cell := h.gw.cfg.Map.CellOf(mv.X, mv.Y)
				b, _ := proto.Marshal(&schema.ZoneUpdate{Zone: c.Zone, Cell: cell, Entities: []*schema.EntityView{
					{Id: c.PlayerId, X: mv.X, Y: mv.Y, LastInputSeq: c.ClientSeq}}})
				_ = h.nc.Publish(wire.UpdateSubject(c.Zone, cell), b)
			})
			if err != nil {
				t.Fatal(err)
			}
			defer echo.Unsubscribe()
			var lines []string
			gw := bots.Gateway{TCP: h.addr(tr)}
			if tr == "ws" {
				gw = bots.Gateway{WS: h.addr(tr)}
			}
			sw, err := bots.New(bots.Config{
				Gateways: []bots.Gateway{gw}, Bots: 12, MoveRate: 20, Duration: 2500 * time.Millisecond,
				ChatEvery: 350 * time.Millisecond, AttackEvery: 550 * time.Millisecond, PingEvery: 500 * time.Millisecond,
				ProgressEvery: 500 * time.Millisecond, Progress: func(p bots.Progress) { lines = append(lines, p.String()) },
			})
			if err != nil {
				t.Fatal(err)
			}
			sum := sw.Run(context.Background())
			t.Logf("%+v", sum)
			if len(lines) == 0 {
				t.Fatal("no progress line")
			}
			t.Log(lines[len(lines)-1])
			// 12 bots x 20/s x 2.5s = 600 inputs on an idle machine; the
			// bounds leave room for a loaded one.
			if sum.Connected != 12 || sum.Sent < 100 || sum.Errors != 0 || sum.Busy != 0 {
				t.Fatalf("summary %+v", sum)
			}
			if sum.Acked < sum.Sent*90/100 {
				t.Fatalf("acked %d of %d", sum.Acked, sum.Sent)
			}
			if sum.SendToAck.Samples == 0 || sum.SendToAck.P99 <= 0 || sum.InputToUpdate.Samples == 0 || sum.PingRTT.Samples == 0 {
				t.Fatalf("latencies %+v %+v %+v", sum.SendToAck, sum.InputToUpdate, sum.PingRTT)
			}
		})
	}
}

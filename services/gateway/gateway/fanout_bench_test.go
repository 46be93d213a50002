package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/worldmap"
	"github.com/realmstream/realmstream/services/gateway/internal/transport"
)

// BenchmarkFanout: one zone tick's updates fanned out to the zone's clients
// over real loopback TCP sockets (each client's reader discards what it
// gets), for a zone holding the players of 500 and of 2,000 bots spread
// over 9 zones, placed as the bot swarm places them (2 in 5 walk to the
// middle). Each tick is fanned out, then written, before the next one
// starts (as at 20 Hz, where a tick's writes are done long before the next
// tick), so nothing is coalesced across ticks.
//
//   - percell: the path before issue 15's fan-out work, kept here as the
//     baseline: every cell's update unmarshalled, re-marshalled as an Update
//     packet and queued to each client whose AOI holds it (one sendq entry
//     per cell per client; the writer writes what it finds queued).
//   - merged: this package's path with a world publishing per cell
//     (upd.<zone>.<cell>): scanned, merged per client into one Updates frame
//     (protocol 3) and one write.
//   - merged-v2: the same with protocol 2 clients: one Update frame per cell,
//     one write per client per tick.
//
// Metrics: cpu-µs/tick is the process's CPU time (user+system: fan-out,
// writers, kernel, and the readers, which are clients) per tick;
// frames/tick and writes/tick are what the clients receive and the
// gateway's socket writes. Compare percell and merged in one run:
//
//	go test ./gateway -run XXX -bench Fanout -benchtime 400x
func BenchmarkFanout(b *testing.B) {
	for _, players := range []int{500 / 9, 2000 / 9} {
		for _, path := range []string{"percell", "merged", "merged-v2"} {
			b.Run(fmt.Sprintf("players=%d/%s", players, path), func(b *testing.B) {
				benchFanout(b, players, path)
			})
		}
	}
}

func benchFanout(b *testing.B, players int, path string) {
	cfg := DefaultConfig()
	cfg.Dev = true
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	const zone = "z1_1"
	m := cfg.Map
	base := perCellBaseline{m: m, updates: s.m.updates, players: map[string]*conn{}, byCell: map[uint32]map[*conn]struct{}{}}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var readers sync.WaitGroup
	var conns []*conn
	rng := rand.New(rand.NewPCG(1, 2))
	size := m.ZoneSize
	var views []*schema.EntityView
	for i := range players {
		cli, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		srv, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		readers.Add(1)
		go func() { defer readers.Done(); _, _ = io.Copy(io.Discard, cli) }()
		c := newConn(s, transport.NewTCP(srv, 0, 5*time.Second))
		c.player = fmt.Sprintf("p-bot-%04d", i)
		c.down.SetProtocol(3)
		if path == "merged-v2" {
			c.down.SetProtocol(2)
		}
		go c.q.Run()
		conns = append(conns, c)
		// Placement as libs/bots' waypoints: 2 in 5 in the middle 24%.
		x, y := size*0.05+rng.Float32()*size*0.9, size*0.05+rng.Float32()*size*0.9
		if rng.IntN(5) < 2 {
			x, y = size/2-size*0.12+rng.Float32()*size*0.24, size/2-size*0.12+rng.Float32()*size*0.24
		}
		views = append(views, &schema.EntityView{Id: c.player, Name: fmt.Sprintf("bot-%04d", i), X: x, Y: y, Hp: 100, LastInputSeq: uint64(1000 + i)})
		cell := m.CellOf(x, y)
		// Joined without subscriptions (s has no NATS connection: the
		// subscribe fails and is logged to io.Discard); ticks come from Deliver.
		s.down.Join(&c.down, c.player, zone, int64(cell))
		base.players[c.player] = c
		for _, k := range m.NearCells(nil, cell) {
			if base.byCell[k] == nil {
				base.byCell[k] = map[*conn]struct{}{}
			}
			base.byCell[k][c] = struct{}{}
		}
	}
	defer func() {
		for _, c := range conns {
			c.q.Kill()
		}
		readers.Wait()
	}()
	ticks := worldTicks(m, zone, views, 8)

	drained := func() bool {
		for _, c := range conns {
			if bytes, packets := c.q.Pending(); bytes != 0 || packets != 0 {
				return false
			}
		}
		return true
	}
	frames0, writes0 := testutil.ToFloat64(s.m.updateFrames), testutil.ToFloat64(s.m.writes)
	cells0 := testutil.ToFloat64(s.m.updates)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		tick := ticks[i%len(ticks)]
		if path == "percell" {
			for _, cell := range tick {
				base.onUpdate(cell)
			}
		} else {
			s.down.Deliver(zone, tick)
		}
		for d := 20 * time.Microsecond; !drained(); d = min(2*d, time.Millisecond) {
			time.Sleep(d) // few wake-ups: their CPU is in both paths' figures
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/n, "cpu-µs/tick")
	writes := testutil.ToFloat64(s.m.writes) - writes0
	b.ReportMetric(writes/n, "writes/tick")
	if path == "percell" {
		b.ReportMetric(base.frames/n, "frames/tick")
		b.ReportMetric(base.frames/n, "cells/tick")
	} else {
		b.ReportMetric((testutil.ToFloat64(s.m.updateFrames)-frames0)/n, "frames/tick")
		b.ReportMetric((testutil.ToFloat64(s.m.updates)-cells0)/n, "cells/tick")
	}
}

// worldTicks encodes n ticks of the zone as the world's view does: one
// ZoneUpdate per occupied cell, in cell order, the players moving a little
// from tick to tick (positions stay in their cells, so the AOI is fixed).
func worldTicks(m worldmap.Map, zone string, views []*schema.EntityView, n int) [][][]byte {
	out := make([][][]byte, n)
	for t := range n {
		byCell := map[uint32][]*schema.EntityView{}
		for _, v := range views {
			v.LastInputSeq++
			byCell[m.CellOf(v.X, v.Y)] = append(byCell[m.CellOf(v.X, v.Y)], v)
		}
		for c := range uint32(m.CellCount()) {
			if es := byCell[c]; es != nil {
				b, _ := proto.Marshal(&schema.ZoneUpdate{Zone: zone, Cell: c, Tick: uint64(t + 1), ServerTimeNs: time.Now().UnixNano(), Entities: es})
				out[t] = append(out[t], b)
			}
		}
	}
	return out
}

// perCellBaseline is the downstream's update path as it was before the
// merged fan-out (commit 9193676's onUpdate), the baseline of
// BenchmarkFanout: decode each cell's update, learn positions, look up the
// clients whose AOI holds the cell, marshal one Update packet and queue it
// to each of them.
type perCellBaseline struct {
	m       worldmap.Map
	updates prometheus.Counter
	mu      sync.Mutex // as the fan-out's lock of its zones
	players map[string]*conn
	byCell  map[uint32]map[*conn]struct{}
	frames  float64
}

func (p *perCellBaseline) onUpdate(data []byte) {
	var u schema.ZoneUpdate
	if err := proto.Unmarshal(data, &u); err != nil {
		return
	}
	var targets []*conn
	p.mu.Lock()
	for _, e := range u.Entities {
		if c := p.players[e.Id]; c != nil && p.m.InBounds(e.X, e.Y) {
			// (indexLocked: the cell did not change, an early return)
			_ = int64(p.m.CellOf(e.X, e.Y)) == c.down.Cell()
		}
	}
	for c := range p.byCell[u.Cell] {
		targets = append(targets, c)
	}
	p.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	b, err := proto.Marshal(&schema.ServerPacket{Body: &schema.ServerPacket_Update{Update: &schema.Update{ZoneUpdate: &u}}})
	if err != nil {
		return
	}
	for _, c := range targets {
		c.sendBytes(b)
	}
	p.updates.Add(float64(len(targets)))
	p.frames += float64(len(targets))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

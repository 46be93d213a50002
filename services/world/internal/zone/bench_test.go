package zone

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/worldmap"
	"github.com/realmstream/realmstream/libs/zonelog"
	"github.com/realmstream/realmstream/services/world/internal/rules"
)

// BenchmarkTick measures one tick of a zone with n entities that all moved:
// applying n PlayerMoved events, building the per-cell AOI updates, encoding
// and publishing them on core NATS. It reports the bytes a client receives
// per tick with AOI (its 3x3 cells) against a zone-wide broadcast of every
// entity, the baseline AOI replaces.
func BenchmarkTick(b *testing.B) {
	srv := natstest.Start(b)
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	m := worldmap.Default()
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("entities=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, uint64(n)))
			s := rules.NewState("z1_1")
			ids := make([]string, n)
			for i := range ids {
				ids[i] = "p" + strconv.Itoa(i)
				s.Players[ids[i]] = &schema.PlayerState{PlayerId: ids[i], Name: ids[i], X: rng.Float32() * 999, Y: rng.Float32() * 999, Hp: 100}
			}
			v := newView(m)
			evs := make([]*schema.Event, n)
			var aoiBytes, allBytes float64
			b.ResetTimer()
			cpu0 := cpuTime()
			for it := 0; it < b.N; it++ {
				for i, id := range ids {
					p := s.Players[id]
					x := min(max(p.X+rng.Float32()*10-5, 0), 999)
					y := min(max(p.Y+rng.Float32()*10-5, 0), 999)
					evs[i] = &schema.Event{PlayerId: id, CommandId: id + ":" + strconv.Itoa(it+1), TimestampNs: int64(it) * int64(50*time.Millisecond),
						Body: &schema.Event_PlayerMoved{PlayerMoved: &schema.PlayerMoved{X: x, Y: y, InputSeq: uint64(it + 1)}}}
					rules.Apply(s, evs[i], uint64(it*n+i+1), 4096)
				}
				size := map[uint32]int{}
				for _, u := range v.build("z1_1", s, uint64(it), 0) {
					data, _ := proto.Marshal(u)
					size[u.Cell] = len(data)
					_ = nc.Publish(wire.UpdateSubject("z1_1", u.Cell), data)
				}
				if it == 0 {
					// Bytes per client: the 3x3 cells around each player, on average.
					tot := 0
					for _, id := range ids {
						p := s.Players[id]
						for _, c := range m.NearCells(nil, m.CellOf(p.X, p.Y)) {
							tot += size[c]
						}
					}
					aoiBytes = float64(tot) / float64(n)
					for _, sz := range size {
						allBytes += float64(sz)
					}
				}
			}
			b.StopTimer()
			_ = nc.Flush()
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/tick")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/tick")
			b.ReportMetric(aoiBytes, "aoi-B/client/tick")
			b.ReportMetric(allBytes, "broadcast-B/client/tick")
			b.ReportMetric(allBytes/aoiBytes, "broadcast/aoi")
		})
	}
}

// BenchmarkReplay measures how fast a new owner rebuilds a zone: reading
// evt.<zone> from JetStream (ordered consumer) and folding every event.
func BenchmarkReplay(b *testing.B) {
	srv := natstest.Start(b)
	nc, js := natstest.Connect(b, srv.URL)
	_ = nc
	ctx := context.Background()
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	const events = 50000
	const players = 200
	for i := 0; i < events; i++ {
		pid := "p" + strconv.Itoa(i%players)
		var ev *schema.Event
		if i < players {
			ev = &schema.Event{EventId: "e" + strconv.Itoa(i), PlayerId: pid, CommandId: "s" + pid + ":1",
				Body: &schema.Event_PlayerJoined{PlayerJoined: &schema.PlayerJoined{Player: &schema.PlayerState{PlayerId: pid, Name: pid, X: 500, Y: 500, Hp: 100}}}}
		} else {
			ev = &schema.Event{EventId: "e" + strconv.Itoa(i), PlayerId: pid, CommandId: "s" + pid + ":" + strconv.Itoa(i/players+1), TimestampNs: int64(i),
				Body: &schema.Event_PlayerMoved{PlayerMoved: &schema.PlayerMoved{X: float32(i % 1000), Y: 500, InputSeq: uint64(i/players + 1)}}}
		}
		data, _ := proto.Marshal(ev)
		if _, err := js.PublishAsync(wire.EventSubject("z1_1"), data); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			<-js.PublishAsyncComplete()
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publish did not complete")
	}
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		s := rules.NewState("z1_1")
		n := 0
		if err := zonelog.Scan(ctx, js, "z1_1", 1, func(e zonelog.Entry) error {
			rules.Apply(s, e.Event, e.Seq, 4096)
			n++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if n != events || len(s.Players) != players {
			b.Fatalf("replayed %d events, %d players", n, len(s.Players))
		}
	}
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
}

// cpuTime is the CPU time (user + system) of this process so far: on a
// shared, loaded machine it is steadier than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

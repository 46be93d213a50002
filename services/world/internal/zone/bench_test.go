package zone

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
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

// BenchmarkAOI9Zones is the AOI part of one tick of the whole world at game
// scale: 2,000 entities spread over the 9 zones of the default map, every
// one moving each tick (the 10 Hz bot load at a 20 Hz tick moves half of them;
// this is the worst case). One iteration = one tick of all 9 zones: apply the
// moves, build each zone's per-cell updates, encode and publish them. The
// budget is the 50 ms tick; the zones run on their own goroutines, so the
// per-zone figure is what one tick of one zone costs.
func BenchmarkAOI9Zones(b *testing.B) {
	srv := natstest.Start(b)
	nc, err := nats.Connect(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	m := worldmap.Default()
	zones := m.Zones()
	const n = 2000
	rng := rand.New(rand.NewPCG(2, n))
	states := make([]*schema.ZoneSnapshot, len(zones))
	views := make([]*view, len(zones))
	ids := make([][]string, len(zones))
	for i, z := range zones {
		states[i], views[i] = rules.NewState(z), newView(m)
	}
	for k := 0; k < n; k++ {
		i := k % len(zones)
		id := "p" + strconv.Itoa(k)
		ids[i] = append(ids[i], id)
		states[i].Players[id] = &schema.PlayerState{PlayerId: id, Name: id, X: rng.Float32() * 999, Y: rng.Float32() * 999, Hp: 100}
	}
	rc := rules.Default()
	frames := 0
	b.ResetTimer()
	cpu0 := cpuTime()
	for it := 0; it < b.N; it++ {
		for i, z := range zones {
			s := states[i]
			for _, id := range ids[i] {
				p := s.Players[id]
				ev := &schema.Event{PlayerId: id, CommandId: id + ":" + strconv.Itoa(it+1), TimestampNs: int64(it) * int64(50*time.Millisecond),
					Body: &schema.Event_PlayerMoved{PlayerMoved: &schema.PlayerMoved{X: min(max(p.X+rng.Float32()*10-5, 0), 999), Y: min(max(p.Y+rng.Float32()*10-5, 0), 999), InputSeq: uint64(it + 1)}}}
				rc.Apply(s, ev, uint64(it+1))
			}
			for _, u := range views[i].build(z, s, uint64(it), 0) {
				data, _ := proto.Marshal(u)
				_ = nc.Publish(wire.UpdateSubject(z, u.Cell), data)
				frames++
			}
		}
	}
	b.StopTimer()
	_ = nc.Flush()
	us := float64(b.Elapsed().Microseconds()) / float64(b.N)
	b.ReportMetric(us, "µs/world-tick")
	b.ReportMetric(us/float64(len(zones)), "µs/zone-tick")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/world-tick")
	b.ReportMetric(float64(frames)/float64(b.N), "frames/world-tick")
}

// BenchmarkCommit compares the two ways to commit a zone tick with one
// fenced write, with the events a tick really holds (PlayerMoved decided by
// the rules, ids from the command ids) and 9 zone writers at once, as the
// world runs them:
//   - record: one schema.TickRecord message per tick (appender.commit, the
//     way the zone commits);
//   - atomic: a JetStream atomic batch (allow_atomic on the stream,
//     jetstreamext.PublishMsgBatch), one message per event, the expected
//     last subject sequence on the first;
//   - event: the old baseline, one synchronous fenced publish per event.
//
// R1 file storage on one embedded server; set REALM_BENCH_R3=1 to run the
// same on a 3-node embedded cluster with R3 streams.
func BenchmarkCommit(b *testing.B) {
	type target struct {
		name string
		js   func(b *testing.B) jetstream.JetStream
	}
	targets := []target{{"R1", func(b *testing.B) jetstream.JetStream {
		srv := natstest.Start(b)
		_, js := natstest.Connect(b, srv.URL)
		return js
	}}}
	if os.Getenv("REALM_BENCH_R3") != "" {
		targets = append(targets, target{"R3", func(b *testing.B) jetstream.JetStream {
			c := natstest.StartCluster(b, 3)
			_, js := natstest.Connect(b, c.URL)
			return js
		}})
	}
	for _, tg := range targets {
		for _, size := range []int{25, 100} {
			for _, mode := range []string{"record", "atomic", "event"} {
				b.Run(fmt.Sprintf("%s/events=%d/%s", tg.name, size, mode), func(b *testing.B) {
					js := tg.js(b)
					replicas := 1
					if tg.name == "R3" {
						replicas = 3
					}
					ctx := context.Background()
					if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{Replicas: replicas}); err != nil {
						b.Fatal(err)
					}
					st, err := js.Stream(ctx, wire.StreamEvents)
					if err != nil {
						b.Fatal(err)
					}
					cfg := st.CachedInfo().Config
					cfg.AllowAtomicPublish = true
					if _, err := js.UpdateStream(ctx, cfg); err != nil {
						b.Fatal(err)
					}
					benchCommit(b, js, mode, size)
				})
			}
		}
	}
}

// tickEvents decides size moves of distinct players, as one tick would.
func tickEvents(rc *rules.Config, s *schema.ZoneSnapshot, tick, size int, now int64) []*schema.Event {
	evs := make([]*schema.Event, 0, size)
	for i := 0; i < size; i++ {
		id := "p" + strconv.Itoa(i)
		p := s.Players[id]
		cmd := &schema.Command{CommandId: wire.CommandID("s"+id, uint64(tick)), SessionId: "s" + id, ClientSeq: uint64(tick), PlayerId: id,
			ReceivedAtNs: now, Body: &schema.Command_Move{Move: &schema.Move{X: p.X + 2, Y: p.Y}}}
		ev := rc.Decide(s, cmd, now)
		ev.Tick = uint64(tick)
		rc.Apply(s, ev, 0)
		evs = append(evs, ev)
	}
	return evs
}

func benchCommit(b *testing.B, js jetstream.JetStream, mode string, size int) {
	const writers = 9
	dflt := rules.Default()
	rc := &dflt
	zones := worldmap.Default().Zones()
	per := (b.N + writers - 1) / writers
	var wg sync.WaitGroup
	var bytes atomic.Int64
	errs := make(chan error, writers)
	b.ResetTimer()
	cpu0 := cpuTime()
	for w := 0; w < writers; w++ {
		z := zones[w]
		s := rules.NewState(z)
		for i := 0; i < size; i++ {
			id := "p" + strconv.Itoa(i)
			s.Players[id] = &schema.PlayerState{PlayerId: id, Name: id, SessionId: "s" + id, X: 100, Y: float32(20 + i*9%900), Hp: 100, MaxHp: 100}
		}
		a := testAppender(b, js, z, 1)
		a.timeout = 5 * time.Second
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for tick := 1; tick <= per; tick++ {
				now := time.Now().UnixNano()
				if tick%40 == 0 { // walk back before the zone edge
					for _, p := range s.Players {
						p.X, p.LastMoveNs = 100, 0
					}
				}
				evs := tickEvents(rc, s, tick, size, now)
				var err error
				switch mode {
				case "record":
					_, err = a.commit(ctx, uint64(tick), evs)
				case "atomic":
					err = atomicCommit(ctx, a, uint64(tick), evs, &bytes)
				case "event":
					for _, ev := range evs {
						if err = eventCommit(ctx, a, ev); err != nil {
							break
						}
					}
				}
				if err != nil {
					errs <- fmt.Errorf("%s tick %d: %w", z, tick, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	commits := float64(per * writers)
	sec := b.Elapsed().Seconds()
	b.ReportMetric(commits/sec, "commits/s")
	b.ReportMetric(commits*float64(size)/sec, "events/s")
	b.ReportMetric(sec*1000/float64(per), "ms/commit")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/(commits*float64(size)), "cpu-µs/event")
	b.ReportMetric(0, "ns/op")
}

// atomicCommit stores evs as one JetStream atomic batch: a message per
// event, the first with the expected last subject sequence.
func atomicCommit(ctx context.Context, a *appender, tick uint64, evs []*schema.Event, bytes *atomic.Int64) error {
	msgs := make([]*nats.Msg, len(evs))
	for i, ev := range evs {
		ev.Zone, ev.Fence = a.zone, a.fence
		data, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
		if err != nil {
			return err
		}
		bytes.Add(int64(len(data)))
		m := nats.NewMsg(a.subject)
		m.Data = data
		m.Header.Set(wire.HeaderMsgID, ev.EventId)
		m.Header.Set(wire.HeaderFence, strconv.FormatUint(a.fence, 10))
		m.Header.Set(wire.HeaderSchema, wire.SchemaEventV1)
		if i == 0 {
			m.Header.Set(wire.HeaderExpectedLastSubjSeq, strconv.FormatUint(a.lastSeq, 10))
		}
		msgs[i] = m
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, a.js, msgs)
	if err != nil {
		return err
	}
	a.lastSeq = ack.Sequence
	return nil
}

// eventCommit is the pre-tick-record baseline: one fenced publish per event.
func eventCommit(ctx context.Context, a *appender, ev *schema.Event) error {
	ev.Zone, ev.Fence = a.zone, a.fence
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
	if err != nil {
		return err
	}
	m := nats.NewMsg(a.subject)
	m.Data = data
	m.Header.Set(wire.HeaderMsgID, ev.EventId)
	m.Header.Set(wire.HeaderExpectedLastSubjSeq, strconv.FormatUint(a.lastSeq, 10))
	m.Header.Set(wire.HeaderFence, strconv.FormatUint(a.fence, 10))
	m.Header.Set(wire.HeaderSchema, wire.SchemaEventV1)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ack, err := a.js.PublishMsg(pctx, m)
	if err != nil {
		return err
	}
	a.lastSeq = ack.Sequence
	return nil
}

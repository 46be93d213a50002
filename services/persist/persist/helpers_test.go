package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/svcmain/svctest"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

var zones = []string{"z0_0", "z0_1", "z0_2", "z1_0", "z1_1", "z1_2", "z2_0", "z2_1", "z2_2"}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig(natsURL string) Config {
	c := DefaultConfig()
	c.NATSURL = natsURL
	c.HTTPAddr = "127.0.0.1:0"
	c.InstanceID = "persist-test"
	c.BatchSize = 200
	c.BatchWait = 20 * time.Millisecond
	c.AckWait = time.Second
	c.StatsInterval = time.Second
	c.PremakeDays = 3
	c.ShutdownTimeout = 5 * time.Second
	return c
}

// running is a started service (svcmain.Start: the one start-and-wait-for-Ready).
type running struct {
	svc *Service
	run *svcmain.Running
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	svc, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	run, err := svcmain.Start(context.Background(), "persist", svc, svctest.ReadyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{svc: svc, run: run}
	t.Cleanup(r.stop)
	return r
}

// stop stops the service (again: a no-op); its drain error is not the test's.
func (r *running) stop() { _ = r.run.Stop(svctest.StopTimeout) }

// publisher publishes schema.Event messages as the world does (Nats-Msg-Id =
// event_id) and remembers what the stream accepted.
type publisher struct {
	js  jetstream.JetStream
	mu  sync.Mutex
	n   int
	ids map[uint64]string // stream seq -> event id
}

func newPublisher(t *testing.T, url string) (*publisher, *nats.Conn) {
	nc, js := natstest.Connect(t, url)
	return &publisher{js: js, ids: map[uint64]string{}}, nc
}

func (p *publisher) publish(ctx context.Context, count int) error {
	for i := 0; i < count; i++ {
		p.mu.Lock()
		p.n++
		n := p.n
		p.mu.Unlock()
		zone := zones[n%len(zones)]
		player := fmt.Sprintf("p%d", n%17)
		id := fmt.Sprintf("evt-%d", n)
		ev := storetest.Moved(id, zone, player, time.Now().UTC().Truncate(time.Microsecond), float32(n%1000), float32(n%7))
		if n%17 == 1 {
			ev = storetest.Joined(id, zone, player, time.Now().UTC().Truncate(time.Microsecond), 100)
		}
		b, _ := proto.Marshal(ev)
		msg := &nats.Msg{Subject: wire.EventSubject(zone), Data: b, Header: nats.Header{}}
		msg.Header.Set(wire.HeaderMsgID, id)
		msg.Header.Set(wire.HeaderZone, zone)
		msg.Header.Set(wire.HeaderSchema, wire.SchemaVersion)
		ack, err := p.js.PublishMsg(ctx, msg)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.ids[ack.Sequence] = id
		p.mu.Unlock()
	}
	return nil
}

func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ids)
}

// pgRows returns seq -> how many times it is stored, over all databases,
// and checks each row is on the database its zone maps to.
func pgRows(t *testing.T, urls []string, check func(db int, zone string) bool) map[int64]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[int64]int{}
	for i, u := range urls {
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatalf("connect %s: %v", u, err)
		}
		rows, err := c.Query(ctx, `SELECT seq, zone, event_id FROM events`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var seq int64
			var zone, id string
			if err := rows.Scan(&seq, &zone, &id); err != nil {
				t.Fatal(err)
			}
			out[seq]++
			if check != nil && !check(i, zone) {
				t.Errorf("seq %d of zone %s on database %d", seq, zone, i)
			}
		}
		rows.Close()
		c.Close(ctx)
	}
	return out
}

// assertExactlyTheLog checks that the stored rows are exactly the stream:
// every published sequence once, nothing else.
func assertExactlyTheLog(t *testing.T, p *publisher, stored map[int64]int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for seq, n := range stored {
		if n != 1 {
			t.Errorf("seq %d stored %d times", seq, n)
		}
		if _, ok := p.ids[uint64(seq)]; !ok {
			t.Errorf("seq %d stored but not in the log", seq)
		}
	}
	for seq := range p.ids {
		if stored[int64(seq)] == 0 {
			t.Errorf("seq %d in the log but not stored", seq)
		}
	}
	if t.Failed() {
		t.Fatalf("stored %d distinct rows, log has %d", len(stored), len(p.ids))
	}
}

func waitStored(t *testing.T, urls []string, want int, timeout time.Duration) {
	t.Helper()
	waitfor.True(t, timeout, func() error {
		if n := len(pgRows(t, urls, nil)); n != want {
			return fmt.Errorf("%d of %d events stored", n, want)
		}
		return nil
	})
}

func request[T any](t *testing.T, nc *nats.Conn, subject string, req any) T {
	t.Helper()
	b, _ := json.Marshal(req)
	m, err := nc.Request(subject, b, 5*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	var out T
	if err := json.Unmarshal(m.Data, &out); err != nil {
		t.Fatalf("reply %s: %v: %s", subject, err, m.Data)
	}
	return out
}

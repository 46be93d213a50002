package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
)

// updateCells reads packets until it has seen cell until and returns the
// cells of the updates seen, in order.
func updateCells(t *testing.T, c *client.Conn, until uint32) []uint32 {
	t.Helper()
	var cells []uint32
	for {
		p := next(t, c, 5*time.Second)
		for _, u := range client.ZoneUpdates(p) {
			cells = append(cells, u.Cell)
			if u.Cell == until {
				return cells
			}
		}
	}
}

// TestAOIForwardsOnlyNearCells: a client at (50,50) (cell 0) receives updates
// of cells 0, 1 and 10 but not 55; after its own entity shows up in cell 55
// it receives 55's neighbourhood and no longer cell 0.
func TestAOIForwardsOnlyNearCells(t *testing.T) {
	h := start(t, nil)
	ctx := context.Background()
	c, w := h.login("tcp", "aoi", "z0_1")
	seq, _ := c.Move(ctx, 50, 50)
	if p := next(t, c, 5*time.Second); p.AckSeq != seq {
		t.Fatalf("move: %v", p)
	}
	waitfor.True(t, 5*time.Second, func() error {
		if c := h.gw.down.SubscribedZones(); len(c) != 1 || c[0] != "z0_1" {
			return fmt.Errorf("subscribed zones %v", c)
		}
		return nil
	})
	for _, cell := range []uint32{55, 0, 99, 1, 10, 12} {
		publishUpdate(t, h.nc, &schema.ZoneUpdate{Zone: "z0_1", Cell: cell, Tick: 1})
	}
	// A client in another zone must not see z0_1 at all.
	publishUpdate(t, h.nc, &schema.ZoneUpdate{Zone: "z1_1", Cell: 0, Tick: 1})
	publishUpdate(t, h.nc, &schema.ZoneUpdate{Zone: "z0_1", Cell: 11, Tick: 2}) // marker
	got := updateCells(t, c, 11)
	if want := []uint32{0, 1, 10, 11}; fmt.Sprint(got) != fmt.Sprint(want) { // 11 is the marker
		t.Fatalf("received cells %v, want %v", got, want)
	}
	// Our entity now stands in cell 55 (x=550, y=550): AOI follows it.
	publishUpdate(t, h.nc, &schema.ZoneUpdate{Zone: "z0_1", Cell: 55, Tick: 3,
		Entities: []*schema.EntityView{{Id: w.PlayerId, X: 550, Y: 550}}})
	for _, cell := range []uint32{0, 44, 66, 1, 56} {
		publishUpdate(t, h.nc, &schema.ZoneUpdate{Zone: "z0_1", Cell: cell, Tick: 4})
	}
	publishUpdate(t, h.nc, &schema.ZoneUpdate{Zone: "z0_1", Cell: 45, Tick: 5}) // marker
	// Tick 4's near cells (44, 56, 66; not 0 or 1) between tick 3's and the
	// marker. Cells merged into one frame come in cell order, but per-cell
	// messages of one tick are merged only while more are pending, so the
	// tick may come in more than one frame: compare tick 4 as a set.
	got = updateCells(t, c, 45)
	if len(got) != 5 || got[0] != 55 || got[4] != 45 {
		t.Fatalf("after moving: received cells %v, want 55, then 44, 56 and 66, then 45", got)
	}
	mid := slices.Clone(got[1:4])
	slices.Sort(mid)
	if fmt.Sprint(mid) != fmt.Sprint([]uint32{44, 56, 66}) {
		t.Fatalf("after moving: received cells %v, want 55, then 44, 56 and 66, then 45", got)
	}
}

// TestSessionNotices: a rejection from the world becomes Error REJECTED for
// the client's seq; a zone change moves the client's subscriptions and
// commands to the new zone and is forwarded as ZoneChanged.
func TestSessionNotices(t *testing.T) {
	h := start(t, nil)
	ctx := context.Background()
	c, w := h.login("ws", "dan", "z0_0")
	seq, _ := c.Move(ctx, 999, 10)
	if p := next(t, c, 5*time.Second); p.AckSeq != seq || p.GetAck() == nil {
		t.Fatalf("move: %v", p)
	}
	notice := func(n *schema.SessionNotice) {
		b, _ := proto.Marshal(n)
		if err := h.nc.Publish(wire.SessionSubject(w.SessionId), b); err != nil {
			t.Fatal(err)
		}
	}
	notice(&schema.SessionNotice{SessionId: w.SessionId, Body: &schema.SessionNotice_Rejected{Rejected: &schema.CommandRejectedNotice{
		ClientSeq: seq, Code: schema.ErrorCode_ERROR_CODE_INVALID, Reason: "too fast"}}})
	p := next(t, c, 5*time.Second)
	if e := p.GetError(); e == nil || e.Code != schema.ErrorCode_ERROR_CODE_REJECTED || p.AckSeq != seq || e.Message != "too fast" {
		t.Fatalf("rejected: got %v", p)
	}
	notice(&schema.SessionNotice{SessionId: w.SessionId, Body: &schema.SessionNotice_ZoneChanged{ZoneChanged: &schema.ZoneChanged{
		Zone: "z1_0", X: 5, Y: 10, TransferId: "t1"}}})
	p = next(t, c, 5*time.Second)
	if zc := p.GetZoneChanged(); zc == nil || zc.Zone != "z1_0" || zc.TransferId != "t1" {
		t.Fatalf("zone changed: got %v", p)
	}
	// Updates of the new zone near (5,10) arrive; the old zone is unsubscribed.
	waitfor.True(t, 5*time.Second, func() error {
		if z := h.gw.down.SubscribedZones(); len(z) != 1 || z[0] != "z1_0" {
			return fmt.Errorf("subscribed zones %v", z)
		}
		return nil
	})
	publishUpdate(t, h.nc, &schema.ZoneUpdate{Zone: "z0_0", Cell: 9})
	// The gateway's SUB may reach the server after this connection's PUB:
	// publish until the update arrives (only cell-0 updates of z1_0 can).
	var got *schema.ServerPacket
	for i := 0; got == nil && i < 50; i++ {
		publishUpdate(t, h.nc, &schema.ZoneUpdate{Zone: "z1_0", Cell: 0})
		select {
		case got = <-c.Packets():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if u := client.ZoneUpdates(got); len(u) != 1 || u[0].Zone != "z1_0" || u[0].Cell != 0 {
		t.Fatalf("after the zone change: got %v, want the update of z1_0 cell 0", got)
	}
	seq, _ = c.Move(ctx, 6, 10)
	p = next(t, c, 5*time.Second)
	for u := client.ZoneUpdates(p); len(u) == 1 && u[0].Zone == "z1_0" && u[0].Cell == 0; u = client.ZoneUpdates(p) {
		p = next(t, c, 5*time.Second) // a later copy of the update above
	}
	if p.AckSeq != seq || p.GetAck() == nil {
		t.Fatalf("move: %v", p)
	}
	msgs := h.streamMsgs()
	if last := msgs[len(msgs)-1]; last.Subject != "cmd.z1_0" {
		t.Fatalf("move after the zone change went to %s", last.Subject)
	}
}

// TestSlowClientDisconnectedFastKeepsReceiving: two clients in one cell; one
// never reads. Its send queue overflows and it is disconnected with
// SLOW_CONSUMER while the other receives every update, before and after.
func TestSlowClientDisconnectedFastKeepsReceiving(t *testing.T) {
	h := start(t, func(c *Config) { c.SendQueue = 128; c.SendQueueBytes = 64 << 20 }) // the packet count bound (bytes: TestSlowConsumerClosedWithinSeconds)
	ctx := context.Background()
	fast, _ := h.login("tcp", "fast", "z2_0")
	slowConn, err := client.Dial(ctx, h.addr("tcp"), client.Options{RecvBuffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer slowConn.Close()
	if _, err := slowConn.Hello(ctx, &schema.Hello{Name: "slow"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Conn{fast, slowConn} {
		if _, err := c.Join(ctx, "z2_0"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Move(ctx, 50, 50); err != nil {
			t.Fatal(err)
		}
	}
	// fast: drain the join ack/move ack, then count updates.
	var got atomic.Int64
	go func() {
		for p := range fast.Packets() {
			got.Add(int64(len(client.ZoneUpdates(p))))
		}
	}()
	waitfor.True(t, 5*time.Second, func() error {
		if z := h.gw.down.SubscribedZones(); len(z) != 1 {
			return errors.New("not subscribed")
		}
		if slowConn.Seq() < 3 {
			return errors.New("slow not joined")
		}
		return nil
	})
	// The slow client's move must be indexed before we flood.
	waitfor.True(t, 5*time.Second, func() error {
		if testutil.ToFloat64(h.gw.m.accepted) < 4 {
			return errors.New("joins/moves not accepted yet")
		}
		return nil
	})
	big := &schema.ZoneUpdate{Zone: "z2_0", Cell: 0}
	for i := 0; i < 160; i++ { // ~16 KiB per update
		big.Entities = append(big.Entities, &schema.EntityView{Id: fmt.Sprintf("npc-%03d", i), Name: strings.Repeat("n", 80), X: 10, Y: 10})
	}
	sent := int64(0)
	round := func() {
		for i := 0; i < 64; i++ {
			big.Tick++
			publishUpdate(t, h.nc, big)
			sent++
		}
		waitfor.True(t, 10*time.Second, func() error {
			if got.Load() < sent {
				return fmt.Errorf("fast client got %d of %d updates", got.Load(), sent)
			}
			return nil
		})
	}
	deadline := time.Now().Add(60 * time.Second)
	for testutil.ToFloat64(h.gw.m.slow) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("slow client never disconnected after %d updates", sent)
		}
		round()
	}
	// Its reader is blocked on the full channel; drain it to let it see the
	// close, and check the last thing it got is the SLOW_CONSUMER error.
	var last *schema.ServerPacket
	for p := range slowConn.Packets() {
		last = p
	}
	if last.GetError().GetCode() != schema.ErrorCode_ERROR_CODE_SLOW_CONSUMER {
		t.Logf("slow client's last packet: %v (the SLOW_CONSUMER notice is best effort)", kind(last))
	}
	before := sent
	for i := 0; i < 5; i++ {
		round()
	}
	t.Logf("slow disconnected after %d updates; fast received %d in all", before, got.Load())
	if h.gw.Connections() != 1 {
		t.Fatalf("%d connections, want 1", h.gw.Connections())
	}
}

// TestFloodBoundedMemory: a client floods far past its rate limit. Every
// packet is answered (RATE_LIMITED beyond the burst) and the gateway's heap
// does not grow with the flood; a flooder that does not read its answers
// stalls its own reader (TCP flow control) and is closed by the write timeout.
func TestFloodBoundedMemory(t *testing.T) {
	h := start(t, func(c *Config) { c.Rate = 100; c.Burst = 50; c.SendQueue = 256; c.WriteTimeout = time.Second })
	ctx := context.Background()
	c, _ := h.login("tcp", "flood", "z1_2")
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const n = 100000
	base := heap()
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
			}
		}
	}()
	go func() {
		for i := 0; i < n; i++ {
			// (Junk frames are not mixed in any more: a connection that keeps
			// sending them is closed; TestMalformedFramesRateLimitedAndClosed.)
			if _, err := c.Move(ctx, 1, 2); err != nil {
				return
			}
		}
	}()
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		counts[kind(next(t, c, 10*time.Second))]++
	}
	close(stop)
	t.Logf("answers %v; heap base %d KiB, peak %d KiB", counts, base>>10, peak.Load()>>10)
	if counts["error:ERROR_CODE_RATE_LIMITED"] < n/2 {
		t.Fatalf("answers %v", counts)
	}
	if grow := int64(peak.Load()) - int64(base); grow > 64<<20 {
		t.Fatalf("heap grew by %d MiB during a flood of %d packets", grow>>20, n)
	}
	// A flooder that never reads: its answers overflow the send queue.
	mute, err := client.Dial(ctx, h.addr("tcp"), client.Options{RecvBuffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	if _, err := mute.Hello(ctx, &schema.Hello{Name: "mute"}); err != nil {
		t.Fatal(err)
	}
	go func() {
		junk := make([]byte, 100)
		for i := 0; i < 2_000_000; i++ {
			if mute.SendBytes(ctx, junk) != nil {
				return
			}
		}
	}()
	base = heap()
	waitfor.True(t, 60*time.Second, func() error {
		if h.gw.Connections() != 1 {
			return fmt.Errorf("%d connections: the mute flooder is still connected", h.gw.Connections())
		}
		return nil
	})
	go func() { // let the client's blocked reader see the close
		for range mute.Packets() {
		}
	}()
	select {
	case <-mute.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("mute flooder's socket not closed")
	}
	if grow := int64(heap()) - int64(base); grow > 16<<20 {
		t.Fatalf("heap grew by %d MiB while a client flooded without reading", grow>>20)
	}
}

// TestGracefulShutdownDeliversAccepted: clients send as fast as they can; the
// gateway is stopped mid-stream. Every command it accepted is in the stream
// and was acked to its client; nothing answered Busy or Error is in it.
func TestGracefulShutdownDeliversAccepted(t *testing.T) {
	// A bounded backlog (ring + window) so the drain fits the deadline even
	// on a loaded 2-core machine under -race.
	h := start(t, func(c *Config) {
		c.Rate, c.Burst, c.SendQueue = 1e6, 1e6, 1<<16
		c.RingSize, c.MaxPending, c.ShutdownTimeout = 1024, 512, 30*time.Second
	})
	ctx := context.Background()
	type result struct {
		session string
		answers map[uint64]string
	}
	const clients = 6
	results := make([]result, clients)
	var wg sync.WaitGroup
	var started sync.WaitGroup
	started.Add(clients)
	var conns []*client.Conn
	for i := 0; i < clients; i++ {
		tr := "tcp"
		if i%2 == 1 {
			tr = "ws"
		}
		c, w := h.login(tr, fmt.Sprintf("g%d", i), "z1_1")
		results[i] = result{session: w.SessionId, answers: map[uint64]string{2: "ack"}}
		conns = append(conns, c)
	}
	for i, c := range conns {
		wg.Add(1)
		go func(c *client.Conn) {
			defer wg.Done()
			for j := 0; ; j++ {
				if _, err := c.Move(ctx, float32(j%1000), 1); err != nil {
					return
				}
				if j == 200 {
					started.Done()
				}
			}
		}(c)
		wg.Add(1)
		go func(c *client.Conn, r result) {
			defer wg.Done()
			for p := range c.Packets() {
				if p.AckSeq != 0 {
					r.answers[p.AckSeq] = kind(p)
				}
			}
		}(c, results[i])
	}
	started.Wait()
	if err := h.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	wg.Wait()
	inStream := map[string]bool{}
	for _, m := range h.streamMsgs() {
		if decodeCommand(t, m.Data).GetDisconnect() != nil {
			continue // the gateway's own, for the closed connections (issue 10 #13)
		}
		inStream[m.Header.Get(wire.HeaderMsgID)] = true
	}
	accepted := int(testutil.ToFloat64(h.gw.m.accepted))
	acks, other := 0, map[string]int{}
	for _, r := range results {
		for seq, k := range r.answers {
			id := wire.CommandID(r.session, seq)
			if k == "ack" {
				acks++
				if !inStream[id] {
					t.Fatalf("%s acked but not in the stream", id)
				}
			} else {
				other[k]++
				if inStream[id] {
					t.Fatalf("%s answered %s but is in the stream", id, k)
				}
			}
		}
	}
	t.Logf("accepted %d, acked %d (incl. %d joins), stream %d, other answers %v", accepted, acks, clients, len(inStream), other)
	if accepted != len(inStream) || acks != accepted {
		t.Fatalf("accepted %d, stream holds %d, clients got %d acks: every accepted command must be stored and acked", accepted, len(inStream), acks)
	}
}

// TestOpsEndpointsAndHeartbeat: /healthz, /readyz, /metrics and the heartbeat.
func TestOpsEndpointsAndHeartbeat(t *testing.T) {
	h := start(t, func(c *Config) { c.Heartbeat = 100 * time.Millisecond })
	sub, err := h.nc.SubscribeSync(wire.HeartbeatSubject("gateway", "test"))
	if err != nil {
		t.Fatal(err)
	}
	h.login("tcp", "ops", "z0_0")
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + h.gw.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("/readyz %d %s", code, body)
	}
	_, body := get("/metrics")
	for _, want := range []string{`realm_gateway_connections{transport="tcp"} 1`, "realm_gateway_ring_depth", "realm_gateway_publish_latency_seconds_bucket",
		"realm_gateway_inflight_acks", "realm_gateway_busy_total", "realm_gateway_bytes_total"} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	waitfor.True(t, 5*time.Second, func() error {
		m, err := sub.NextMsg(time.Second)
		if err != nil {
			return err
		}
		var hb schema.Heartbeat
		if err := proto.Unmarshal(m.Data, &hb); err != nil {
			return err
		}
		if !hb.Ready || hb.Connections != 1 || hb.Service != "gateway" {
			return fmt.Errorf("heartbeat %+v", &hb)
		}
		return nil
	})
}

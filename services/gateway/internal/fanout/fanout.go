// Package fanout sends the world's zone updates to the gateway's clients:
// per zone with members, the update subscriptions; per client (a Member),
// its area of interest and the frames of each tick, built from the world's
// bytes without unmarshalling them and queued to the client's Sink in one
// call per tick. It knows nothing of sockets, sessions or commands.
package fanout

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/worldmap"
	"github.com/realmstream/realmstream/services/gateway/internal/packet"
)

// Subscribe opens a core NATS subscription (nats.Conn.Subscribe).
type Subscribe func(subject string, cb nats.MsgHandler) (*nats.Subscription, error)

// Sink is a client's outgoing queue, as the fan-out needs it.
type Sink interface {
	// SendFrames queues frames: n update frames, framed as on TCP (4-byte
	// length + packet), copied before it returns. It never blocks (a
	// client that cannot take them is a slow consumer) and may take a
	// lock of the sink's own (a leaf below Fanout's).
	SendFrames(frames []byte, n int, now int64)
	// Closed says whether the client's connection is closed.
	Closed() bool
}

// Tracer records the fan-out of a traced update message (from start, after
// the frames are queued); untraced messages must cost next to nothing.
type Tracer interface {
	Fanout(m *nats.Msg, zone string, start time.Time)
}

// Metrics are the fan-out's series (registered by the gateway).
type Metrics struct {
	Updates      prometheus.Counter // cell views queued to clients
	UpdateFrames prometheus.Counter // update frames queued to clients
}

// Member is one client's downstream state: its zone, its area of interest
// and the protocol that picks its frame shape. The gateway's connection
// holds one (Init) and passes it to Join, Leave and SetCell. zone and cell
// are written under Fanout.mu only and read atomically anywhere.
type Member struct {
	sink     Sink
	player   string                  // set by Join (under Fanout.mu)
	zone     atomic.Pointer[string]  // current zone; nil before Join
	cell     atomic.Int64            // AOI centre cell, -1 unknown
	protocol atomic.Uint32           // the client's protocol version (0 before Hello)
	aoi      atomic.Pointer[aoiMark] // the area of interest shown in full; nil after a join
}

// Init makes c the Member of sink, in no zone.
func (c *Member) Init(sink Sink) {
	c.sink = sink
	c.cell.Store(-1)
}

// Zone is c's current zone ("" before a join or after a leave).
func (c *Member) Zone() string {
	if z := c.zone.Load(); z != nil {
		return *z
	}
	return ""
}

// Cell is c's AOI centre cell (-1: unknown).
func (c *Member) Cell() int64 { return c.cell.Load() }

// SetProtocol records the client's protocol version (at Hello, before its
// first join): version 3 gets one Updates frame per tick, 1 and 2 one
// Update frame per cell.
func (c *Member) SetProtocol(v uint32) { c.protocol.Store(v) }

// Deliver fans out one tick's cell updates of zone (each a ZoneUpdate) as a
// ZoneTick on upd.<zone> would be: all of them, then one flush. For
// benchmarks that drive the fan-out without NATS.
func (d *Fanout) Deliver(zone string, cells [][]byte) {
	d.mu.Lock()
	zs := d.zones[zone]
	d.mu.Unlock()
	if zs == nil {
		return
	}
	zs.fan.Lock()
	defer zs.fan.Unlock()
	for _, b := range cells {
		zs.add(b)
	}
	zs.flush()
}

// Fanout fans zone updates out to clients: per client, everything due
// from one zone tick (the views of the cells in its area of interest, the 3x3
// cells around its last known position) goes out as ONE frame, protocol
// version 3's Updates, or (versions 1 and 2) one Update frame per cell, and
// either way in one socket write (Sink.SendFrames).
//
// Per zone with at least one client here, two core NATS subscriptions
// shared by those clients: upd.<zone>.* (the world publishes one ZoneUpdate
// per cell; the cells of one tick are merged until the tick number changes
// or the subscription has nothing more pending) and upd.<zone> (one ZoneTick
// per tick carrying every cell; each message is flushed whole). The world
// may publish either shape; see docs/gateway.md "Downstream".
//
// Updates are never unmarshalled: packet.ScanZoneUpdate reads the cell, the
// tick and the positions of this gateway's players, and the client frames
// wrap the world's bytes as they are.
//
// Locks, in order: zoneSub.fan (the tick under assembly; the two
// subscriptions have a goroutine each), then Fanout.mu (zones and every
// zoneSub's maps; the only writer of Member.zone and Member.cell, which are
// read atomically elsewhere), then whatever Sink.SendFrames takes (the
// gateway's sendq.Queue.umu). Nothing blocks under mu: frames are built and queued
// after it is released. Subscribe and Unsubscribe are called under mu:
// nats.go does not wait for a running callback, so a callback waiting on mu
// under zoneSub.fan cannot deadlock them.
type Fanout struct {
	subscribe Subscribe
	grid      worldmap.Map
	m         Metrics
	tr        Tracer
	log       *slog.Logger

	mu    sync.Mutex
	zones map[string]*zoneSub
	near  [][]uint32 // cell -> worldmap.NearCells(cell): the cells whose updates a client there receives
}

type zoneSub struct {
	d       *Fanout
	zone    string
	subs    []*nats.Subscription
	members map[*Member]struct{}
	players map[string]*Member // player id -> client, to learn positions from EntityViews

	fan   sync.Mutex // guards asm and state
	asm   tickAsm
	state [][]byte // cell -> its latest state (packet.AppendCellState; empty: no entity), for clients that start seeing it
}

// aoiMark records which area of interest a client has been shown in full:
// the cell it stood in, in which zone's fan-out. A flush that finds the
// client elsewhere sends it, besides the tick's cells, the state of every
// cell that came into its view (the world sends only the cells that changed,
// so an unchanged cell would otherwise appear only with its next keyframe).
type aoiMark struct {
	zs   *zoneSub
	cell uint32
}

// dueCell is one cell of a client's frame: the tick's update of it, or
// (cached) the state of a cell that just came into its view.
type dueCell struct {
	k      uint32
	b      []byte
	cached bool
}

// tickAsm holds the cells received for the tick being assembled.
type tickAsm struct {
	tick    uint64
	cells   [][]byte // cell -> its ZoneUpdate this tick (nil: none)
	order   []uint32 // cells set in cells
	legacy  [][]byte // cell -> its framed Update packet (protocols 1, 2), built on demand
	built   []bool   // legacy[cell] is this flush's
	targets []target
	due     []dueCell
	cells1  [][]byte // one client's cells
	frame   []byte   // one client's frames
}

type target struct {
	c    *Member
	cell uint32
}

// MaxUpdatesFrame bounds a merged Updates packet: cells are added to a frame
// while it stays below this (a single larger cell goes alone). Clients must
// read frames of twice this (the SDKs read 64 KiB).
const MaxUpdatesFrame = 32 << 10

// New returns the fan-out of the zones of m: subscribe opens the update
// subscriptions of a zone when its first member joins (the gateway's NATS
// connection; it may be called only once clients join).
func New(subscribe Subscribe, m worldmap.Map, met Metrics, tr Tracer, log *slog.Logger) *Fanout {
	d := &Fanout{subscribe: subscribe, grid: m, m: met, tr: tr, log: log, zones: map[string]*zoneSub{}}
	d.near = make([][]uint32, m.CellCount())
	for k := range d.near {
		d.near[k] = m.NearCells(nil, uint32(k))
	}
	return d
}

func (d *Fanout) newZoneSub(zone string) *zoneSub {
	n := len(d.near)
	return &zoneSub{d: d, zone: zone, members: map[*Member]struct{}{}, players: map[string]*Member{}, state: make([][]byte, n),
		asm: tickAsm{cells: make([][]byte, n), legacy: make([][]byte, n), built: make([]bool, n)}}
}

// Join moves c, the client of player, into zone (leaving its current zone),
// with AOI centre cell (-1: unknown until its own entity shows up in an
// update or it moves). A closed client (Sink.Closed) is not added: a late
// session notice for a closed connection, whose Leave has run or will run.
func (d *Fanout) Join(c *Member, player, zone string, cell int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.sink.Closed() {
		return
	}
	d.leaveLocked(c)
	zs := d.zones[zone]
	if zs == nil {
		zs = d.newZoneSub(zone)
		for _, sub := range []struct {
			subject string
			cb      nats.MsgHandler
		}{
			{wire.UpdateZoneWildcard(zone), zs.onCell},
			{wire.UpdateTickSubject(zone), zs.onTick},
		} {
			s, err := d.subscribe(sub.subject, sub.cb)
			if err != nil {
				d.log.Error("subscribe zone updates", "subject", sub.subject, "err", err)
				continue
			}
			zs.subs = append(zs.subs, s)
		}
		d.zones[zone] = zs
	}
	c.player = player
	zs.members[c] = struct{}{}
	zs.players[player] = c
	z := zone
	c.zone.Store(&z)
	c.cell.Store(cell)
	c.aoi.Store(nil) // nothing of this zone shown yet
}

// Leave takes c out of its zone (if any); the zone's subscriptions end with
// its last member.
func (d *Fanout) Leave(c *Member) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.leaveLocked(c)
}

func (d *Fanout) leaveLocked(c *Member) {
	zone := c.Zone()
	c.zone.Store(nil)
	c.cell.Store(-1)
	zs := d.zones[zone]
	if zs == nil {
		return
	}
	delete(zs.members, c)
	if zs.players[c.player] == c {
		delete(zs.players, c.player)
	}
	if len(zs.members) == 0 {
		for _, s := range zs.subs {
			_ = s.Unsubscribe()
		}
		delete(d.zones, zone)
	}
}

// SetCell records c's position cell; cheap when the cell did not change.
func (d *Fanout) SetCell(c *Member, cell int64) {
	if c.cell.Load() == cell {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if zs := d.zones[c.Zone()]; zs != nil {
		if _, ok := zs.members[c]; ok {
			c.cell.Store(cell)
		}
	}
}

// Entity learns where one of our players stands from its own EntityView
// (packet.EntityVisitor; d.mu held).
func (zs *zoneSub) Entity(id []byte, x, y float32) {
	c := zs.players[string(id)]
	if c == nil {
		return
	}
	if m := zs.d.grid; m.InBounds(x, y) {
		c.cell.Store(int64(m.CellOf(x, y)))
	}
}

// onCell takes one cell's ZoneUpdate (upd.<zone>.<cell>; the subscription's
// goroutine). The tick's cells are merged: a flush comes before a cell of
// another tick (or a second copy of a cell) and as soon as nothing more is
// pending on the subscription, so a burst of one tick's cells is one frame
// per client and a lone cell waits for nothing.
func (zs *zoneSub) onCell(m *nats.Msg) {
	defer zs.d.tr.Fanout(m, zs.zone, time.Now()) // a traced tick's update, after the unlock
	zs.fan.Lock()
	defer zs.fan.Unlock()
	zs.add(m.Data)
	// nats.go counts the message being delivered as pending until its
	// callback returns: 1 means nothing else waits.
	if n, _, err := m.Sub.Pending(); err != nil || n <= 1 {
		zs.flush()
	}
}

// onTick takes one ZoneTick (upd.<zone>): all its cells, then one flush.
func (zs *zoneSub) onTick(m *nats.Msg) {
	defer zs.d.tr.Fanout(m, zs.zone, time.Now()) // a traced tick's update, after the unlock
	zs.fan.Lock()
	defer zs.fan.Unlock()
	if _, err := packet.ScanZoneTick(m.Data, func(zu []byte) error { zs.add(zu); return nil }); err != nil {
		zs.d.log.Warn("bad zone tick", "subject", m.Subject, "err", err)
	}
	zs.flush()
}

// add puts one cell's update into the tick under assembly, flushing the
// tick before it first when it belongs to another tick (or repeats a cell),
// and learns our players' positions from it (fan held). b must stay
// unchanged until the flush (NATS gives each message its own buffer).
func (zs *zoneSub) add(b []byte) {
	d, a := zs.d, &zs.asm
	cell, tick, err := packet.PeekZoneUpdate(b)
	if err == nil && int(cell) >= len(a.cells) {
		err = errCellOutOfRange
	}
	if err != nil {
		d.log.Warn("bad zone update", "zone", zs.zone, "cell", cell, "err", err)
		return
	}
	if len(a.order) > 0 && (tick != a.tick || a.cells[cell] != nil) {
		zs.flush()
	}
	d.mu.Lock()
	_, _, err = packet.ScanZoneUpdate(b, zs)
	d.mu.Unlock()
	if err != nil {
		d.log.Warn("bad zone update", "zone", zs.zone, "cell", cell, "err", err)
		return
	}
	a.tick = tick
	a.cells[cell] = b
	a.order = append(a.order, cell)
}

var errCellOutOfRange = errors.New("cell outside the zone's grid")

// flush sends every client of the zone the cells of the assembled tick that
// lie in its area of interest (fan held).
func (zs *zoneSub) flush() {
	a := &zs.asm
	if len(a.order) == 0 {
		return
	}
	d := zs.d
	d.mu.Lock()
	if d.zones[zs.zone] != zs { // unsubscribed meanwhile
		d.mu.Unlock()
		a.reset()
		return
	}
	a.targets = a.targets[:0]
	for c := range zs.members {
		if cell := c.cell.Load(); cell >= 0 && int(cell) < len(d.near) {
			a.targets = append(a.targets, target{c, uint32(cell)})
		}
	}
	d.mu.Unlock()
	now := time.Now().UnixNano()
	cells, frames := 0, 0
	for _, t := range a.targets {
		a.due = zs.dueCells(a.due[:0], t)
		if len(a.due) == 0 {
			continue
		}
		var n int
		if t.c.protocol.Load() >= 3 {
			a.cells1 = a.cells1[:0]
			for _, dc := range a.due {
				a.cells1 = append(a.cells1, dc.b)
			}
			a.frame, n = appendMerged(a.frame[:0], a.cells1)
		} else {
			a.frame, n = a.frame[:0], len(a.due)
			for _, dc := range a.due {
				if dc.cached {
					a.frame = packet.AppendUpdateFrame(a.frame, dc.b)
				} else {
					a.frame = append(a.frame, a.legacyFrame(dc.k)...)
				}
			}
		}
		t.c.sink.SendFrames(a.frame, n, now)
		cells += len(a.due)
		frames += n
	}
	d.m.Updates.Add(float64(cells))
	d.m.UpdateFrames.Add(float64(frames))
	if cap(a.frame) > 256<<10 {
		a.frame = nil
	}
	for _, k := range a.order {
		st, ents, err := packet.AppendCellState(zs.state[k][:0], a.cells[k])
		if err != nil || !ents {
			st = st[:0]
		}
		zs.state[k] = st
	}
	a.reset()
}

// dueCells appends the cells client t is due in this flush, in cell order:
// the tick's cells in its area of interest and, when its area of interest
// moved since it was last shown whole, the cached state of the cells that
// came into view and are not in the tick (fan held).
func (zs *zoneSub) dueCells(due []dueCell, t target) []dueCell {
	a, near := &zs.asm, zs.d.near
	mark := t.c.aoi.Load()
	moved := mark == nil || mark.zs != zs || mark.cell != t.cell
	var seen []uint32 // cells already shown whole
	if moved && mark != nil && mark.zs == zs {
		seen = near[mark.cell]
	}
	for _, k := range near[t.cell] {
		if b := a.cells[k]; b != nil {
			due = append(due, dueCell{k: k, b: b})
		} else if moved && len(zs.state[k]) > 0 && !slices.Contains(seen, k) {
			due = append(due, dueCell{k: k, b: zs.state[k], cached: true})
		}
	}
	if moved {
		t.c.aoi.Store(&aoiMark{zs: zs, cell: t.cell})
	}
	return due
}

// appendMerged appends the Updates frames carrying cells: one, or a few when
// they exceed MaxUpdatesFrame. It returns the number of frames.
func appendMerged(dst []byte, cells [][]byte) ([]byte, int) {
	frames := 0
	for len(cells) > 0 {
		i, inner := 0, 0
		for i < len(cells) {
			e := packet.UpdatesEntrySize(len(cells[i]))
			if i > 0 && packet.UpdatesSize(inner+e) > MaxUpdatesFrame {
				break
			}
			inner += e
			i++
		}
		dst = packet.AppendUpdatesFrame(dst, cells[:i])
		cells = cells[i:]
		frames++
	}
	return dst, frames
}

// legacyFrame returns cell k's framed Update packet, built once per flush.
func (a *tickAsm) legacyFrame(k uint32) []byte {
	if !a.built[k] {
		a.legacy[k] = packet.AppendUpdateFrame(a.legacy[k][:0], a.cells[k])
		a.built[k] = true
	}
	return a.legacy[k]
}

func (a *tickAsm) reset() {
	for _, k := range a.order {
		a.cells[k] = nil
		a.built[k] = false
	}
	a.order = a.order[:0]
}

// SubscribedZones lists the zones with a live subscription (tests).
func (d *Fanout) SubscribedZones() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.zones))
	for z := range d.zones {
		out = append(out, z)
	}
	return out
}

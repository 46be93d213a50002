package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/gateway/internal/packet"
)

// downstream fans zone updates out to clients: per client, everything due
// from one zone tick (the views of the cells in its area of interest, the 3x3
// cells around its last known position) goes out as ONE frame, protocol
// version 3's Updates, or (versions 1 and 2) one Update frame per cell, and
// either way in one socket write (conn.sendFrames).
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
// subscriptions have a goroutine each), then downstream.mu (zones and every
// zoneSub's maps; the only writer of conn.zone and conn.cell, which are read
// atomically elsewhere), then conn.umu (sendFrames). Nothing blocks under
// mu: frames are built and queued after it is released.
type downstream struct {
	s     *Service
	mu    sync.Mutex
	zones map[string]*zoneSub
	near  [][]uint32 // cell -> worldmap.NearCells(cell): the cells whose updates a client there receives
}

type zoneSub struct {
	d       *downstream
	zone    string
	subs    []*nats.Subscription
	members map[*conn]struct{}
	players map[string]*conn // player id -> client, to learn positions from EntityViews

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
	c    *conn
	cell uint32
}

// maxUpdatesFrame bounds a merged Updates packet: cells are added to a frame
// while it stays below this (a single larger cell goes alone). Clients must
// read frames of twice this (the SDKs read 64 KiB).
const maxUpdatesFrame = 32 << 10

func newDownstream(s *Service) *downstream {
	d := &downstream{s: s, zones: map[string]*zoneSub{}}
	d.near = make([][]uint32, s.cfg.Map.CellCount())
	for k := range d.near {
		d.near[k] = s.cfg.Map.NearCells(nil, uint32(k))
	}
	return d
}

func (d *downstream) newZoneSub(zone string) *zoneSub {
	n := len(d.near)
	return &zoneSub{d: d, zone: zone, members: map[*conn]struct{}{}, players: map[string]*conn{}, state: make([][]byte, n),
		asm: tickAsm{cells: make([][]byte, n), legacy: make([][]byte, n), built: make([]bool, n)}}
}

// join moves c into zone (leaving its current zone), with AOI centre cell
// (-1: unknown until its own entity shows up in an update or it moves).
func (d *downstream) join(c *conn, zone string, cell int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-c.dead: // a late session notice for a closed connection: forget has run or will run leave
		return
	default:
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
			s, err := d.s.nc.Subscribe(sub.subject, sub.cb)
			if err != nil {
				d.s.log.Error("subscribe zone updates", "subject", sub.subject, "err", err)
				continue
			}
			zs.subs = append(zs.subs, s)
		}
		d.zones[zone] = zs
	}
	zs.members[c] = struct{}{}
	zs.players[c.player] = c
	z := zone
	c.zone.Store(&z)
	c.cell.Store(cell)
	c.aoi.Store(nil) // nothing of this zone shown yet
}

func (d *downstream) leave(c *conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.leaveLocked(c)
}

func (d *downstream) leaveLocked(c *conn) {
	zone := c.currentZone()
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

// setCell records c's position cell; cheap when the cell did not change.
func (d *downstream) setCell(c *conn, cell int64) {
	if c.cell.Load() == cell {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if zs := d.zones[c.currentZone()]; zs != nil {
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
	if m := zs.d.s.cfg.Map; m.InBounds(x, y) {
		c.cell.Store(int64(m.CellOf(x, y)))
	}
}

// onCell takes one cell's ZoneUpdate (upd.<zone>.<cell>; the subscription's
// goroutine). The tick's cells are merged: a flush comes before a cell of
// another tick (or a second copy of a cell) and as soon as nothing more is
// pending on the subscription, so a burst of one tick's cells is one frame
// per client and a lone cell waits for nothing.
func (zs *zoneSub) onCell(m *nats.Msg) {
	defer zs.d.s.tr.fanout(m, zs.zone, time.Now()) // a traced tick's update (tracing.go), after the unlock
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
	defer zs.d.s.tr.fanout(m, zs.zone, time.Now()) // a traced tick's update (tracing.go), after the unlock
	zs.fan.Lock()
	defer zs.fan.Unlock()
	if _, err := packet.ScanZoneTick(m.Data, func(zu []byte) error { zs.add(zu); return nil }); err != nil {
		zs.d.s.log.Warn("bad zone tick", "subject", m.Subject, "err", err)
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
		d.s.log.Warn("bad zone update", "zone", zs.zone, "cell", cell, "err", err)
		return
	}
	if len(a.order) > 0 && (tick != a.tick || a.cells[cell] != nil) {
		zs.flush()
	}
	d.mu.Lock()
	_, _, err = packet.ScanZoneUpdate(b, zs)
	d.mu.Unlock()
	if err != nil {
		d.s.log.Warn("bad zone update", "zone", zs.zone, "cell", cell, "err", err)
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
		t.c.sendFrames(a.frame, n, now)
		cells += len(a.due)
		frames += n
	}
	d.s.m.updates.Add(float64(cells))
	d.s.m.updateFrames.Add(float64(frames))
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
// they exceed maxUpdatesFrame. It returns the number of frames.
func appendMerged(dst []byte, cells [][]byte) ([]byte, int) {
	frames := 0
	for len(cells) > 0 {
		i, inner := 0, 0
		for i < len(cells) {
			e := packet.UpdatesEntrySize(len(cells[i]))
			if i > 0 && packet.UpdatesSize(inner+e) > maxUpdatesFrame {
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

// subscribedZones lists the zones with a live subscription (tests, heartbeat).
func (d *downstream) subscribedZones() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.zones))
	for z := range d.zones {
		out = append(out, z)
	}
	return out
}

// sessions remembers, per session id, the live connection and what a resumed
// connection needs (highest accepted seq, zone). Bounded: records of closed
// sessions expire after ttl and the table holds at most max of them.
type sessions struct {
	mu   sync.Mutex
	recs map[string]*sessionRec
	max  int
	ttl  time.Duration
}

type sessionRec struct {
	live    *conn
	lastSeq uint64
	zone    string
	closed  time.Time
}

func newSessions(max int, ttl time.Duration) *sessions {
	return &sessions{recs: map[string]*sessionRec{}, max: max, ttl: ttl}
}

// attach binds c to its session; an older live connection of the same
// session is closed (the session moved to c).
func (s *sessions) attach(id string, c *conn) (lastSeq uint64, zone string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recs[id]
	if r == nil {
		r = &sessionRec{}
		s.recs[id] = r
	}
	if old := r.live; old != nil && old != c {
		r.lastSeq = max(r.lastSeq, old.lastSeq.Load())
		if z := old.currentZone(); z != "" {
			r.zone = z
		}
		old.sendError(0, schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "session resumed on another connection")
		old.close()
	}
	r.live = c
	return r.lastSeq, r.zone
}

// detach records what a resume needs when c closes.
func (s *sessions) detach(id string, c *conn, zone string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recs[id]
	if r == nil || r.live != c {
		return
	}
	r.live = nil
	r.lastSeq = max(r.lastSeq, c.lastSeq.Load())
	r.zone = zone
	r.closed = time.Now()
	if len(s.recs) > s.max {
		s.evictLocked()
	}
}

func (s *sessions) evictLocked() {
	now := time.Now()
	for id, r := range s.recs {
		if r.live == nil && (now.Sub(r.closed) > s.ttl || len(s.recs) > s.max) {
			delete(s.recs, id)
		}
	}
}

// newSessionID returns a random, subject-safe session id.
func newSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "s" + hex.EncodeToString(b[:])
}

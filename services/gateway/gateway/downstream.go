package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// downstream fans zone updates out to clients. One core NATS subscription to
// upd.<zone>.* per zone that has at least one client here, shared by those
// clients; each update of cell k goes only to the clients whose area of
// interest (the 3x3 cells around their last known position) contains k.
//
// Lock: mu guards zones and every zoneSub's maps, and is the only writer of
// conn.zone and conn.cell (which are read atomically elsewhere). Nothing
// blocks under mu: sends to clients happen after it is released.
type downstream struct {
	s     *Service
	mu    sync.Mutex
	zones map[string]*zoneSub
}

type zoneSub struct {
	zone    string
	sub     *nats.Subscription
	members map[*conn]struct{}
	byCell  map[uint32]map[*conn]struct{} // cell -> clients whose AOI contains it
	players map[string]*conn              // player id -> client, to learn positions from EntityViews
}

func newDownstream(s *Service) *downstream {
	return &downstream{s: s, zones: map[string]*zoneSub{}}
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
		zs = &zoneSub{zone: zone, members: map[*conn]struct{}{}, byCell: map[uint32]map[*conn]struct{}{}, players: map[string]*conn{}}
		sub, err := d.s.nc.Subscribe(wire.UpdateZoneWildcard(zone), func(m *nats.Msg) { d.onUpdate(zs, m) })
		if err != nil {
			d.s.log.Error("subscribe zone updates", "zone", zone, "err", err)
		}
		zs.sub = sub
		d.zones[zone] = zs
	}
	zs.members[c] = struct{}{}
	zs.players[c.player] = c
	z := zone
	c.zone.Store(&z)
	c.cell.Store(-1)
	if cell >= 0 {
		d.indexLocked(zs, c, cell)
	}
}

func (d *downstream) leave(c *conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.leaveLocked(c)
}

func (d *downstream) leaveLocked(c *conn) {
	zone := c.currentZone()
	c.zone.Store(nil)
	zs := d.zones[zone]
	if zs == nil {
		return
	}
	d.unindexLocked(zs, c)
	delete(zs.members, c)
	if zs.players[c.player] == c {
		delete(zs.players, c.player)
	}
	if len(zs.members) == 0 {
		if zs.sub != nil {
			_ = zs.sub.Unsubscribe()
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
			d.indexLocked(zs, c, cell)
		}
	}
}

func (d *downstream) unindexLocked(zs *zoneSub, c *conn) {
	old := c.cell.Load()
	if old < 0 {
		return
	}
	for _, k := range d.s.cfg.Map.NearCells(nil, uint32(old)) {
		if set := zs.byCell[k]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(zs.byCell, k)
			}
		}
	}
	c.cell.Store(-1)
}

func (d *downstream) indexLocked(zs *zoneSub, c *conn, cell int64) {
	if c.cell.Load() == cell {
		return
	}
	d.unindexLocked(zs, c)
	for _, k := range d.s.cfg.Map.NearCells(nil, uint32(cell)) {
		set := zs.byCell[k]
		if set == nil {
			set = map[*conn]struct{}{}
			zs.byCell[k] = set
		}
		set[c] = struct{}{}
	}
	c.cell.Store(cell)
}

// onUpdate runs on the zone subscription's goroutine: decode once, learn the
// positions of our own players from their EntityViews, then queue one encoded
// packet to every client whose AOI holds the cell.
func (d *downstream) onUpdate(zs *zoneSub, m *nats.Msg) {
	var u schema.ZoneUpdate
	if err := proto.Unmarshal(m.Data, &u); err != nil {
		d.s.log.Warn("bad zone update", "subject", m.Subject, "err", err)
		return
	}
	var targets []*conn
	d.mu.Lock()
	if d.zones[zs.zone] != zs { // unsubscribed meanwhile
		d.mu.Unlock()
		return
	}
	for _, e := range u.Entities {
		if c := zs.players[e.Id]; c != nil && d.s.cfg.Map.InBounds(e.X, e.Y) {
			d.indexLocked(zs, c, int64(d.s.cfg.Map.CellOf(e.X, e.Y)))
		}
	}
	for c := range zs.byCell[u.Cell] {
		targets = append(targets, c)
	}
	d.mu.Unlock()
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
	d.s.m.updates.Add(float64(len(targets)))
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

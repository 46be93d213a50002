package swarm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

type sentCmd struct {
	seq  uint64
	kind string
	pkt  *schema.ClientPacket
	at   time.Time
}

type movePos struct {
	seq      uint64
	x, y     float32
	zone     string
	rejected bool
}

type seenEntity struct {
	x, y float32
	dead bool
	at   time.Time
}

// bot is one player. The play goroutine owns movement state; the reader
// goroutine delivers answers and updates; both take mu for shared fields.
type bot struct {
	sw      *Swarm
	id      int
	name    string
	gw      int
	ws      bool
	crosser bool
	rng     *rand.Rand // play goroutine only

	mu       sync.Mutex
	session  string
	player   string
	token    string
	zone     string
	x, y     float32
	wx, wy   float32 // waypoint
	hasWay   bool
	crossing bool
	crossAt  time.Time
	lastMove uint64
	maxSeq   uint64 // highest seq ever assigned (a new connection continues above it)
	joined   bool
	resync   bool // a move was refused: take the server's position from the next view of ourselves
	dead     bool
	blocked  int       // walls hit (each makes the bot pick another waypoint)
	hist     []movePos // recent moves (ascending seq) for reconciliation
	pending  map[uint64]*sentCmd
	moves    []sentCmd // moves awaiting their update, ascending seq
	acked    []AckRecord
	seen     map[string]seenEntity
	lostAt   time.Time
}

var errResume = errors.New("deliberate resume")

func (b *bot) addr() string {
	g := b.sw.cfg.Gateways[b.gw]
	if b.ws && g.WS != "" {
		return g.WS
	}
	if g.TCP == "" {
		return g.WS
	}
	return "tcp://" + g.TCP
}

func (b *bot) run(ctx context.Context, delay time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(delay):
	}
	backoff := 100 * time.Millisecond
	failures := 0
	for ctx.Err() == nil {
		conn, err := b.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.sw.C.ConnectFailures.Add(1)
			failures++
			if len(b.sw.cfg.Gateways) > 1 {
				// Like a client with a list of gateway addresses: try the
				// next one (a dead gateway refuses at once).
				b.gw = (b.gw + 1) % len(b.sw.cfg.Gateways)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff + time.Duration(b.rng.Int64N(int64(backoff)))):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		failures, backoff = 0, 100*time.Millisecond
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			for p := range conn.Packets() {
				b.onPacket(p)
			}
		}()
		b.sw.connected.Add(1)
		err = b.play(ctx, conn)
		b.sw.connected.Add(-1)
		if ctx.Err() != nil {
			b.drain(conn)
			_ = conn.Close()
			<-readerDone
			b.mu.Lock()
			b.abandonLocked()
			b.mu.Unlock()
			return
		}
		_ = conn.Close()
		<-readerDone
		if errors.Is(err, errResume) {
			b.sw.C.Resumes.Add(1)
		} else {
			b.sw.C.Disconnects.Add(1)
			b.mu.Lock()
			b.lostAt = time.Now()
			b.sw.lost.Add(1)
			b.mu.Unlock()
		}
	}
}

// connect dials, says Hello (resuming the session when there is one) and
// re-establishes the zone: resends unanswered commands the gateway has not
// seen (same seq = same command id), or joins again when the gateway has
// no state for the session (a restarted or different gateway).
func (b *bot) connect(ctx context.Context) (*client.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := client.Dial(dctx, b.addr(), client.Options{})
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	hello := &schema.Hello{Name: b.name}
	resuming := b.session != ""
	if resuming {
		hello.Token, hello.ResumeSession = b.token, b.session
	}
	conn.SetSeq(b.lastSeqLocked())
	b.mu.Unlock()
	w, err := conn.Hello(dctx, hello)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	b.sw.C.Connects.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.session, b.player, b.token = w.SessionId, w.PlayerId, w.Token
	if !b.lostAt.IsZero() {
		b.sw.Reconnect.Record(time.Since(b.lostAt))
		b.lostAt = time.Time{}
		b.sw.lost.Add(-1)
	}
	if w.LastSeq > conn.Seq() {
		conn.SetSeq(w.LastSeq)
	}
	b.moves = b.moves[:0]
	if !b.joined || w.LastSeq == 0 {
		// The gateway knows nothing of this session: what was unanswered is
		// abandoned (never acknowledged, so never promised), and the bot
		// joins its zone again.
		b.abandonLocked()
		b.crossing = false
		if err := b.sendLocked(ctx, conn, &schema.ClientPacket{Body: &schema.ClientPacket_Join{Join: &schema.Join{Zone: b.zone}}}, "join"); err != nil {
			_ = conn.Close()
			return nil, err
		}
		b.joined = true
		return conn, nil
	}
	// Same gateway, session state kept: resend what it has not seen, in
	// order, with the original seqs (idempotent by command id).
	seqs := make([]uint64, 0, len(b.pending))
	for s := range b.pending {
		seqs = append(seqs, s)
	}
	sortU64(seqs)
	for _, s := range seqs {
		sc := b.pending[s]
		if s <= w.LastSeq {
			// Accepted by the gateway before the drop; its Ack went to the
			// old connection. Unknown outcome: not counted as acknowledged.
			delete(b.pending, s)
			b.sw.C.Unanswered.Add(1)
			continue
		}
		if err := conn.SendRaw(ctx, sc.pkt); err != nil {
			_ = conn.Close()
			return nil, err
		}
		sc.at = time.Now()
		b.sw.record(record{T: "resend", Bot: b.id, ID: wire.CommandID(b.session, s), Kind: sc.kind, Seq: s})
	}
	return conn, nil
}

func (b *bot) lastSeqLocked() uint64 { return b.maxSeq }

func (b *bot) abandonLocked() {
	for s := range b.pending {
		delete(b.pending, s)
		b.sw.C.Unanswered.Add(1)
	}
}

// sendLocked sends a new command and records it as pending; b.mu is held so
// the answer (read by the reader goroutine) always finds it.
func (b *bot) sendLocked(ctx context.Context, conn *client.Conn, p *schema.ClientPacket, kind string) error {
	seq, err := conn.Send(ctx, p)
	b.maxSeq = max(b.maxSeq, seq)
	if err != nil {
		return err
	}
	now := time.Now()
	sc := &sentCmd{seq: seq, kind: kind, pkt: p, at: now}
	b.pending[seq] = sc
	if kind == "move" {
		b.moves = append(b.moves, *sc)
		b.lastMove = seq
		if m := p.GetMove(); m != nil {
			if len(b.hist) >= 64 {
				b.hist = append(b.hist[:0], b.hist[32:]...)
			}
			b.hist = append(b.hist, movePos{seq: seq, x: m.X, y: m.Y, zone: b.zone})
		}
	}
	b.sw.C.Sent.Add(1)
	switch kind {
	case "move":
		b.sw.C.Moves.Add(1)
	case "chat":
		b.sw.C.Chats.Add(1)
	case "attack":
		b.sw.C.Attacks.Add(1)
	case "join":
		b.sw.C.Joins.Add(1)
	}
	b.sw.record(record{T: "sent", Bot: b.id, ID: wire.CommandID(b.session, seq), Kind: kind, Seq: seq})
	return nil
}

func (b *bot) play(ctx context.Context, conn *client.Conn) error {
	period := time.Duration(float64(time.Second) / b.sw.cfg.MoveHz)
	t := time.NewTicker(period)
	defer t.Stop()
	dt := period.Seconds()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-conn.Done():
			return fmt.Errorf("connection lost: %w", conn.Err())
		case <-t.C:
		}
		if err := b.tick(ctx, conn, dt); err != nil {
			return err
		}
		if re := b.sw.cfg.ResumeEvery; re > 0 && b.rng.Float64() < dt/re.Seconds() {
			return errResume
		}
	}
}

func (b *bot) tick(ctx context.Context, conn *client.Conn, dt float64) error {
	cfg := &b.sw.cfg
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.expireLocked(now)
	if b.crossing {
		if now.Sub(b.crossAt) < 3*time.Second {
			return nil // wait for ZoneChanged
		}
		b.crossing = false // the crossing did not happen: stay in the zone
		b.x, b.y = clampIn(b.x, cfg.Map.ZoneSize), clampIn(b.y, cfg.Map.ZoneSize)
		b.hasWay = false
	}
	if b.dead {
		return nil // wait for the respawn
	}
	if !b.hasWay {
		b.pickWaypointLocked()
	}
	step := cfg.Speed * float32(dt)
	dx, dy := b.wx-b.x, b.wy-b.y
	d := float32(math.Hypot(float64(dx), float64(dy)))
	if d <= step {
		b.x, b.y = b.wx, b.wy
		b.hasWay = false
	} else {
		b.x += dx / d * step
		b.y += dy / d * step
	}
	if !cfg.Map.InBounds(b.x, b.y) {
		if _, _, _, ok := cfg.Map.Cross(b.zone, b.x, b.y); ok {
			b.crossing, b.crossAt = true, now
		} else {
			b.x, b.y = clampIn(b.x, cfg.Map.ZoneSize), clampIn(b.y, cfg.Map.ZoneSize)
			b.hasWay = false
		}
	}
	if err := b.sendLocked(ctx, conn, &schema.ClientPacket{Body: &schema.ClientPacket_Move{Move: &schema.Move{X: b.x, Y: b.y}}}, "move"); err != nil {
		return err
	}
	if b.crossing {
		return nil
	}
	if b.rng.Float64() < dt/cfg.ChatEvery.Seconds() {
		text := fmt.Sprintf("%s says hi #%d", b.name, b.maxSeq)
		scope := schema.ChatScope_CHAT_SCOPE_ZONE
		if b.rng.IntN(2) == 0 {
			scope = schema.ChatScope_CHAT_SCOPE_NEARBY
		}
		if err := b.sendLocked(ctx, conn, &schema.ClientPacket{Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: text, Scope: scope}}}, "chat"); err != nil {
			return err
		}
	}
	if b.rng.Float64() < dt/cfg.AttackEvery.Seconds() {
		if target := b.targetLocked(now); target != "" {
			if err := b.sendLocked(ctx, conn, &schema.ClientPacket{Body: &schema.ClientPacket_Attack{Attack: &schema.Attack{TargetId: target}}}, "attack"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *bot) pickWaypointLocked() {
	size := b.sw.cfg.Map.ZoneSize
	b.hasWay = true
	if b.crosser && b.rng.IntN(3) == 0 {
		// Head for a border that has a zone behind it.
		for range 8 {
			dx, dy := b.rng.IntN(3)-1, b.rng.IntN(3)-1
			if dx == 0 && dy == 0 {
				continue
			}
			if _, ok := b.sw.cfg.Map.Neighbour(b.zone, dx, dy); !ok {
				continue
			}
			b.wx, b.wy = b.x, b.y
			switch dx {
			case -1:
				b.wx = -5
			case 1:
				b.wx = size + 5
			}
			switch dy {
			case -1:
				b.wy = -5
			case 1:
				b.wy = size + 5
			}
			return
		}
	}
	if b.rng.IntN(5) < 2 {
		// The middle of a zone is where players meet (and fight).
		b.wx = size/2 - 120 + b.rng.Float32()*240
		b.wy = size/2 - 120 + b.rng.Float32()*240
		return
	}
	b.wx = 50 + b.rng.Float32()*(size-100)
	b.wy = 50 + b.rng.Float32()*(size-100)
}

func (b *bot) targetLocked(now time.Time) string {
	r := b.sw.cfg.AttackRange
	for id, e := range b.seen {
		if e.dead || now.Sub(e.at) > time.Second {
			continue
		}
		if dx, dy := e.x-b.x, e.y-b.y; dx*dx+dy*dy <= r*r {
			return id
		}
	}
	return ""
}

// expireLocked forgets moves that never got an update and commands that
// never got an answer within 10s (counted, not silently dropped).
func (b *bot) expireLocked(now time.Time) {
	i := 0
	for i < len(b.moves) && now.Sub(b.moves[i].at) > 10*time.Second {
		i++
	}
	b.moves = b.moves[i:]
	for s, sc := range b.pending {
		if now.Sub(sc.at) > 30*time.Second {
			delete(b.pending, s)
			b.sw.C.Unanswered.Add(1)
		}
	}
	if len(b.seen) > 256 {
		for id, e := range b.seen {
			if now.Sub(e.at) > 2*time.Second {
				delete(b.seen, id)
			}
		}
	}
}

func (b *bot) dropMoveLocked(seq uint64) {
	for i := range b.moves {
		if b.moves[i].seq == seq {
			b.moves = append(b.moves[:i], b.moves[i+1:]...)
			return
		}
	}
}

func (b *bot) onPacket(p *schema.ServerPacket) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	switch body := p.Body.(type) {
	case *schema.ServerPacket_Ack:
		sc, ok := b.pending[p.AckSeq]
		if !ok {
			return
		}
		delete(b.pending, p.AckSeq)
		id := wire.CommandID(b.session, p.AckSeq)
		b.acked = append(b.acked, AckRecord{ID: id, Kind: sc.kind, StreamSeq: body.Ack.StreamSeq, Duplicate: body.Ack.Duplicate})
		b.sw.C.Acked.Add(1)
		if body.Ack.Duplicate {
			b.sw.C.Duplicates.Add(1)
		}
		b.sw.Ack.Record(now.Sub(sc.at))
		b.sw.record(record{T: "ack", Bot: b.id, ID: id, Kind: sc.kind, Seq: p.AckSeq, Stream: body.Ack.StreamSeq})
	case *schema.ServerPacket_Busy:
		if sc, ok := b.pending[p.AckSeq]; ok {
			delete(b.pending, p.AckSeq)
			b.dropMoveLocked(p.AckSeq)
			b.sw.C.Busy.Add(1)
			b.sw.record(record{T: "busy", Bot: b.id, ID: wire.CommandID(b.session, p.AckSeq), Kind: sc.kind, Seq: p.AckSeq})
		}
	case *schema.ServerPacket_Error:
		code := body.Error.Code.String()
		if body.Error.Code == schema.ErrorCode_ERROR_CODE_REJECTED {
			// The world refused a command that was accepted earlier (rules).
			b.sw.C.Rejected.Add(1)
			b.sw.C.rejectReason(body.Error.Message)
			b.dropMoveLocked(p.AckSeq)
			b.resync = true
			b.reconcileLocked(p.AckSeq)
			if strings.Contains(body.Error.Message, "blocked") || strings.Contains(body.Error.Message, "outside") {
				// Walked into a wall: head somewhere else, like a player would.
				b.hasWay = false
				b.blocked++
			}
			b.sw.record(record{T: "rejected", Bot: b.id, ID: wire.CommandID(b.session, p.AckSeq), Seq: p.AckSeq, Detail: body.Error.Message})
			return
		}
		b.sw.C.Errors.Add(1)
		b.sw.C.errorCode(code)
		if _, ok := b.pending[p.AckSeq]; ok {
			delete(b.pending, p.AckSeq)
			b.dropMoveLocked(p.AckSeq)
		}
		b.sw.record(record{T: "error", Bot: b.id, ID: wire.CommandID(b.session, p.AckSeq), Seq: p.AckSeq, Detail: code + ": " + body.Error.Message})
	case *schema.ServerPacket_Update:
		b.sw.C.Updates.Add(1)
		zu := body.Update.GetZoneUpdate()
		if zu == nil || zu.Zone != b.zone {
			return
		}
		for _, e := range zu.Entities {
			if e.Id != b.player {
				b.seen[e.Id] = seenEntity{x: e.X, y: e.Y, dead: e.Dead, at: now}
				continue
			}
			n := 0
			for n < len(b.moves) && b.moves[n].seq <= e.LastInputSeq {
				b.sw.Lat.Record(now.Sub(b.moves[n].at))
				n++
			}
			b.moves = b.moves[n:]
			b.dead = e.Dead
			if (b.resync || e.LastInputSeq >= b.lastMove) && !b.crossing {
				// The server has applied our latest input, or refused one:
				// its position is the truth.
				b.x, b.y = e.X, e.Y
				b.resync = false
			}
		}
		for _, id := range zu.Removed {
			delete(b.seen, id)
		}
	case *schema.ServerPacket_ZoneChanged:
		zc := body.ZoneChanged
		if zc.Zone != b.zone {
			b.sw.C.Crossings.Add(1)
		}
		b.zone, b.x, b.y = zc.Zone, zc.X, zc.Y
		b.crossing, b.hasWay = false, false
		b.hist = b.hist[:0]
		b.moves = b.moves[:0]
		clear(b.seen)
	}
}

// reconcileLocked handles the refusal of move seq like a game client: the
// player is where the last move before it that was not refused put it, and
// later moves (computed from the refused position) will be refused too, so
// the next moves start again from there.
func (b *bot) reconcileLocked(seq uint64) {
	idx := -1
	for i := range b.hist {
		if b.hist[i].seq == seq {
			b.hist[i].rejected = true
			idx = i
			break
		}
	}
	if idx < 0 || b.crossing {
		return
	}
	for i := idx - 1; i >= 0; i-- {
		h := b.hist[i]
		if !h.rejected && h.zone == b.zone {
			b.x, b.y = h.x, h.y
			return
		}
	}
}

// drain waits (up to DrainTimeout) for the answers still due.
func (b *bot) drain(conn *client.Conn) {
	deadline := time.Now().Add(b.sw.cfg.DrainTimeout)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		n := len(b.pending)
		b.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-conn.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func clampIn(v, size float32) float32 {
	if v < 0 {
		return 0
	}
	if v >= size {
		return size - 0.01
	}
	return v
}

func sortU64(s []uint64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

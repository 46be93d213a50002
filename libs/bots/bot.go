package bots

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

type state uint8

const (
	stDown    state = iota // no connection: the bot's goroutine is (re)connecting
	stJoining              // Join sent: wait to be located (at most 1s) and one move period
	stPlaying
	stLeft // Leave sent: re-join at rejoinAt
)

// protocolVersion is the wire protocol the bots speak: 3, so that a zone
// tick's cell views arrive in one Updates frame (wirefast.go reads both
// shapes).
const protocolVersion = 3

type kind uint8

const (
	kMove kind = iota
	kChat
	kAttack
	kJoin
	kLeave
)

var kindNames = [...]string{"move", "chat", "attack", "join", "leave"}

// sentCmd is a command awaiting its answer: enough to encode it again for a
// resend with the same seq (same command id).
type sentCmd struct {
	seq     uint64
	at      time.Time
	kind    kind
	scope   schema.ChatScope
	x, y    float32
	text    string // chat text, attack target or join zone
	resends int
}

type moveAt struct {
	seq uint64
	at  time.Time
}

// moveFIFO holds the moves awaiting their update, ascending seq, in a
// buffer that is compacted instead of reallocated.
type moveFIFO struct {
	buf  []moveAt
	head int
}

func (f *moveFIFO) push(m moveAt) {
	if f.head > 0 && len(f.buf) == cap(f.buf) {
		n := copy(f.buf, f.buf[f.head:])
		f.buf, f.head = f.buf[:n], 0
	}
	f.buf = append(f.buf, m)
}

func (f *moveFIFO) live() []moveAt { return f.buf[f.head:] }

func (f *moveFIFO) pop(n int) {
	f.head += n
	if f.head >= len(f.buf) {
		f.buf, f.head = f.buf[:0], 0
	}
}

func (f *moveFIFO) reset() { f.buf, f.head = f.buf[:0], 0 }

func (f *moveFIFO) drop(seq uint64) {
	l := f.live()
	for i := range l {
		if l[i].seq == seq {
			copy(l[i:], l[i+1:])
			f.buf = f.buf[:len(f.buf)-1]
			return
		}
	}
}

type movePos struct {
	seq      uint64
	x, y     float32
	zone     string
	rejected bool
}

// bot is one player. Its goroutine (run) connects and then reads; one
// scheduler goroutine runs its turns; both take mu for the shared state.
// Writes never overlap: connect writes while st == stDown, the scheduler
// only when st != stDown.
type bot struct {
	sw      *Swarm
	id      int
	name    string
	ws      bool
	crosser bool
	trust   bool       // continues from Welcome.last_seq on a resume (Config.TrustLastSeq)
	rng     *rand.Rand // scheduler only
	lrng    *rand.Rand // the bot's goroutine only
	wbuf    []byte     // scheduler only
	cbuf    []byte     // the bot's goroutine only
	rp      schema.ServerPacket

	mu sync.Mutex
	// encoding scratch (guarded by mu): one packet whose body points at
	// reused messages, so encoding a turn allocates nothing.
	pkt    schema.ClientPacket
	mv     schema.Move
	chat   schema.Chat
	att    schema.Attack
	join   schema.Join
	hello  schema.Hello
	ping   schema.Ping
	bMove  schema.ClientPacket_Move
	bChat  schema.ClientPacket_Chat
	bAtt   schema.ClientPacket_Attack
	bJoin  schema.ClientPacket_Join
	bLeave schema.ClientPacket_Leave
	bHello schema.ClientPacket_Hello
	bPing  schema.ClientPacket_Ping

	gw        int
	tr        transport
	st        state
	cnt       counters
	session   string
	player    string
	token     string
	gatewayID string
	online    bool
	zone      string
	seq       uint64 // highest seq used (a new connection continues above it)
	maxAcked  uint64 // highest seq acknowledged in this session
	pending   []sentCmd
	moves     moveFIFO
	hist      []movePos // recent moves for reconciliation
	acked     []AckRecord
	resendQ   []uint64
	x, y      float32
	wx, wy    float32
	hasWay    bool
	crossing  bool
	crossAt   time.Time
	located   bool
	joinAt    time.Time
	left      bool
	rejoinAt  time.Time
	dead      bool
	resync    bool
	lastMove  uint64
	lastMvAt  time.Time
	target    []byte
	targetAt  time.Time
	targetD2  float32
	nextPing  time.Time
	nextExp   time.Time
	lostAt    time.Time
	resumeReq bool
	switchGW  bool
	now       time.Time // time of the frame being read (reader)
	ent       entity    // scan scratch (reader)
}

func newBot(s *Swarm, i int, zone string, rng *rand.Rand) *bot {
	cfg := &s.cfg
	b := &bot{
		sw: s, id: i, name: fmt.Sprintf("%s-%d", cfg.NamePrefix, i), gw: i % len(cfg.Gateways), zone: zone,
		rng:  rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1)),
		lrng: rand.New(rand.NewPCG(cfg.Seed^0xbad, uint64(i)+1)),
	}
	g := cfg.Gateways[b.gw]
	b.ws = g.WS != "" && (g.TCP == "" || rng.Float64() < cfg.WSFraction)
	b.crosser = rng.Float64() < cfg.CrosserFraction
	b.trust = rng.Float64() < cfg.TrustLastSeq
	size := cfg.Map.ZoneSize
	b.x = size*0.1 + rng.Float32()*size*0.8
	b.y = size*0.1 + rng.Float32()*size*0.8
	b.bMove.Move, b.bChat.Chat, b.bAtt.Attack, b.bJoin.Join = &b.mv, &b.chat, &b.att, &b.join
	b.bLeave.Leave, b.bHello.Hello, b.bPing.Ping = &schema.Leave{}, &b.hello, &b.ping
	b.nextPing = time.Now().Add(time.Duration(b.rng.Int64N(int64(2 * time.Second))))
	return b
}

func (b *bot) addrLocked() string {
	g := b.sw.cfg.Gateways[b.gw]
	if (b.ws && g.WS != "") || g.TCP == "" {
		return g.WS
	}
	return g.TCP
}

// frame appends the length-prefixed encoding of b.pkt with seq.
func (b *bot) frame(dst []byte, seq uint64) []byte {
	b.pkt.Seq = seq
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst, _ = proto.MarshalOptions{}.MarshalAppend(dst, &b.pkt)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-wire.FrameHeaderSize))
	return dst
}

func (b *bot) encodeLocked(dst []byte, sc *sentCmd) []byte {
	switch sc.kind {
	case kMove:
		b.mv.X, b.mv.Y = sc.x, sc.y
		b.pkt.Body = &b.bMove
	case kChat:
		b.chat.Text, b.chat.Scope = sc.text, sc.scope
		b.pkt.Body = &b.bChat
	case kAttack:
		b.att.TargetId = sc.text
		b.pkt.Body = &b.bAtt
	case kJoin:
		b.join.Zone = sc.text
		b.pkt.Body = &b.bJoin
	case kLeave:
		b.pkt.Body = &b.bLeave
	}
	return b.frame(dst, sc.seq)
}

// sendLocked assigns the next seq to a new command, records it as pending
// (before the write, so that its answer always finds it) and encodes it.
func (b *bot) sendLocked(dst []byte, sc sentCmd, now time.Time) []byte {
	b.seq++
	sc.seq, sc.at = b.seq, now
	b.pending = append(b.pending, sc)
	b.cnt.sent++
	switch sc.kind {
	case kMove:
		b.cnt.moves++
		b.moves.push(moveAt{seq: sc.seq, at: now})
		b.lastMove = sc.seq
		if len(b.hist) >= 64 {
			b.hist = append(b.hist[:0], b.hist[32:]...)
		}
		b.hist = append(b.hist, movePos{seq: sc.seq, x: sc.x, y: sc.y, zone: b.zone})
	case kChat:
		b.cnt.chats++
	case kAttack:
		b.cnt.attacks++
	case kJoin:
		b.cnt.joins++
	case kLeave:
		b.cnt.leaves++
	}
	if b.sw.rec != nil {
		b.sw.record(record{T: "sent", Bot: b.id, ID: wire.CommandID(b.session, sc.seq), Kind: kindNames[sc.kind], Seq: sc.seq})
	}
	return b.encodeLocked(dst, &b.pending[len(b.pending)-1])
}

func (b *bot) findLocked(seq uint64) int {
	for i := range b.pending {
		if b.pending[i].seq == seq {
			return i
		}
	}
	return -1
}

func (b *bot) removeLocked(i int) sentCmd {
	sc := b.pending[i]
	copy(b.pending[i:], b.pending[i+1:])
	b.pending = b.pending[:len(b.pending)-1]
	return sc
}

func (b *bot) abandonLocked() {
	b.cnt.unanswered += int64(len(b.pending))
	b.pending = b.pending[:0]
	b.resendQ = b.resendQ[:0]
	b.moves.reset()
}

func (b *bot) closeConn() {
	b.mu.Lock()
	tr := b.tr
	b.mu.Unlock()
	if tr != nil {
		tr.close()
	}
}

// run connects (resuming the session after a drop), reads until the
// connection ends, and again, until the run is over.
func (b *bot) run(playCtx, connCtx context.Context, delay time.Duration) {
	select {
	case <-playCtx.Done():
		return
	case <-time.After(delay):
	}
	backoff := 100 * time.Millisecond
	for playCtx.Err() == nil {
		tr, err := b.connect(playCtx)
		if err != nil {
			if playCtx.Err() != nil {
				return
			}
			b.mu.Lock()
			b.cnt.connectFail++
			if n := len(b.sw.cfg.Gateways); n > 1 {
				// Like a client with a list of gateway addresses: try the
				// next one (a dead gateway refuses at once).
				b.gw = (b.gw + 1) % n
			}
			b.mu.Unlock()
			select {
			case <-playCtx.Done():
				return
			case <-time.After(backoff + time.Duration(b.lrng.Int64N(int64(backoff)))):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		b.sw.connected.Add(1)
		for {
			p, err := tr.read()
			if err != nil {
				break
			}
			b.onFrame(p)
		}
		b.sw.connected.Add(-1)
		tr.close()
		b.mu.Lock()
		b.tr, b.st = nil, stDown
		deliberate := b.resumeReq
		b.resumeReq = false
		if playCtx.Err() != nil || connCtx.Err() != nil {
			b.abandonLocked()
			b.mu.Unlock()
			return
		}
		if deliberate {
			b.cnt.resumes++
			if n := len(b.sw.cfg.Gateways); b.switchGW && n > 1 {
				b.gw = (b.gw + 1 + b.lrng.IntN(n-1)) % n
			}
		} else {
			b.cnt.disconnects++
			if b.lostAt.IsZero() {
				b.lostAt = time.Now()
				b.sw.lost.Add(1)
			}
		}
		b.mu.Unlock()
	}
}

// connect dials, says Hello (resuming the session when there is one) and
// re-establishes the bot's place: resends the unanswered commands the
// gateway has not taken (same seq = same command id) and joins the zone
// again on a fresh session, on another gateway, or when the gateway knows
// nothing of the session.
func (b *bot) connect(ctx context.Context) (transport, error) {
	b.mu.Lock()
	addr := b.addrLocked()
	resuming := b.session != ""
	b.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tr, err := dial(dctx, addr)
	if err != nil {
		return nil, err
	}
	var token string
	if !resuming && b.sw.cfg.Token != nil {
		if token, err = b.sw.cfg.Token(b.id); err != nil {
			tr.close()
			return nil, fmt.Errorf("token of bot %d: %w", b.id, err)
		}
	}
	b.mu.Lock()
	b.hello.Reset()
	switch {
	case resuming:
		b.hello.Token, b.hello.ResumeSession = b.token, b.session
	case token != "":
		b.hello.Token = token
	default:
		b.hello.Name = b.name
	}
	b.hello.ClientName = "realmstream-bots"
	b.hello.ProtocolVersion = protocolVersion
	b.pkt.Body = &b.bHello
	b.seq++
	helloSeq := b.seq
	buf := b.frame(b.cbuf[:0], helloSeq)
	b.mu.Unlock()
	if err := tr.write(buf); err != nil {
		tr.close()
		return nil, err
	}
	tr.setReadDeadline(time.Now().Add(5 * time.Second))
	var w *schema.Welcome
	for w == nil {
		p, err := tr.read()
		if err != nil {
			tr.close()
			return nil, fmt.Errorf("waiting for Welcome from %s: %w", addr, err)
		}
		var sp schema.ServerPacket
		if err := proto.Unmarshal(p, &sp); err != nil {
			tr.close()
			return nil, fmt.Errorf("bad packet from %s: %w", addr, err)
		}
		if e := sp.GetError(); e != nil && sp.AckSeq == helloSeq {
			tr.close()
			b.mu.Lock()
			if resuming {
				// The session cannot be resumed (expired, unknown):
				// the next attempt logs in afresh.
				b.abandonLocked()
				b.session, b.token, b.gatewayID, b.maxAcked = "", "", "", 0
			}
			b.mu.Unlock()
			return nil, fmt.Errorf("hello refused by %s: %s %s", addr, e.Code, e.Message)
		}
		w = sp.GetWelcome()
	}
	tr.setReadDeadline(time.Time{})
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	prevGW := b.gatewayID
	b.session, b.player, b.token, b.gatewayID = w.SessionId, w.PlayerId, w.Token, w.GatewayId
	if !resuming {
		b.maxAcked = 0
	}
	b.cnt.connects++
	if !b.online {
		b.online = true
		b.sw.everOnline.Add(1)
	}
	if !b.lostAt.IsZero() {
		b.sw.Reconnect.Record(now.Sub(b.lostAt))
		b.lostAt = time.Time{}
		b.sw.lost.Add(-1)
	}
	if w.LastSeq < b.maxAcked {
		// The gateway acknowledged a higher seq of this session: its
		// last_seq is wrong (a client trusting it would reuse command ids).
		b.cnt.seqRewinds++
	}
	b.seq = max(b.seq, w.LastSeq)
	b.moves.reset()
	b.resendQ = b.resendQ[:0]
	elsewhere := resuming && prevGW != "" && w.GatewayId != "" && prevGW != w.GatewayId
	if elsewhere {
		b.cnt.resumesElsewhere++
	}
	buf = b.cbuf[:0]
	if !resuming || w.LastSeq == 0 {
		// The gateway knows nothing of this session: what was unanswered
		// is abandoned (never acknowledged, so never promised).
		b.abandonLocked()
	} else {
		// Resend what the gateway has not taken, in order, with the
		// original seqs (idempotent by command id). What it took before
		// the drop has its answer on the old connection: outcome unknown.
		keep := b.pending[:0]
		for _, sc := range b.pending {
			if sc.seq <= w.LastSeq {
				b.cnt.unanswered++
				continue
			}
			sc.at = now
			keep = append(keep, sc)
			buf = b.encodeLocked(buf, &keep[len(keep)-1])
			b.cnt.resent++
			if b.sw.rec != nil {
				b.sw.record(record{T: "resend", Bot: b.id, ID: wire.CommandID(b.session, sc.seq), Kind: kindNames[sc.kind], Seq: sc.seq})
			}
		}
		b.pending = keep
	}
	if b.trust && resuming {
		// Continue from what the gateway says it has taken, above the
		// resent commands; a last_seq below own reuses seqs.
		b.seq = w.LastSeq
		for _, sc := range b.pending {
			b.seq = max(b.seq, sc.seq)
		}
	}
	b.tr = tr
	switch {
	case b.left:
		b.st = stLeft // the scheduler re-joins at rejoinAt
	case !resuming || w.LastSeq == 0 || elsewhere || b.crossing:
		// Join (again): a new gateway subscribes to the zone's updates,
		// and a crossing whose ZoneChanged was lost is settled by the world.
		b.crossing = false
		buf = b.sendLocked(buf, sentCmd{kind: kJoin, text: b.zone}, now)
		b.st, b.joinAt, b.located = stJoining, now, false
	default:
		b.st = stPlaying
	}
	b.cbuf = buf
	if len(buf) > 0 {
		if err := tr.write(buf); err != nil {
			tr.close() // the reader sees it at once
		}
	}
	return tr, nil
}

// turn is one scheduled step of the bot (a scheduler goroutine).
func (b *bot) turn(ctx context.Context, now time.Time) {
	b.mu.Lock()
	tr := b.tr
	if tr == nil || b.st == stDown {
		b.mu.Unlock()
		return
	}
	buf, closeAfter := b.turnLocked(b.wbuf[:0], now)
	b.wbuf = buf
	b.mu.Unlock()
	if len(buf) > 0 {
		if err := tr.write(buf); err != nil {
			tr.close()
			return
		}
	}
	if closeAfter {
		tr.close()
	}
}

func (b *bot) turnLocked(buf []byte, now time.Time) ([]byte, bool) {
	cfg := &b.sw.cfg
	period := b.sw.period
	dt := period.Seconds()
	if now.After(b.nextExp) {
		b.expireLocked(now)
		b.nextExp = now.Add(time.Second)
	}
	if cfg.PingEvery > 0 && !now.Before(b.nextPing) {
		b.seq++
		b.ping.ClientTimeNs = now.UnixNano()
		b.pkt.Body = &b.bPing
		buf = b.frame(buf, b.seq)
		b.nextPing = now.Add(cfg.PingEvery)
	}
	for _, s := range b.resendQ {
		if i := b.findLocked(s); i >= 0 {
			sc := &b.pending[i]
			sc.at = now
			buf = b.encodeLocked(buf, sc)
			b.cnt.resent++
		}
	}
	b.resendQ = b.resendQ[:0]
	switch b.st {
	case stLeft:
		if now.Before(b.rejoinAt) {
			return buf, false
		}
		b.left = false
		b.cnt.rejoins++
		buf = b.sendLocked(buf, sentCmd{kind: kJoin, text: b.zone}, now)
		b.st, b.joinAt, b.located = stJoining, now, false
		return buf, false
	case stJoining:
		// The world times a move from the join; wait to see where it put us.
		if since := now.Sub(b.joinAt); since < period || (!b.located && since < time.Second) {
			return buf, false
		}
		b.st, b.lastMvAt = stPlaying, now.Add(-period)
	}
	if b.crossing {
		if now.Sub(b.crossAt) < 3*time.Second {
			return buf, false // wait for ZoneChanged
		}
		b.crossing = false // the crossing did not happen: stay in the zone
		b.x, b.y = clampIn(b.x, cfg.Map.ZoneSize), clampIn(b.y, cfg.Map.ZoneSize)
		b.hasWay = false
	}
	if cfg.ResumeEvery > 0 && b.rng.Float64() < dt/cfg.ResumeEvery.Seconds() {
		b.resumeReq = true
		b.switchGW = len(cfg.Gateways) > 1 && b.rng.Float64() < cfg.ResumeElsewhere
		return buf, true
	}
	if cfg.LeaveEvery > 0 && b.rng.Float64() < dt/cfg.LeaveEvery.Seconds() {
		buf = b.sendLocked(buf, sentCmd{kind: kLeave}, now)
		b.left, b.st = true, stLeft
		b.rejoinAt = now.Add(time.Second + time.Duration(b.rng.Int64N(int64(time.Second))))
		return buf, false
	}
	if b.dead {
		return buf, false // wait for the respawn
	}
	if !b.hasWay {
		b.pickWaypointLocked()
	}
	// The step is the speed times the time since the last move, so bursts
	// of a late scheduler stay within the speed limit.
	el := min(now.Sub(b.lastMvAt).Seconds(), 2*dt)
	b.lastMvAt = now
	step := cfg.Speed * float32(el)
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
	buf = b.sendLocked(buf, sentCmd{kind: kMove, x: b.x, y: b.y}, now)
	if b.crossing {
		return buf, false
	}
	if cfg.ChatEvery > 0 && b.rng.Float64() < dt/cfg.ChatEvery.Seconds() {
		scope := schema.ChatScope_CHAT_SCOPE_ZONE
		if b.rng.IntN(2) == 0 {
			scope = schema.ChatScope_CHAT_SCOPE_NEARBY
		}
		buf = b.sendLocked(buf, sentCmd{kind: kChat, text: fmt.Sprintf("%s says hi #%d", b.name, b.seq+1), scope: scope}, now)
	}
	if cfg.AttackEvery > 0 && len(b.target) > 0 && now.Sub(b.targetAt) <= time.Second && b.rng.Float64() < dt/cfg.AttackEvery.Seconds() {
		buf = b.sendLocked(buf, sentCmd{kind: kAttack, text: string(b.target)}, now)
		b.target = b.target[:0] // a sighting is used once: it may have moved away
	}
	return buf, false
}

func (b *bot) pickWaypointLocked() {
	m := &b.sw.cfg.Map
	size := m.ZoneSize
	b.hasWay = true
	if b.crosser && b.rng.IntN(3) == 0 {
		// Head for a border that has a zone behind it.
		for range 8 {
			dx, dy := b.rng.IntN(3)-1, b.rng.IntN(3)-1
			if dx == 0 && dy == 0 {
				continue
			}
			if _, ok := m.Neighbour(b.zone, dx, dy); !ok {
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
		b.wx = size/2 - size*0.12 + b.rng.Float32()*size*0.24
		b.wy = size/2 - size*0.12 + b.rng.Float32()*size*0.24
		return
	}
	b.wx = size*0.05 + b.rng.Float32()*size*0.9
	b.wy = size*0.05 + b.rng.Float32()*size*0.9
}

// expireLocked forgets moves that got no update within 10s and counts
// commands with no answer within 30s as unanswered.
func (b *bot) expireLocked(now time.Time) {
	l := b.moves.live()
	i := 0
	for i < len(l) && now.Sub(l[i].at) > 10*time.Second {
		i++
	}
	b.moves.pop(i)
	keep := b.pending[:0]
	for _, sc := range b.pending {
		if now.Sub(sc.at) > 30*time.Second {
			b.cnt.unanswered++
			continue
		}
		keep = append(keep, sc)
	}
	b.pending = keep
}

// onFrame handles one server packet (the bot's goroutine).
func (b *bot) onFrame(p []byte) {
	ackSeq, field, body, err := scanServer(p)
	now := time.Now()
	if err != nil {
		b.mu.Lock()
		b.cnt.errors++
		b.mu.Unlock()
		b.sw.errorCode("MALFORMED_SERVER_PACKET", err.Error())
		return
	}
	switch field {
	case fServerAck:
		ss, dup, err := scanAck(body)
		if err != nil {
			return
		}
		b.mu.Lock()
		b.onAckLocked(ackSeq, ss, dup, now)
		b.mu.Unlock()
	case fServerUpdate, fServerUpdates:
		b.mu.Lock()
		b.cnt.updates++
		b.now = now
		n, _ := scanUpdate(body, b, &b.ent)
		b.cnt.cells += int64(n)
		b.mu.Unlock()
	default:
		if err := proto.Unmarshal(p, &b.rp); err != nil {
			return
		}
		b.mu.Lock()
		b.onOtherLocked(&b.rp, now)
		b.mu.Unlock()
	}
}

func (b *bot) onAckLocked(seq, streamSeq uint64, dup bool, now time.Time) {
	i := b.findLocked(seq)
	if i < 0 {
		return
	}
	sc := b.removeLocked(i)
	b.maxAcked = max(b.maxAcked, seq)
	b.cnt.acked++
	if dup {
		b.cnt.dups++
	}
	b.sw.Ack.Record(now.Sub(sc.at))
	if b.sw.cfg.KeepAcked || b.sw.rec != nil {
		id := wire.CommandID(b.session, seq)
		if b.sw.cfg.KeepAcked {
			k := kindNames[sc.kind]
			b.acked = append(b.acked, AckRecord{ID: id, Kind: k, StreamSeq: streamSeq, Duplicate: dup, Digest: Digest(k, sc.x, sc.y, sc.text)})
		}
		b.sw.record(record{T: "ack", Bot: b.id, ID: id, Kind: kindNames[sc.kind], Seq: seq, Stream: streamSeq})
	}
}

// entity is called by scanUpdate for every entity of an update (mu held).
func (b *bot) entity(zone []byte, e *entity) {
	if string(zone) != b.zone {
		return
	}
	if string(e.id) != b.player {
		if e.dead {
			return
		}
		r := b.sw.cfg.AttackRange
		dx, dy := e.x-b.x, e.y-b.y
		if d2 := dx*dx + dy*dy; d2 <= r*r && (len(b.target) == 0 || d2 < b.targetD2 || b.now.Sub(b.targetAt) > 500*time.Millisecond) {
			b.target = append(b.target[:0], e.id...)
			b.targetAt, b.targetD2 = b.now, d2
		}
		return
	}
	l := b.moves.live()
	n := 0
	for n < len(l) && l[n].seq <= e.lastSeq {
		b.sw.Lat.Record(b.now.Sub(l[n].at))
		n++
	}
	b.moves.pop(n)
	if b.dead && !e.dead {
		// Respawned: the world put us at a spawn point. Moves from before
		// the death are no position to fall back to (a refusal of the first
		// move from the spawn point would put the bot back where it died,
		// and its next moves would be refused as too fast).
		b.hist = b.hist[:0]
		b.resync = true
	}
	b.dead = e.dead
	b.located = true
	if (b.resync || e.lastSeq >= b.lastMove) && !b.crossing {
		// The world has applied our latest input, or refused one: its
		// position is the truth.
		b.x, b.y = e.x, e.y
		b.resync = false
	}
}

func (b *bot) onOtherLocked(p *schema.ServerPacket, now time.Time) {
	switch body := p.Body.(type) {
	case *schema.ServerPacket_Pong:
		if t := body.Pong.ClientTimeNs; t > 0 {
			b.sw.Ping.Record(now.Sub(time.Unix(0, t)))
		}
	case *schema.ServerPacket_Busy:
		if i := b.findLocked(p.AckSeq); i >= 0 {
			sc := b.removeLocked(i)
			b.moves.drop(p.AckSeq)
			b.cnt.busy++
			if b.sw.rec != nil {
				b.sw.record(record{T: "busy", Bot: b.id, ID: wire.CommandID(b.session, p.AckSeq), Kind: kindNames[sc.kind], Seq: p.AckSeq})
			}
		}
	case *schema.ServerPacket_Error:
		e := body.Error
		switch e.Code {
		case schema.ErrorCode_ERROR_CODE_REJECTED:
			// The world refused a command that was acknowledged earlier.
			b.cnt.rejected++
			if strings.HasPrefix(e.Message, "too fast") {
				b.cnt.tooFast++
			}
			b.sw.rejectReason(e.Message)
			b.moves.drop(p.AckSeq)
			b.resync = true
			b.reconcileLocked(p.AckSeq)
			if strings.Contains(e.Message, "blocked") || strings.Contains(e.Message, "outside") {
				b.hasWay = false // walked into a wall: head somewhere else
			}
			if b.sw.rec != nil {
				b.sw.record(record{T: "rejected", Bot: b.id, ID: wire.CommandID(b.session, p.AckSeq), Seq: p.AckSeq, Detail: e.Message})
			}
			return
		case schema.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN:
			// The gateway does not know whether JetStream stored it: send
			// it again with the same seq (deduplicated by command id).
			b.cnt.outcomeUnknown++
			if i := b.findLocked(p.AckSeq); i >= 0 {
				if b.pending[i].resends < 3 {
					b.pending[i].resends++
					b.resendQ = append(b.resendQ, p.AckSeq)
				} else {
					b.removeLocked(i)
					b.cnt.unanswered++
				}
			}
			return
		}
		b.cnt.errors++
		code := e.Code.String()
		b.sw.errorCode(code, e.Message)
		if i := b.findLocked(p.AckSeq); i >= 0 {
			b.removeLocked(i)
			b.moves.drop(p.AckSeq)
		}
		if b.sw.rec != nil {
			b.sw.record(record{T: "error", Bot: b.id, ID: wire.CommandID(b.session, p.AckSeq), Seq: p.AckSeq, Detail: code + ": " + e.Message})
		}
	case *schema.ServerPacket_ZoneChanged:
		zc := body.ZoneChanged
		if zc.Zone != b.zone {
			b.cnt.crossings++
		}
		b.zone, b.x, b.y = zc.Zone, zc.X, zc.Y
		b.crossing, b.hasWay, b.located = false, false, true
		b.hist = b.hist[:0]
		b.moves.reset()
		b.target = b.target[:0]
	}
}

// reconcileLocked handles the refusal of move seq like a game client: the
// player is where the last move before it that was not refused put it.
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
		if h := b.hist[i]; !h.rejected && h.zone == b.zone {
			b.x, b.y = h.x, h.y
			return
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

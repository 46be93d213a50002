// Package rules is the game of one zone: Decide validates a command against
// the zone state and returns the one event it causes; Tick returns the events
// due at a time (respawns); Apply folds an event into the state.
//
// Apply is a pure function of (state, event): it reads no clock and draws no
// random numbers; times and positions are decided by Decide/Tick and carried
// in the event. Replaying a zone's log therefore rebuilds exactly the state
// its owner had. Every command causes exactly one event (possibly
// CommandRejected) or none (a duplicate), so an interrupted append never
// leaves half of a command's effects in the log.
package rules

import (
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/worldmap"
)

// Rect is an axis-aligned static obstacle in zone coordinates.
type Rect struct{ X0, Y0, X1, Y1 float32 }

func (r Rect) contains(x, y float32) bool { return x >= r.X0 && x <= r.X1 && y >= r.Y0 && y <= r.Y1 }

const (
	defaultMaxSpeed = 250
	defaultMaxStep  = 500 * time.Millisecond
)

// Config holds the rules' parameters. The same obstacles stand in every zone.
type Config struct {
	Map      worldmap.Map
	MaxSpeed float32       // units per second; default 250
	MaxStep  time.Duration // movement credit a player at rest accumulates (pace budget); default 500ms
	// MaxAhead bounds how far past the tick time a move's receive time
	// (Command.received_at_ns, the gateway's clock) is believed: clock skew
	// between gateway and world, and a forged far-future time. Default 250ms.
	MaxAhead       time.Duration
	AttackRange    float32       // default 60
	AttackDamage   int32         // default 25
	AttackCooldown time.Duration // default 800ms
	RespawnDelay   time.Duration // default 3s
	MaxHP          int32         // default 100
	ChatRadius     float32       // nearby chat reach; default 150
	MaxChatLen     int           // bytes; default wire.MaxChatBytes (the gateway's limit, libs/wire/limits.go)
	Obstacles      []Rect        // default: DefaultObstacles()
	// KeepTransfers bounds the accepted transfer ids kept for dedupe. Default 4096.
	KeepTransfers int
	// IdleTimeout removes a player without any command for this long (a
	// client that vanished without Leave). Default 10 minutes.
	IdleTimeout time.Duration
}

// DefaultObstacles are a few walls and rocks inside every zone, away from edges.
func DefaultObstacles() []Rect {
	var out []Rect
	for _, o := range worldmap.DefaultObstacles() {
		out = append(out, Rect{o.X0, o.Y0, o.X1, o.Y1})
	}
	return out
}

// Default returns the default rules on the default map.
func Default() Config {
	c := Config{Map: worldmap.Default()}
	c = c.withDefaults()
	return c
}

func (c Config) withDefaults() Config {
	if c.Map.Cols == 0 {
		c.Map = worldmap.Default()
	}
	if c.MaxSpeed == 0 {
		c.MaxSpeed = defaultMaxSpeed
	}
	if c.MaxStep == 0 {
		c.MaxStep = defaultMaxStep
	}
	if c.MaxAhead == 0 {
		c.MaxAhead = 250 * time.Millisecond
	}
	if c.AttackRange == 0 {
		c.AttackRange = 60
	}
	if c.AttackDamage == 0 {
		c.AttackDamage = 25
	}
	if c.AttackCooldown == 0 {
		c.AttackCooldown = 800 * time.Millisecond
	}
	if c.RespawnDelay == 0 {
		c.RespawnDelay = 3 * time.Second
	}
	if c.MaxHP == 0 {
		c.MaxHP = 100
	}
	if c.ChatRadius == 0 {
		c.ChatRadius = 150
	}
	if c.MaxChatLen == 0 {
		c.MaxChatLen = wire.MaxChatBytes
	}
	if c.Obstacles == nil {
		c.Obstacles = DefaultObstacles()
	}
	if c.KeepTransfers == 0 {
		c.KeepTransfers = 4096
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	return c
}

// New returns c with defaults filled in, or an error.
func New(c Config) (*Config, error) {
	c = c.withDefaults()
	if err := c.Map.Validate(); err != nil {
		return nil, err
	}
	if c.MaxSpeed < 0 || c.MaxAhead < 0 || c.AttackRange < 0 || c.AttackDamage < 0 || c.MaxHP < 0 || c.ChatRadius < 0 {
		return nil, fmt.Errorf("rules: negative parameter")
	}
	return &c, nil
}

// NewState returns the empty state of zone.
func NewState(zone string) *schema.ZoneSnapshot {
	return &schema.ZoneSnapshot{Zone: zone, Players: map[string]*schema.PlayerState{}, Sessions: map[string]uint64{}}
}

// EventID names the event of a command in zone: it is the Nats-Msg-Id of the
// append, so a retried append of the same decision is deduplicated.
func EventID(zone, commandID string) string { return zone + "/c/" + commandID }

// TransferID names the transfer caused by command commandID from zone to to.
func TransferID(from, to, commandID string) string { return from + ">" + to + "/" + commandID }

func (c *Config) event(s *schema.ZoneSnapshot, cmd *schema.Command, now int64) *schema.Event {
	return &schema.Event{EventId: EventID(s.Zone, cmd.CommandId), Zone: s.Zone, TimestampNs: now,
		CommandId: cmd.CommandId, PlayerId: cmd.PlayerId, Tick: s.Tick}
}

func (c *Config) reject(s *schema.ZoneSnapshot, cmd *schema.Command, now int64, code schema.ErrorCode, reason string) *schema.Event {
	ev := c.event(s, cmd, now)
	ev.Body = &schema.Event_CommandRejected{CommandRejected: &schema.CommandRejected{Code: code, Reason: reason}}
	return ev
}

// Duplicate reports whether cmd was already applied in s (redelivery, resend
// after the JetStream duplicate window, or a transfer delivered twice).
func Duplicate(s *schema.ZoneSnapshot, cmd *schema.Command) bool {
	if ti := cmd.GetTransferIn(); ti != nil {
		for _, id := range s.AcceptedTransfers {
			if id == ti.TransferId {
				return true
			}
		}
		return false
	}
	return cmd.ClientSeq != 0 && seen(s, cmd.SessionId, cmd.ClientSeq)
}

// window is how far behind the highest applied seq of a session a command
// may arrive (redelivery reorders: a stale or crashed owner's commands come
// back after the ack wait, behind newer ones) and still be recognised as new.
// It must exceed the largest jump of a session's seqs: a session resumed
// from a crashed gateway's record (or when the old connection does not hand
// over in time) continues above the reserved bound, up to the gateway's
// session.ReserveAhead = 1024 seqs above the last one it accepted. A command
// of that session delivered to a zone owner that died comes back after the
// ack wait behind the jump; with a window of 1024 it fell out of it and was
// taken for applied: acked with no event (e2e fault run 32, 2 Dec: s:129
// redelivered when the session's high was 1165; TestSeqJumpOfAResume). 4096
// holds a jump and 3072 seqs of reorder (5 minutes at 10 commands/s), at 512
// bytes per session in the state. The contract is in libs/wire (seqs.go).
const window = wire.SessionSeqWindow

// bits returns the session's window bitmap (bit k = seq high-1-k applied),
// upgrading on first use a 64-deep mask of an older snapshot, and a shorter
// window (1024 before) to this one: the seqs beyond the old depth were
// treated as applied, and stay so.
func bits(s *schema.ZoneSnapshot, session string) []byte {
	if b, ok := s.SessionWindow[session]; ok {
		if len(b) < window/8 {
			nb := make([]byte, window/8)
			copy(nb, b)
			for i := len(b); i < len(nb); i++ {
				nb[i] = 0xff
			}
			s.SessionWindow[session] = nb
			b = nb
		}
		return b
	}
	m, ok := s.SessionMasks[session]
	if !ok {
		return nil
	}
	b := make([]byte, window/8)
	for k := 0; k < 64; k++ {
		if m&(1<<k) != 0 {
			b[k/8] |= 1 << (k % 8)
		}
	}
	delete(s.SessionMasks, session)
	if s.SessionWindow == nil {
		s.SessionWindow = map[string][]byte{}
	}
	s.SessionWindow[session] = b
	return b
}

func bitSet(b []byte, k uint64) bool { return k < uint64(len(b))*8 && b[k/8]&(1<<(k%8)) != 0 }

// shift moves every bit of b d places up (bit k becomes bit k+d), in place;
// bits pushed past the window are dropped.
func shift(b []byte, d uint64) {
	if d >= uint64(len(b))*8 {
		clear(b)
		return
	}
	bytesBy, bitsBy := int(d/8), uint(d%8)
	for i := len(b) - 1; i >= 0; i-- {
		var v byte
		if j := i - bytesBy; j >= 0 {
			v = b[j] << bitsBy
			if bitsBy > 0 && j-1 >= 0 {
				v |= b[j-1] >> (8 - bitsBy)
			}
		}
		b[i] = v
	}
}

// seen reports whether client seq of session was applied in s. Seqs more
// than window below the highest are treated as applied.
func seen(s *schema.ZoneSnapshot, session string, seq uint64) bool {
	high := s.Sessions[session]
	switch {
	case seq > high:
		return false
	case seq == high:
		return true
	case high-1-seq >= window:
		return true
	}
	return bitSet(bits(s, session), high-1-seq)
}

// markSeen records seq of session as applied.
func markSeen(s *schema.ZoneSnapshot, session string, seq uint64) {
	if s.SessionWindow == nil {
		s.SessionWindow = map[string][]byte{}
	}
	high := s.Sessions[session]
	b := bits(s, session)
	if b == nil {
		b = make([]byte, window/8)
	}
	switch {
	case seq > high:
		d := seq - high
		if high == 0 {
			clear(b)
		} else {
			shift(b, d)
			if k := d - 1; k < window {
				b[k/8] |= 1 << (k % 8) // the previous high
			}
		}
		s.Sessions[session] = seq
	case seq < high && high-1-seq < window:
		k := high - 1 - seq
		b[k/8] |= 1 << (k % 8)
	}
	s.SessionWindow[session] = b
}

// markThrough records the arrival of a player of session by transfer, seq
// being the client seq of the command that took it across (its
// last_input_seq). The seqs after the highest one this zone saw of the
// session, up to seq, were sent to the source zone: they are marked applied
// here, so that a resend of one of them to this zone is a duplicate. The
// seqs at or below that highest keep what this zone knows of them: a
// command sent here while the player was here before, and not decided yet
// (a redelivery after the ack wait of a crashed or stale owner, behind the
// newer commands that took the player away and back), is still new here.
// Before, every seq up to seq was marked, and such a redelivery was acked as
// a duplicate without any event: a stored command lost (the e2e fault run's
// command-not-applied after a world crash, TestTransferKeepsOwnSeqs).
func markThrough(s *schema.ZoneSnapshot, session string, seq uint64) {
	high := s.Sessions[session]
	if seq <= high {
		markSeen(s, session, seq)
		return
	}
	b := bits(s, session)
	if b == nil {
		b = make([]byte, window/8)
	}
	// Bit k is seq-1-k: bits 0..d-1 are seq-1 down to high (the previous
	// high, applied here, and the source zone's seqs after it).
	d := seq - high
	shift(b, d)
	for k := uint64(0); k < d && k < window; k++ {
		b[k/8] |= 1 << (k % 8)
	}
	s.Sessions[session] = seq
	if s.SessionWindow == nil {
		s.SessionWindow = map[string][]byte{}
	}
	s.SessionWindow[session] = b
}

// Decide validates cmd against s at time now (ns) and returns the one event
// it causes, or nil when cmd is a duplicate. It does not change s.
func (c *Config) Decide(s *schema.ZoneSnapshot, cmd *schema.Command, now int64) *schema.Event {
	if Duplicate(s, cmd) {
		return nil
	}
	if ti := cmd.GetTransferIn(); ti != nil {
		if ti.Player == nil || ti.Player.PlayerId == "" || ti.TransferId == "" {
			return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_INVALID, "transfer without player")
		}
		p := proto.Clone(ti.Player).(*schema.PlayerState)
		ev := c.event(s, cmd, now)
		ev.PlayerId = p.PlayerId
		ev.Body = &schema.Event_TransferAccepted{TransferAccepted: &schema.TransferAccepted{TransferId: ti.TransferId, FromZone: ti.FromZone, Player: p}}
		return ev
	}
	if cmd.ClientSeq == 0 || cmd.SessionId == "" || cmd.PlayerId == "" {
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_INVALID, "command without session, player or seq")
	}
	if j := cmd.GetJoin(); j != nil {
		return c.decideJoin(s, cmd, now)
	}
	p := s.Players[cmd.PlayerId]
	if p == nil || p.SessionId != cmd.SessionId {
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_NOT_IN_ZONE, "player is not in zone "+s.Zone)
	}
	switch b := cmd.Body.(type) {
	case *schema.Command_Leave:
		ev := c.event(s, cmd, now)
		ev.Body = &schema.Event_PlayerLeft{PlayerLeft: &schema.PlayerLeft{Reason: "leave"}}
		return ev
	case *schema.Command_Move:
		return c.decideMove(s, cmd, p, b.Move, now)
	case *schema.Command_Chat:
		t := b.Chat.GetText()
		if t == "" || len(t) > c.MaxChatLen || !utf8.ValidString(t) {
			return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_INVALID, fmt.Sprintf("chat text must be 1..%d bytes of UTF-8", c.MaxChatLen))
		}
		ev := c.event(s, cmd, now)
		ev.Body = &schema.Event_ChatSent{ChatSent: &schema.ChatSent{Text: t, Scope: b.Chat.GetScope(), X: p.X, Y: p.Y}}
		return ev
	case *schema.Command_Attack:
		return c.decideAttack(s, cmd, p, b.Attack.GetTargetId(), now)
	}
	return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_INVALID, "unknown command")
}

func (c *Config) decideJoin(s *schema.ZoneSnapshot, cmd *schema.Command, now int64) *schema.Event {
	if z := cmd.GetJoin().GetZone(); z != "" && z != s.Zone {
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_UNKNOWN_ZONE, fmt.Sprintf("join of %s sent to %s", z, s.Zone))
	}
	var p *schema.PlayerState
	if old := s.Players[cmd.PlayerId]; old != nil {
		p = proto.Clone(old).(*schema.PlayerState) // rejoin (new session): keep the body
	} else {
		x, y := c.spawn(cmd.PlayerId, 0)
		p = &schema.PlayerState{PlayerId: cmd.PlayerId, X: x, Y: y, Hp: c.MaxHP, MaxHp: c.MaxHP}
	}
	p.SessionId = cmd.SessionId
	p.LastInputSeq = cmd.ClientSeq
	if cmd.PlayerName != "" {
		p.Name = cmd.PlayerName
	}
	if p.Name == "" {
		p.Name = cmd.PlayerId
	}
	ev := c.event(s, cmd, now)
	ev.Body = &schema.Event_PlayerJoined{PlayerJoined: &schema.PlayerJoined{Player: p}}
	return ev
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

func (c *Config) decideMove(s *schema.ZoneSnapshot, cmd *schema.Command, p *schema.PlayerState, m *schema.Move, now int64) *schema.Event {
	x, y := m.GetX(), m.GetY()
	switch {
	case !finite(x) || !finite(y):
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_INVALID, "position is not a finite number")
	case p.Dead:
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_REJECTED, "dead players cannot move")
	}
	at := c.moveTime(cmd, now)
	pace, ok := c.pace(p, x, y, at)
	if !ok {
		dist := math.Hypot(float64(x-p.X), float64(y-p.Y))
		credit := time.Duration(at - c.paceStart(p, at))
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_REJECTED, fmt.Sprintf("too fast: %.1f units with %v of movement credit, max %.1f",
			dist, credit, float64(c.MaxSpeed)*credit.Seconds()+0.5))
	}
	if c.segmentBlocked(p.X, p.Y, x, y) {
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_REJECTED, "path blocked by an obstacle")
	}
	if !c.Map.InBounds(x, y) {
		to, nx, ny, ok := c.Map.Cross(s.Zone, x, y)
		if !ok {
			return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_REJECTED, "outside the world")
		}
		if c.blocked(nx, ny) {
			return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_REJECTED, "destination blocked by an obstacle")
		}
		np := proto.Clone(p).(*schema.PlayerState)
		np.X, np.Y, np.LastInputSeq, np.LastMoveNs = nx, ny, cmd.ClientSeq, pace
		ev := c.event(s, cmd, now)
		ev.Body = &schema.Event_TransferOut{TransferOut: &schema.TransferOut{TransferId: TransferID(s.Zone, to, cmd.CommandId), ToZone: to, Player: np}}
		return ev
	}
	// The event carries the move's own time: Apply sets last_move_ns from it,
	// so the next move is measured from this one (a pure fold on replay).
	ev := c.event(s, cmd, at)
	ev.Body = &schema.Event_PlayerMoved{PlayerMoved: &schema.PlayerMoved{X: x, Y: y, InputSeq: cmd.ClientSeq}}
	return ev
}

// moveTime is the time a move is validated at: the gateway's receive time
// of the command (so that moves queued while the zone was behind, then
// processed in one tick, are measured against each other as they were
// received), at most now + MaxAhead (clock skew, a forged far-future time).
// Without a receive time (0, e.g. an old command) the tick time now is used.
func (c *Config) moveTime(cmd *schema.Command, now int64) int64 {
	if r := cmd.ReceivedAtNs; r > 0 {
		return min(r, now+int64(c.MaxAhead))
	}
	return now
}

// The speed check is a pace budget (the generic cell rate algorithm over
// distance): a move of d units costs d / MaxSpeed of time. last_move_ns holds
// the player's pace time, the time its moves so far have "used up"; a player
// at rest accumulates credit up to MaxStep. A move received at time at is
// legal when max(pace, at - MaxStep) + cost <= at (+ half a unit). So a
// player may cover at most MaxSpeed x (elapsed + MaxStep) over any span of
// receive times: moves that arrive bunched (a client or network stall, the
// gateway batching) spend the credit their earlier, later-arriving moves
// left, instead of being measured against the previous move's arrival alone.
// A bot walking at 10 Hz below MaxSpeed is accepted whatever the bunching of
// its arrivals, as long as no stall exceeds MaxStep of credit.

// paceStart is where the cost of a move received at at starts.
func (c *Config) paceStart(p *schema.PlayerState, at int64) int64 {
	return max(p.LastMoveNs, at-int64(c.MaxStep))
}

// pace returns the player's pace time after moving to (x, y) at time at, and
// whether the move is within the budget.
func (c *Config) pace(p *schema.PlayerState, x, y float32, at int64) (int64, bool) {
	dist := math.Hypot(float64(x-p.X), float64(y-p.Y))
	cost := int64(dist / float64(c.MaxSpeed) * 1e9)
	slack := int64(0.5 / float64(c.MaxSpeed) * 1e9)
	next := c.paceStart(p, at) + cost
	return next, next <= at+slack || dist <= 0.5
}

func (c *Config) decideAttack(s *schema.ZoneSnapshot, cmd *schema.Command, p *schema.PlayerState, target string, now int64) *schema.Event {
	t := s.Players[target]
	switch {
	case p.Dead:
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_REJECTED, "dead players cannot attack")
	case t == nil:
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_REJECTED, "no such target in this zone")
	case target == p.PlayerId:
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_INVALID, "cannot attack yourself")
	case t.Dead:
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_REJECTED, "target is dead")
	case now < p.AttackReadyAtNs:
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_REJECTED, fmt.Sprintf("attack on cooldown for %v", time.Duration(p.AttackReadyAtNs-now)))
	case math.Hypot(float64(t.X-p.X), float64(t.Y-p.Y)) > float64(c.AttackRange):
		return c.reject(s, cmd, now, schema.ErrorCode_ERROR_CODE_REJECTED, "target out of range")
	}
	hp := t.Hp - c.AttackDamage
	hit := &schema.AttackHit{TargetId: target, Damage: c.AttackDamage, TargetHp: max(hp, 0), AttackerReadyAtNs: now + int64(c.AttackCooldown)}
	if hp <= 0 {
		hit.Killed = true
		hit.RespawnAtNs = now + int64(c.RespawnDelay)
	}
	ev := c.event(s, cmd, now)
	ev.Body = &schema.Event_AttackHit{AttackHit: hit}
	return ev
}

// Tick returns the system events due at now: removal of idle players and
// respawns of dead players whose time has come, in player id order.
func (c *Config) Tick(s *schema.ZoneSnapshot, now int64) []*schema.Event {
	var ids, idle []string
	for id, p := range s.Players {
		switch {
		case p.LastActiveNs > 0 && now-p.LastActiveNs > int64(c.IdleTimeout):
			idle = append(idle, id)
		case p.Dead && p.RespawnAtNs <= now:
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	sort.Strings(idle)
	evs := make([]*schema.Event, 0, len(ids)+len(idle))
	for _, id := range idle {
		p := s.Players[id]
		evs = append(evs, &schema.Event{
			EventId: s.Zone + "/idle/" + id + "/" + strconv.FormatInt(p.LastActiveNs, 10), Zone: s.Zone, TimestampNs: now, PlayerId: id, Tick: s.Tick,
			Body: &schema.Event_PlayerLeft{PlayerLeft: &schema.PlayerLeft{Reason: "idle"}},
		})
	}
	for _, id := range ids {
		p := s.Players[id]
		x, y := c.spawn(id, p.Deaths)
		evs = append(evs, &schema.Event{
			EventId: s.Zone + "/r/" + id + "/" + strconv.FormatInt(p.Deaths, 10), Zone: s.Zone, TimestampNs: now, PlayerId: id, Tick: s.Tick,
			Body: &schema.Event_PlayerRespawned{PlayerRespawned: &schema.PlayerRespawned{X: x, Y: y, Hp: c.MaxHP}},
		})
	}
	return evs
}

// spawn picks a free position for a player from a hash of its id and death
// count: deterministic, spread over the zone, never inside an obstacle.
func (c *Config) spawn(player string, n int64) (float32, float32) {
	for i := int64(0); ; i++ {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%d/%d", player, n, i)
		v := h.Sum64()
		size := c.Map.ZoneSize
		x := 20 + float32(v%10000)/10000*(size-40)
		y := 20 + float32((v/10000)%10000)/10000*(size-40)
		if !c.blocked(x, y) || i > 100 {
			return x, y
		}
	}
}

func (c *Config) blocked(x, y float32) bool {
	for _, r := range c.Obstacles {
		if r.contains(x, y) {
			return true
		}
	}
	return false
}

// segmentBlocked reports whether the segment from (x0,y0) to (x1,y1) touches
// an obstacle (Liang-Barsky clipping against each rectangle).
func (c *Config) segmentBlocked(x0, y0, x1, y1 float32) bool {
	for _, r := range c.Obstacles {
		if clips(r, x0, y0, x1, y1) {
			return true
		}
	}
	return false
}

func clips(r Rect, x0, y0, x1, y1 float32) bool {
	dx, dy := x1-x0, y1-y0
	t0, t1 := float32(0), float32(1)
	for _, pq := range [4][2]float32{{-dx, x0 - r.X0}, {dx, r.X1 - x0}, {-dy, y0 - r.Y0}, {dy, r.Y1 - y0}} {
		p, q := pq[0], pq[1]
		if p == 0 {
			if q < 0 {
				return false
			}
			continue
		}
		t := q / p
		if p < 0 {
			if t > t1 {
				return false
			}
			t0 = max(t0, t)
		} else {
			if t < t0 {
				return false
			}
			t1 = min(t1, t)
		}
	}
	return t0 <= t1
}

// SessionRetention is how long (in event time) the dedupe state of a session
// whose player left the zone is kept. A command of that session redelivered
// or resent later than this would be decided again (and rejected: the player
// is gone).
const SessionRetention = 10 * time.Minute

func left(s *schema.ZoneSnapshot, p *schema.PlayerState, at int64) {
	if p == nil || p.SessionId == "" {
		return
	}
	if s.SessionLeftNs == nil {
		s.SessionLeftNs = map[string]int64{}
	}
	s.SessionLeftNs[p.SessionId] = at
}

// trackSession keeps session_left_ns in step after ev: a session whose
// player is present is active; any other session that sent a command is
// retained for SessionRetention from the first such event.
func trackSession(s *schema.ZoneSnapshot, ev *schema.Event) {
	if ta := ev.GetTransferAccepted(); ta != nil {
		delete(s.SessionLeftNs, ta.GetPlayer().GetSessionId())
		return
	}
	if ev.CommandId == "" {
		return
	}
	session, _, err := wire.ParseCommandID(ev.CommandId)
	if err != nil {
		return
	}
	if p := s.Players[ev.PlayerId]; p != nil && p.SessionId == session {
		delete(s.SessionLeftNs, session)
		return
	}
	if _, ok := s.SessionLeftNs[session]; !ok {
		if s.SessionLeftNs == nil {
			s.SessionLeftNs = map[string]int64{}
		}
		s.SessionLeftNs[session] = ev.TimestampNs
	}
}

// prune forgets sessions that left more than SessionRetention before now.
func prune(s *schema.ZoneSnapshot, now int64) {
	for sess, at := range s.SessionLeftNs {
		if now-at > int64(SessionRetention) {
			delete(s.SessionLeftNs, sess)
			delete(s.Sessions, sess)
			delete(s.SessionMasks, sess)
			delete(s.SessionWindow, sess)
		}
	}
}

// Apply folds ev, stored at stream sequence seq of evt.<zone>, into s with
// the default speed parameters (see Config.Apply).
func Apply(s *schema.ZoneSnapshot, ev *schema.Event, seq uint64, keepTransfers int) {
	c := Config{MaxSpeed: defaultMaxSpeed, MaxStep: defaultMaxStep, KeepTransfers: keepTransfers}
	c.Apply(s, ev, seq)
}

// Apply folds ev, stored at stream sequence seq of evt.<zone>, into s. It
// is deterministic: it reads only c, s and ev (the pace of a move depends on
// MaxSpeed and MaxStep, so replay must use the rules that decided).
func (c *Config) Apply(s *schema.ZoneSnapshot, ev *schema.Event, seq uint64) {
	keepTransfers := c.KeepTransfers
	s.LastSeq = seq
	s.Events++
	if s.Events%1024 == 0 {
		prune(s, ev.TimestampNs) // deterministic: event count and event time only
	}
	if ev.TimestampNs > s.LastEventNs {
		s.LastEventNs = ev.TimestampNs
	}
	if ev.Tick > s.Tick {
		s.Tick = ev.Tick
	}
	if _, isTransfer := ev.Body.(*schema.Event_TransferAccepted); !isTransfer && ev.CommandId != "" {
		if session, cseq, err := wire.ParseCommandID(ev.CommandId); err == nil {
			markSeen(s, session, cseq)
			if p := s.Players[ev.PlayerId]; p != nil && p.SessionId == session {
				if cseq > p.LastInputSeq {
					p.LastInputSeq = cseq
				}
				p.LastActiveNs = ev.TimestampNs
			}
		}
	}
	p := s.Players[ev.PlayerId]
	defer trackSession(s, ev)
	switch b := ev.Body.(type) {
	case *schema.Event_OwnershipClaimed:
		s.Fence = b.OwnershipClaimed.GetFence()
	case *schema.Event_PlayerJoined:
		np := proto.Clone(b.PlayerJoined.GetPlayer()).(*schema.PlayerState)
		np.LastActiveNs = ev.TimestampNs
		s.Players[np.PlayerId] = np
	case *schema.Event_PlayerLeft:
		left(s, p, ev.TimestampNs)
		delete(s.Players, ev.PlayerId)
	case *schema.Event_PlayerMoved:
		if p != nil {
			p.LastMoveNs, _ = c.pace(p, b.PlayerMoved.X, b.PlayerMoved.Y, ev.TimestampNs)
			p.X, p.Y = b.PlayerMoved.X, b.PlayerMoved.Y
		}
	case *schema.Event_AttackHit:
		h := b.AttackHit
		if p != nil {
			p.AttackReadyAtNs = h.AttackerReadyAtNs
			if h.Killed {
				p.Kills++
			}
		}
		if t := s.Players[h.TargetId]; t != nil {
			t.Hp = h.TargetHp
			if h.Killed {
				t.Dead, t.RespawnAtNs = true, h.RespawnAtNs
				t.Deaths++
			}
		}
	case *schema.Event_PlayerDied:
		if p != nil {
			p.Dead, p.Hp = true, 0
		}
	case *schema.Event_PlayerRespawned:
		if p != nil {
			p.X, p.Y, p.Hp, p.Dead, p.RespawnAtNs = b.PlayerRespawned.X, b.PlayerRespawned.Y, b.PlayerRespawned.Hp, false, 0
		}
	case *schema.Event_TransferOut:
		left(s, p, ev.TimestampNs)
		delete(s.Players, ev.PlayerId)
		s.PendingTransfers = append(s.PendingTransfers, proto.Clone(b.TransferOut).(*schema.TransferOut))
	case *schema.Event_TransferDelivered:
		for i, t := range s.PendingTransfers {
			if t.TransferId == b.TransferDelivered.TransferId {
				s.PendingTransfers = append(s.PendingTransfers[:i], s.PendingTransfers[i+1:]...)
				break
			}
		}
	case *schema.Event_TransferAccepted:
		np := proto.Clone(b.TransferAccepted.GetPlayer()).(*schema.PlayerState)
		np.LastActiveNs = ev.TimestampNs
		s.Players[np.PlayerId] = np
		if np.SessionId != "" && np.LastInputSeq > 0 {
			markThrough(s, np.SessionId, np.LastInputSeq)
		}
		s.AcceptedTransfers = append(s.AcceptedTransfers, b.TransferAccepted.TransferId)
		if keepTransfers > 0 && len(s.AcceptedTransfers) > keepTransfers {
			s.AcceptedTransfers = append([]string(nil), s.AcceptedTransfers[len(s.AcceptedTransfers)-keepTransfers:]...)
		}
	}
}

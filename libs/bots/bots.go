// Package bots is the one swarm of simulated players of Realmstream, used by
// `realmstream bots`, `realmstream bench capacity`, the gateway's tests and
// the end-to-end fault run. Each bot logs in on one of several gateways (TCP
// or WebSocket), joins a zone and moves at a steady rate; it chats, attacks
// players it sees within reach, walks across zone borders (a transfer),
// leaves and re-joins, and drops its connection on purpose to resume its
// session on the same or another gateway, each at a configurable rate. The
// swarm counts what it sent and every answer (Ack, Busy, Error, world
// rejection), measures send->Ack and input->update latency (the first update
// whose view of the bot's own player has last_input_seq >= the move's seq),
// and can keep every acknowledged command for an audit.
//
// The bots are lean because they share the machine with the stack they load:
// one goroutine per bot reads its connection and decodes updates without
// allocating (protowire, no proto.Unmarshal on the hot path); a few scheduler
// goroutines (one timing wheel each) drive all bots, so there is no goroutine
// or timer per bot or per packet; a bot's packets of one turn are encoded
// into a reused buffer and written with one write; counters are per bot
// (under the bot's own mutex) and latency histograms are shared lock-free
// log-linear buckets.
package bots

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realmstream/realmstream/libs/worldmap"
)

// Gateway is one gateway's client addresses ("" = transport not offered).
type Gateway struct {
	TCP string // host:port (a tcp:// prefix is accepted)
	WS  string // ws://host:port/path
}

// Config configures a swarm. Zero values take the documented defaults;
// a negative interval or share switches that behaviour off.
type Config struct {
	// Gateways the bots connect to (required). Bot i starts on gateway
	// i mod len(Gateways); a failed connect tries the next one.
	Gateways []Gateway
	// Bots is the number of simulated players (default 100).
	Bots int
	// WSFraction is the share of bots on WebSocket where a gateway offers
	// both (0..1, default 0).
	WSFraction float64
	// Map is the world layout (default worldmap.Default()).
	Map worldmap.Map
	// MoveRate is moves per second per bot (default 10).
	MoveRate float64
	// Speed in units per second (default 30; the world allows 250).
	Speed float32
	// ChatEvery is the mean interval between chat lines of one bot (default 5s).
	ChatEvery time.Duration
	// AttackEvery is the mean interval between attacks of one bot on a
	// player it saw within AttackRange during the last second (default 2s;
	// AttackRange default 40).
	AttackEvery time.Duration
	AttackRange float32
	// CrosserFraction is the share of bots that now and then head for a
	// zone border and walk across it (a transfer to the next zone; default 0).
	CrosserFraction float64
	// LeaveEvery is the mean interval between a Leave and a re-join of one
	// bot (it re-joins its zone 1-2 s later); 0 = never.
	LeaveEvery time.Duration
	// ResumeEvery is the mean interval between deliberate disconnects of one
	// bot, each followed by a resume of its session; 0 = never.
	ResumeEvery time.Duration
	// ResumeElsewhere is the share of deliberate resumes made on another
	// gateway than the one just left (default 0.5 with two or more gateways).
	ResumeElsewhere float64
	// TrustLastSeq is the share of bots that, on a resume, continue their
	// seqs from Welcome.last_seq like a client that kept only its session
	// (not its own counter): a wrong last_seq then reuses command ids, which
	// the gateway must refuse (SEQ_REUSED), never ack as duplicates.
	TrustLastSeq float64
	// RampUp spreads the logins over this time (default Bots/200 s, at least 1s).
	RampUp time.Duration
	// Duration of the run; 0 runs until ctx is done.
	Duration time.Duration
	// DrainTimeout bounds the wait for outstanding answers at the end (default 5s).
	DrainTimeout time.Duration
	// NamePrefix names the players <prefix>-<i>; the default is unique per
	// run (dev-mode player ids derive from the name).
	NamePrefix string
	// Token returns the login token of bot i; nil uses dev mode (Hello{name}).
	Token func(i int) (string, error)
	Seed  uint64
	// Schedulers is the number of goroutines that drive the bots (default
	// GOMAXPROCS, at least 2).
	Schedulers int
	// PingEvery is the interval of RTT samples per bot (default 2s; negative: never).
	PingEvery time.Duration
	// Progress receives a snapshot every ProgressEvery (default 1s); nil = none.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// KeepAcked keeps every acknowledged command for Acked (the audit).
	KeepAcked bool
	// Record receives one JSON line per command sent and per answer; nil = off.
	Record io.Writer
}

func (c *Config) withDefaults() error {
	if len(c.Gateways) == 0 {
		return errors.New("bots: no gateway address")
	}
	for i, g := range c.Gateways {
		if g.TCP == "" && g.WS == "" {
			return fmt.Errorf("bots: gateway %d has neither a TCP nor a WebSocket address", i)
		}
		if g.WS != "" && !strings.HasPrefix(g.WS, "ws://") && !strings.HasPrefix(g.WS, "wss://") {
			return fmt.Errorf("bots: WebSocket address %q: want ws://host:port/path", g.WS)
		}
	}
	if c.Bots <= 0 {
		c.Bots = 100
	}
	if c.Map.Cols == 0 {
		c.Map = worldmap.Default()
	}
	if err := c.Map.Validate(); err != nil {
		return fmt.Errorf("bots: %w", err)
	}
	if c.MoveRate <= 0 {
		c.MoveRate = 10
	}
	if c.Speed <= 0 {
		c.Speed = 30
	}
	if c.ChatEvery == 0 {
		c.ChatEvery = 5 * time.Second
	}
	if c.AttackEvery == 0 {
		c.AttackEvery = 2 * time.Second
	}
	if c.AttackRange <= 0 {
		c.AttackRange = 40
	}
	if c.ResumeElsewhere == 0 && len(c.Gateways) > 1 {
		c.ResumeElsewhere = 0.5
	}
	if c.RampUp <= 0 {
		c.RampUp = max(time.Second, time.Duration(c.Bots)*time.Second/200)
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.NamePrefix == "" {
		c.NamePrefix = fmt.Sprintf("bot%x", time.Now().UnixNano()&0xffffff)
	}
	if c.Schedulers <= 0 {
		c.Schedulers = max(2, runtime.GOMAXPROCS(0))
	}
	if c.PingEvery == 0 {
		c.PingEvery = 2 * time.Second
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = time.Second
	}
	return nil
}

// Swarm is a set of bots.
type Swarm struct {
	cfg  Config
	bots []*bot

	// Lat is input->update, Ack send->Ack, Reconnect a lost connection ->
	// the next Welcome, Ping the RTT to the gateway.
	Lat, Ack, Reconnect, Ping Histogram

	reasons sync.Map // rejection reason (up to the first ':') -> *atomic.Int64
	codes   sync.Map // error code -> *atomic.Int64
	exMu    sync.Mutex
	example map[string]string // last message per error code

	recMu sync.Mutex
	rec   *json.Encoder

	connected   atomic.Int64
	lost        atomic.Int64 // bots whose connection dropped (not on purpose) without a session back yet
	everOnline  atomic.Int64
	period      time.Duration
	started     time.Time
	stopped     time.Time
	connectFail atomic.Int64
}

// New prepares a swarm (nothing connects before Run).
func New(cfg Config) (*Swarm, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	s := &Swarm{cfg: cfg, example: map[string]string{}, period: time.Duration(float64(time.Second) / cfg.MoveRate)}
	if cfg.Record != nil {
		s.rec = json.NewEncoder(cfg.Record)
	}
	zones := cfg.Map.Zones()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	for i := 0; i < cfg.Bots; i++ {
		b := newBot(s, i, zones[i%len(zones)], rng)
		s.bots = append(s.bots, b)
	}
	return s, nil
}

// Run connects every bot and plays until cfg.Duration passes or ctx is
// done, then stops sending, waits up to DrainTimeout for the answers still
// due, disconnects and returns the report.
func (s *Swarm) Run(ctx context.Context) *Report {
	playCtx := ctx
	if s.cfg.Duration > 0 {
		var cancel context.CancelFunc
		playCtx, cancel = context.WithTimeout(ctx, s.cfg.Duration)
		defer cancel()
	}
	connCtx, connCancel := context.WithCancel(context.Background())
	defer connCancel()
	s.started = time.Now()

	// The timing wheel: the move period in slots of ~5 ms; bot i belongs to
	// scheduler i mod n and to slot (i / n) mod slots.
	tick := min(5*time.Millisecond, s.period)
	nslots := max(1, int(s.period/tick))
	scheds := make([][][]*bot, s.cfg.Schedulers)
	for k := range scheds {
		scheds[k] = make([][]*bot, nslots)
	}
	for i, b := range s.bots {
		k := i % len(scheds)
		slot := (i / len(scheds)) % nslots
		scheds[k][slot] = append(scheds[k][slot], b)
	}
	var schedWG sync.WaitGroup
	for _, wheel := range scheds {
		schedWG.Add(1)
		go func() {
			defer schedWG.Done()
			s.schedule(playCtx, wheel, tick)
		}()
	}
	progDone := make(chan struct{})
	if s.cfg.Progress != nil {
		go s.progress(playCtx, progDone)
	} else {
		close(progDone)
	}
	var botWG sync.WaitGroup
	for i, b := range s.bots {
		botWG.Add(1)
		delay := time.Duration(int64(s.cfg.RampUp) * int64(i) / int64(len(s.bots)))
		go func() {
			defer botWG.Done()
			b.run(playCtx, connCtx, delay)
		}()
	}
	<-playCtx.Done()
	schedWG.Wait()
	// Drain: the readers keep reading the answers still due.
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	for time.Now().Before(deadline) && s.pendingTotal() > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	s.stopped = time.Now()
	connCancel()
	// Close every connection until every bot goroutine is done: a bot whose
	// handshake was under way when the first round ran stores its
	// connection afterwards, and would otherwise read from it forever.
	botsDone := make(chan struct{})
	go func() {
		botWG.Wait()
		close(botsDone)
	}()
	for closed := false; !closed; {
		for _, b := range s.bots {
			b.closeConn()
		}
		select {
		case <-botsDone:
			closed = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	<-progDone
	return s.Report()
}

// schedule drives one wheel of bots: every tick it runs the turn of the
// bots of the slot(s) due, catching up at most one round when late.
func (s *Swarm) schedule(ctx context.Context, wheel [][]*bot, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	n := len(wheel)
	done := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		due := int(now.Sub(start) / tick)
		if due-done > n {
			done = due - n
		}
		for ; done < due; done++ {
			for _, b := range wheel[done%n] {
				b.turn(ctx, now)
			}
		}
	}
}

func (s *Swarm) pendingTotal() int {
	n := 0
	for _, b := range s.bots {
		b.mu.Lock()
		if b.tr != nil {
			n += len(b.pending)
		}
		b.mu.Unlock()
	}
	return n
}

// Acked lists every command acknowledged during the run (Config.KeepAcked), by id.
func (s *Swarm) Acked() []AckRecord {
	var out []AckRecord
	for _, b := range s.bots {
		b.mu.Lock()
		out = append(out, b.acked...)
		b.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Lost is the number of bots whose connection dropped without them asking
// and that have not got a session back yet.
func (s *Swarm) Lost() int { return int(s.lost.Load()) }

// Connected is the number of bots with a live session now.
func (s *Swarm) Connected() int { return int(s.connected.Load()) }

// AckRecord is one acknowledged command.
type AckRecord struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	StreamSeq uint64 `json:"stream_seq"`
	Duplicate bool   `json:"duplicate"`
	// Digest is what the command said (Digest of its kind and fields): an
	// audit compares it with the command stored under ID, so a command id
	// reused for another command and acked as a duplicate shows as lost.
	Digest string `json:"digest"`
}

// Digest is the canonical text of a command's content: "move x,y",
// "chat text", "attack target", "join zone" or "leave" (x, y as float32 in
// the shortest decimal form).
func Digest(kind string, x, y float32, text string) string {
	switch kind {
	case "move":
		return "move " + strconv.FormatFloat(float64(x), 'g', -1, 32) + "," + strconv.FormatFloat(float64(y), 'g', -1, 32)
	case "leave":
		return "leave"
	}
	return kind + " " + text
}

type record struct {
	T      string `json:"t"`
	Bot    int    `json:"bot"`
	ID     string `json:"id,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	Stream uint64 `json:"stream_seq,omitempty"`
	Detail string `json:"detail,omitempty"`
	AtNs   int64  `json:"at_ns"`
}

func (s *Swarm) record(r record) {
	if s.rec == nil {
		return
	}
	r.AtNs = time.Now().UnixNano()
	s.recMu.Lock()
	_ = s.rec.Encode(r)
	s.recMu.Unlock()
}

func countIn(m *sync.Map, key string) {
	v, ok := m.Load(key)
	if !ok {
		v, _ = m.LoadOrStore(strings.Clone(key), new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// rejectReason counts a world rejection by its reason, up to the first ':'
// and without digits (so "too fast: 3.2 units in 1ms" and "attack on
// cooldown for 309ms" each count under one key).
func (s *Swarm) rejectReason(msg string) {
	if i := strings.IndexByte(msg, ':'); i >= 0 {
		msg = msg[:i]
	}
	if strings.ContainsAny(msg, "0123456789") {
		msg = strings.Map(func(r rune) rune {
			if (r >= '0' && r <= '9') || r == '.' {
				return -1
			}
			return r
		}, msg)
	}
	countIn(&s.reasons, msg)
}

func (s *Swarm) errorCode(code, msg string) {
	countIn(&s.codes, code)
	s.exMu.Lock()
	s.example[code] = msg
	s.exMu.Unlock()
}

func (s *Swarm) progress(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.ProgressEvery)
	defer t.Stop()
	prevLat, prevAck := s.Lat.Snapshot(), s.Ack.Snapshot()
	var prev counters
	prevT := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c := s.sum()
			dt := now.Sub(prevT).Seconds()
			lat, ack := s.Lat.Sub(prevLat), s.Ack.Sub(prevAck)
			s.cfg.Progress(Progress{
				Elapsed: now.Sub(s.started), Connected: s.Connected(), Bots: len(s.bots),
				Sent: c.sent, Acked: c.acked, Busy: c.busy, Rejected: c.rejected, Errors: c.errors, Updates: c.updates,
				Resumes: c.resumes, Crossings: c.crossings, Leaves: c.leaves,
				SentPerSec: float64(c.sent-prev.sent) / dt, AckedPerSec: float64(c.acked-prev.acked) / dt,
				UpdatesPerSec: float64(c.updates-prev.updates) / dt,
				UpdateP50:     lat.Quantile(0.5), UpdateP99: lat.Quantile(0.99), AckP50: ack.Quantile(0.5), AckP99: ack.Quantile(0.99),
			})
			prevLat, prevAck, prev, prevT = s.Lat.Snapshot(), s.Ack.Snapshot(), c, now
		}
	}
}

// sum adds up the bots' counters.
func (s *Swarm) sum() counters {
	var c counters
	for _, b := range s.bots {
		b.mu.Lock()
		c.add(&b.cnt)
		b.mu.Unlock()
	}
	return c
}

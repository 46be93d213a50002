// Package swarm drives realistic players against Realmstream gateways: each
// bot logs in, joins a zone, moves at 10 Hz, chats, attacks players it sees,
// walks across zone borders, and now and then drops its connection and
// resumes its session (resending what was not acknowledged, with the same
// command ids). Bots speak TCP or WebSocket through libs/client.
//
// The swarm records every command it sent and every answer it got (Ack, Busy,
// Error), so that an audit can check afterwards that every acknowledged
// command is in the command stream, and it measures input->update latency:
// the time from sending a Move to receiving the first update whose view of
// the bot's own player carries last_input_seq >= that move.
package swarm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realmstream/realmstream/libs/worldmap"
)

// Gateway is one gateway's client addresses ("" = transport not offered).
type Gateway struct {
	TCP string // host:port
	WS  string // ws://host:port/path
}

// Config configures a swarm. Zero values take the documented defaults.
type Config struct {
	Gateways []Gateway
	Bots     int // default 100
	// WSFraction is the share of bots on WebSocket (0..1), default 0.3.
	WSFraction float64
	// Map is the world layout, default worldmap.Default().
	Map worldmap.Map
	// MoveHz is moves per second per bot, default 10.
	MoveHz float64
	// Speed in units per second, default 30 (kept under the world's limit).
	Speed float32
	// ChatEvery is the mean interval between chat lines of one bot, default 5s.
	ChatEvery time.Duration
	// AttackEvery is the mean interval between attacks of one bot on a player
	// it sees within AttackRange, default 2s; AttackRange default 40.
	AttackEvery time.Duration
	AttackRange float32
	// CrosserFraction is the share of bots that walk across zone borders, default 0.2.
	CrosserFraction float64
	// ResumeEvery is the mean interval between deliberate disconnect+resume of
	// one bot; 0 = never.
	ResumeEvery time.Duration
	// RampUp spreads the logins over this time, default 2s.
	RampUp time.Duration
	// DrainTimeout bounds the wait for outstanding answers at the end, default 10s.
	DrainTimeout time.Duration
	// NamePrefix makes player names (and so dev-mode player ids) unique per run.
	NamePrefix string
	Seed       uint64
	// Progress receives a line every ProgressEvery (default 1s); nil = silent.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Record receives one JSON line per command sent and per answer; nil = off.
	Record io.Writer
}

func (c *Config) defaults() {
	if c.Bots <= 0 {
		c.Bots = 100
	}
	if c.WSFraction < 0 {
		c.WSFraction = 0
	}
	if c.Map.Cols == 0 {
		c.Map = worldmap.Default()
	}
	if c.MoveHz <= 0 {
		c.MoveHz = 10
	}
	if c.Speed <= 0 {
		c.Speed = 30
	}
	if c.ChatEvery <= 0 {
		c.ChatEvery = 5 * time.Second
	}
	if c.AttackEvery <= 0 {
		c.AttackEvery = 2 * time.Second
	}
	if c.AttackRange <= 0 {
		c.AttackRange = 40
	}
	if c.CrosserFraction < 0 {
		c.CrosserFraction = 0
	}
	if c.RampUp <= 0 {
		c.RampUp = 2 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.NamePrefix == "" {
		c.NamePrefix = fmt.Sprintf("bot%x", time.Now().UnixNano()&0xffffff)
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = time.Second
	}
}

// Counters are the swarm-wide figures, updated atomically while it runs.
type Counters struct {
	Sent, Acked, Duplicates, Busy, Rejected, Errors atomic.Int64
	Updates, Connects, ConnectFailures, Resumes     atomic.Int64
	Disconnects, Crossings, Unanswered              atomic.Int64
	Moves, Chats, Attacks, Joins                    atomic.Int64
	ErrorCodes                                      sync.Map // code string -> *atomic.Int64
	RejectReasons                                   sync.Map // reason (digits dropped) -> *atomic.Int64
}

func (c *Counters) rejectReason(r string) {
	b := make([]byte, 0, len(r))
	for i := 0; i < len(r); i++ {
		if ch := r[i]; (ch < '0' || ch > '9') && ch != '.' {
			b = append(b, ch)
		}
	}
	v, _ := c.RejectReasons.LoadOrStore(string(b), new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (c *Counters) errorCode(code string) {
	v, _ := c.ErrorCodes.LoadOrStore(code, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// Swarm is a set of bots.
type Swarm struct {
	cfg  Config
	bots []*bot
	C    Counters
	Lat  Histogram // input->update
	Ack  Histogram // send->Ack
	// Reconnect is the time from a lost connection to the next Welcome.
	Reconnect Histogram

	recMu sync.Mutex
	rec   *json.Encoder

	connected atomic.Int64
	lost      atomic.Int64 // bots whose connection dropped (not on purpose) and that have no session yet
	started   time.Time
	stopped   time.Time
}

// New prepares a swarm (nothing connects before Run).
func New(cfg Config) (*Swarm, error) {
	cfg.defaults()
	if len(cfg.Gateways) == 0 {
		return nil, fmt.Errorf("swarm: no gateways")
	}
	s := &Swarm{cfg: cfg}
	if cfg.Record != nil {
		s.rec = json.NewEncoder(cfg.Record)
	}
	zones := cfg.Map.Zones()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	for i := 0; i < cfg.Bots; i++ {
		b := &bot{
			sw:      s,
			id:      i,
			name:    fmt.Sprintf("%s-%d", cfg.NamePrefix, i),
			gw:      i % len(cfg.Gateways),
			zone:    zones[i%len(zones)],
			rng:     rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1)),
			pending: map[uint64]*sentCmd{},
			seen:    map[string]seenEntity{},
		}
		g := cfg.Gateways[b.gw]
		b.ws = g.WS != "" && (g.TCP == "" || rng.Float64() < cfg.WSFraction)
		b.crosser = rng.Float64() < cfg.CrosserFraction
		b.x = 100 + rng.Float32()*(cfg.Map.ZoneSize-200)
		b.y = 100 + rng.Float32()*(cfg.Map.ZoneSize-200)
		s.bots = append(s.bots, b)
	}
	return s, nil
}

// Run connects every bot and plays until ctx is done, then stops sending,
// waits up to DrainTimeout for the answers still due, and disconnects.
func (s *Swarm) Run(ctx context.Context) *Report {
	s.started = time.Now()
	var wg sync.WaitGroup
	progDone := make(chan struct{})
	if s.cfg.Progress != nil {
		go s.progress(ctx, progDone)
	} else {
		close(progDone)
	}
	for i, b := range s.bots {
		wg.Add(1)
		delay := time.Duration(int64(s.cfg.RampUp) * int64(i) / int64(len(s.bots)))
		go func() {
			defer wg.Done()
			b.run(ctx, delay)
		}()
	}
	wg.Wait()
	s.stopped = time.Now()
	<-progDone
	return s.Report()
}

// Acked lists every command acknowledged by a gateway during the run.
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

func (s *Swarm) progress(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.ProgressEvery)
	defer t.Stop()
	prevLat := s.Lat.Snapshot()
	prevSent, prevAck, prevUpd := int64(0), int64(0), int64(0)
	prevT := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			dt := now.Sub(prevT).Seconds()
			lat := s.Lat.Sub(prevLat)
			sent, ack, upd := s.C.Sent.Load(), s.C.Acked.Load(), s.C.Updates.Load()
			fmt.Fprintf(s.cfg.Progress, "%6.1fs bots %d/%d  sent %6.0f/s  acked %6.0f/s  upd %7.0f/s  busy %d  rej %d  err %d  resumes %d  cross %d  lat p50 %v p99 %v\n",
				now.Sub(s.started).Seconds(), s.connected.Load(), len(s.bots),
				float64(sent-prevSent)/dt, float64(ack-prevAck)/dt, float64(upd-prevUpd)/dt,
				s.C.Busy.Load(), s.C.Rejected.Load(), s.C.Errors.Load(), s.C.Resumes.Load(), s.C.Crossings.Load(),
				lat.Quantile(0.5).Round(100*time.Microsecond), lat.Quantile(0.99).Round(100*time.Microsecond))
			prevLat, prevSent, prevAck, prevUpd, prevT = s.Lat.Snapshot(), sent, ack, upd, now
		}
	}
}

// Package bots is a swarm of simulated players for load and smoke tests: N
// bots connect to a gateway over TCP or WebSocket, log in, join a zone and
// then move at a steady rate, chat and attack now and then. The swarm counts
// what it sent and what came back (Ack, Busy, Error), measures input -> Ack
// and input -> Update latency (the first ZoneUpdate whose EntityView of the
// bot has last_input_seq >= the move's seq), reports a progress line while it
// runs and a Summary at the end.
package bots

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realmstream/realmstream/libs/client"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/worldmap"
)

// Config configures a swarm.
type Config struct {
	// Addr of the gateway: tcp://host:port or ws://host:port/.
	Addr string
	// Bots is the number of simulated players (default 10).
	Bots int
	// Zones the bots are spread over, round robin (default: every zone of Map).
	Zones []string
	// Map is the world layout (default worldmap.Default()).
	Map worldmap.Map
	// MoveRate is moves per second per bot (default 5).
	MoveRate float64
	// ChatEvery makes every Nth action a chat (0: never; default 20).
	ChatEvery int
	// AttackEvery makes every Nth action an attack on another bot (0: never; default 30).
	AttackEvery int
	// Duration of the run; 0 runs until ctx is done.
	Duration time.Duration
	// Token returns the token of bot i; nil uses dev mode (Hello{name}).
	Token func(i int) (string, error)
	// NamePrefix names the bots <prefix><i> (default "bot").
	NamePrefix string
	// ProgressEvery is the interval of the progress callback (default 1s).
	ProgressEvery time.Duration
	// ConnectRate bounds new connections per second (default 200), so a big
	// swarm does not hit the gateway's accept queue all at once.
	ConnectRate float64
}

func (c *Config) defaults() error {
	if c.Addr == "" {
		return errors.New("bots: Addr is required (tcp://host:port or ws://host:port/)")
	}
	if c.Bots <= 0 {
		c.Bots = 10
	}
	if c.Map.Cols == 0 {
		c.Map = worldmap.Default()
	}
	if len(c.Zones) == 0 {
		c.Zones = c.Map.Zones()
	}
	if c.MoveRate <= 0 {
		c.MoveRate = 5
	}
	if c.ChatEvery == 0 {
		c.ChatEvery = 20
	}
	if c.AttackEvery == 0 {
		c.AttackEvery = 30
	}
	if c.NamePrefix == "" {
		c.NamePrefix = "bot"
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = time.Second
	}
	if c.ConnectRate <= 0 {
		c.ConnectRate = 200
	}
	return nil
}

// Summary is the result of a run.
type Summary struct {
	Addr            string            `json:"addr"`
	Transport       string            `json:"transport"`
	Bots            int               `json:"bots"`
	DurationS       float64           `json:"duration_s"`
	Connected       int               `json:"connected"`
	ConnectFailures uint64            `json:"connect_failures"`
	Disconnects     uint64            `json:"disconnects"`
	Sent            uint64            `json:"sent"`
	Acked           uint64            `json:"acked"`
	Duplicates      uint64            `json:"duplicates"`
	Busy            uint64            `json:"busy"`
	Errors          uint64            `json:"errors"`
	ErrorsByCode    map[string]uint64 `json:"errors_by_code,omitempty"`
	ErrorExamples   map[string]string `json:"error_examples,omitempty"` // the last message seen per code
	Updates         uint64            `json:"updates"`
	SentPerSec      float64           `json:"sent_per_s"`
	AckedPerSec     float64           `json:"acked_per_s"`
	AckLatency      Percentiles       `json:"ack_latency"`
	UpdateLatency   Percentiles       `json:"update_latency"`
	PingRTT         Percentiles       `json:"ping_rtt"`
}

// Progress is a snapshot while the swarm runs.
type Progress struct {
	Elapsed              time.Duration
	Connected, Bots      int
	Sent, Acked, Busy    uint64
	Errors, Updates      uint64
	SentPerSec           float64 // over the last interval
	AckP50, AckP99       time.Duration
	UpdateP50, UpdateP99 time.Duration
}

// String is the progress line.
func (p Progress) String() string {
	s := fmt.Sprintf("t=%-4s bots=%d/%d sent=%d (%.0f/s) acked=%d busy=%d errors=%d ack p50=%s p99=%s",
		p.Elapsed.Round(time.Second), p.Connected, p.Bots, p.Sent, p.SentPerSec, p.Acked, p.Busy, p.Errors,
		p.AckP50.Round(10*time.Microsecond), p.AckP99.Round(10*time.Microsecond))
	if p.Updates > 0 {
		s += fmt.Sprintf(" updates=%d upd p50=%s p99=%s", p.Updates, p.UpdateP50.Round(10*time.Microsecond), p.UpdateP99.Round(10*time.Microsecond))
	}
	return s
}

type swarm struct {
	cfg                                   Config
	connected, live                       atomic.Int64
	connectFail, disconnects              atomic.Uint64
	sent, acked, dups, busy, errs, update atomic.Uint64
	ackLat, updLat, ping                  histogram

	mu       sync.Mutex
	byCode   map[string]uint64
	examples map[string]string
}

// Run runs the swarm until cfg.Duration passes or ctx is done, calling
// progress (if not nil) every cfg.ProgressEvery. It returns an error only when
// no bot could connect at all.
func Run(ctx context.Context, cfg Config, progress func(Progress)) (Summary, error) {
	if err := cfg.defaults(); err != nil {
		return Summary{}, err
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	s := &swarm{cfg: cfg, byCode: map[string]uint64{}, examples: map[string]string{}}
	start := time.Now()
	var wg sync.WaitGroup
	gap := time.Duration(float64(time.Second) / cfg.ConnectRate)
	progCtx, stopProgress := context.WithCancel(ctx)
	progDone := make(chan struct{})
	go func() {
		defer close(progDone)
		t := time.NewTicker(cfg.ProgressEvery)
		defer t.Stop()
		var lastSent uint64
		last := start
		for {
			select {
			case <-progCtx.Done():
				return
			case now := <-t.C:
				if progress == nil {
					continue
				}
				sent := s.sent.Load()
				p := s.progress(now.Sub(start))
				p.SentPerSec = float64(sent-lastSent) / now.Sub(last).Seconds()
				lastSent, last = sent, now
				progress(p)
			}
		}
	}()
	for i := 0; i < cfg.Bots; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s.bot(ctx, i)
		}(i)
		select {
		case <-ctx.Done():
		case <-time.After(gap):
		}
		if ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
	stopProgress()
	<-progDone
	el := time.Since(start)
	sum := Summary{
		Addr: cfg.Addr, Transport: transportOf(cfg.Addr), Bots: cfg.Bots, DurationS: el.Seconds(),
		Connected: int(s.connected.Load()), ConnectFailures: s.connectFail.Load(), Disconnects: s.disconnects.Load(),
		Sent: s.sent.Load(), Acked: s.acked.Load(), Duplicates: s.dups.Load(), Busy: s.busy.Load(), Errors: s.errs.Load(),
		Updates: s.update.Load(), AckLatency: s.ackLat.summary(), UpdateLatency: s.updLat.summary(), PingRTT: s.ping.summary(),
	}
	sum.SentPerSec = float64(sum.Sent) / el.Seconds()
	sum.AckedPerSec = float64(sum.Acked) / el.Seconds()
	s.mu.Lock()
	if len(s.byCode) > 0 {
		sum.ErrorsByCode, sum.ErrorExamples = s.byCode, s.examples
	}
	s.mu.Unlock()
	if sum.Sent == 0 && sum.ConnectFailures > 0 {
		return sum, fmt.Errorf("bots: no bot could connect to %s (%d attempts failed)", cfg.Addr, sum.ConnectFailures)
	}
	return sum, nil
}

func transportOf(addr string) string {
	if strings.HasPrefix(addr, "ws") {
		return "ws"
	}
	return "tcp"
}

func (s *swarm) progress(el time.Duration) Progress {
	return Progress{
		Elapsed: el, Connected: int(s.live.Load()), Bots: s.cfg.Bots,
		Sent: s.sent.Load(), Acked: s.acked.Load(), Busy: s.busy.Load(), Errors: s.errs.Load(), Updates: s.update.Load(),
		AckP50: s.ackLat.quantile(0.5), AckP99: s.ackLat.quantile(0.99),
		UpdateP50: s.updLat.quantile(0.5), UpdateP99: s.updLat.quantile(0.99),
	}
}

func (s *swarm) countError(code schema.ErrorCode, msg string) {
	s.errs.Add(1)
	s.mu.Lock()
	s.byCode[code.String()]++
	s.examples[code.String()] = msg
	s.mu.Unlock()
}

// bot runs one simulated player, reconnecting (resuming its session) when the
// connection drops, until ctx is done.
func (s *swarm) bot(ctx context.Context, i int) {
	name := fmt.Sprintf("%s%d", s.cfg.NamePrefix, i)
	zone := s.cfg.Zones[i%len(s.cfg.Zones)]
	rng := rand.New(rand.NewPCG(uint64(i), 42))
	b := &botState{index: i, x: rng.Float32() * s.cfg.Map.ZoneSize, y: rng.Float32() * s.cfg.Map.ZoneSize}
	var welcome *schema.Welcome
	backoff := 100 * time.Millisecond
	counted := false
	for ctx.Err() == nil {
		hello := &schema.Hello{Name: name}
		if welcome != nil {
			hello = &schema.Hello{Token: welcome.Token, ResumeSession: welcome.SessionId}
		} else if s.cfg.Token != nil {
			tok, err := s.cfg.Token(i)
			if err != nil {
				s.connectFail.Add(1)
				return
			}
			hello = &schema.Hello{Token: tok}
		}
		w, c, err := s.connect(ctx, hello, zone)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.connectFail.Add(1)
			welcome = nil // a failed resume starts a fresh session
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		welcome = w
		if !counted {
			s.connected.Add(1)
			counted = true
		}
		s.live.Add(1)
		s.play(ctx, c, w, b, rng)
		s.live.Add(-1)
		_ = c.Close()
		if ctx.Err() == nil {
			s.disconnects.Add(1)
		}
	}
}

type botState struct {
	index int
	x, y  float32 // guarded by play's mu while it runs
	n     int
}

func (s *swarm) connect(ctx context.Context, hello *schema.Hello, zone string) (*schema.Welcome, *client.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.Dial(cctx, s.cfg.Addr, client.Options{})
	if err != nil {
		return nil, nil, err
	}
	w, err := c.Hello(cctx, hello)
	if err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	c.SetSeq(max(c.Seq(), w.LastSeq))
	seq, err := c.Join(cctx, zone)
	if err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	for {
		select {
		case <-cctx.Done():
			_ = c.Close()
			return nil, nil, fmt.Errorf("bots: join of %s not answered: %w", zone, cctx.Err())
		case p, ok := <-c.Packets():
			if !ok {
				return nil, nil, fmt.Errorf("bots: closed while joining: %w", c.Err())
			}
			if p.AckSeq != seq {
				continue
			}
			if e := p.GetError(); e != nil {
				_ = c.Close()
				return nil, nil, fmt.Errorf("bots: join refused: %s %s", e.Code, e.Message)
			}
			if p.GetBusy() != nil { // retry the join
				time.Sleep(50 * time.Millisecond)
				if seq, err = c.Join(cctx, zone); err != nil {
					_ = c.Close()
					return nil, nil, err
				}
				continue
			}
			return w, c, nil
		}
	}
}

// play sends inputs at the configured rate and reads answers until the
// connection or ctx ends.
func (s *swarm) play(ctx context.Context, c *client.Conn, w *schema.Welcome, b *botState, rng *rand.Rand) {
	var mu sync.Mutex
	sentAt := map[uint64]time.Time{} // seq -> send time, until acked
	var moves []uint64               // move seqs not yet seen in an update, ascending
	moveAt := map[uint64]time.Time{}
	done := make(chan struct{})
	var (
		resync   bool   // guarded by mu
		lastMove uint64 // seq of the last move sent; guarded by mu
		located  sync.Once
		firstPos = make(chan struct{})
		near     string  // an entity within attackReach seen lately; guarded by mu
		nearDist float64 // its distance when seen
	)
	nearTarget := func() string {
		mu.Lock()
		defer mu.Unlock()
		t := near
		near = "" // use a sighting once: it may have moved away
		return t
	}
	go func() {
		defer close(done)
		for p := range c.Packets() {
			now := time.Now()
			switch body := p.Body.(type) {
			case *schema.ServerPacket_Ack:
				s.acked.Add(1)
				if body.Ack.Duplicate {
					s.dups.Add(1)
				}
				mu.Lock()
				if t, ok := sentAt[p.AckSeq]; ok {
					s.ackLat.record(now.Sub(t))
					delete(sentAt, p.AckSeq)
				}
				mu.Unlock()
			case *schema.ServerPacket_Busy:
				s.busy.Add(1)
				mu.Lock()
				delete(sentAt, p.AckSeq)
				mu.Unlock()
			case *schema.ServerPacket_Error:
				s.countError(body.Error.Code, body.Error.Message)
				mu.Lock()
				delete(sentAt, p.AckSeq)
				if body.Error.Code == schema.ErrorCode_ERROR_CODE_REJECTED {
					resync = true // the world did not take a move: walk on from where it says we are
				}
				mu.Unlock()
			case *schema.ServerPacket_ZoneChanged:
				mu.Lock()
				b.x, b.y = body.ZoneChanged.X, body.ZoneChanged.Y
				resync = false
				located.Do(func() { close(firstPos) })
				mu.Unlock()
			case *schema.ServerPacket_Update:
				s.update.Add(1)
				for _, e := range body.Update.GetZoneUpdate().GetEntities() {
					if e.Id != w.PlayerId {
						continue
					}
					mu.Lock()
					// The world is the authority on where we are: adopt its
					// position at the start, after a rejection, and whenever
					// no move of ours is in flight.
					if resync || e.LastInputSeq >= lastMove {
						b.x, b.y = e.X, e.Y
						resync = false
					}
					located.Do(func() { close(firstPos) })
					for _, o := range body.Update.GetZoneUpdate().GetEntities() {
						if o.Id == w.PlayerId || o.Dead {
							continue
						}
						if d := math.Hypot(float64(o.X-b.x), float64(o.Y-b.y)); d <= attackReach && (near == "" || d < nearDist) {
							near, nearDist = o.Id, d
						}
					}
					for len(moves) > 0 && moves[0] <= e.LastInputSeq {
						if t, ok := moveAt[moves[0]]; ok {
							s.updLat.record(now.Sub(t))
							delete(moveAt, moves[0])
						}
						moves = moves[1:]
					}
					mu.Unlock()
				}
			}
		}
	}()
	go func() { // RTT samples, every 2s
		tk := time.NewTicker(2 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tk.C:
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if rtt, err := c.Ping(pctx); err == nil {
					s.ping.record(rtt)
				}
				cancel()
			}
		}
	}()
	// Wait briefly for the world to tell us where we stand (our own
	// EntityView); without a world, walk from our own guess.
	select {
	case <-firstPos:
	case <-time.After(time.Second):
	case <-ctx.Done():
	case <-done:
	}
	interval := time.Duration(float64(time.Second) / s.cfg.MoveRate)
	// Spread the bots' phases so they do not all send on the same tick, and
	// leave one interval after the join (the world times moves from it).
	t := time.NewTimer(interval + time.Duration(rng.Int64N(int64(interval)+1)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Give in-flight answers a moment, then stop.
			wait := time.NewTimer(2 * time.Second)
			for {
				mu.Lock()
				n := len(sentAt)
				mu.Unlock()
				if n == 0 {
					break
				}
				select {
				case <-wait.C:
					n = 0
				case <-time.After(10 * time.Millisecond):
				}
				if n == 0 {
					break
				}
			}
			wait.Stop()
			return
		case <-done:
			return
		case <-t.C:
		}
		t.Reset(interval)
		b.n++
		var p *schema.ClientPacket
		isMove := false
		// Attack the nearest other entity seen in our area of interest, if
		// it is within reach; otherwise this turn is a move.
		target := ""
		if s.cfg.AttackEvery > 0 && b.n%s.cfg.AttackEvery == 0 {
			target = nearTarget()
		}
		switch {
		case s.cfg.ChatEvery > 0 && b.n%s.cfg.ChatEvery == 0:
			p = &schema.ClientPacket{Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: fmt.Sprintf("hello from %s #%d", w.PlayerId, b.n)}}}
		case target != "":
			p = &schema.ClientPacket{Body: &schema.ClientPacket_Attack{Attack: &schema.Attack{TargetId: target}}}
		default:
			// A random walk of up to 5 units a step, kept inside the zone.
			size := s.cfg.Map.ZoneSize
			dx, dy := rng.Float32()*10-5, rng.Float32()*10-5
			mu.Lock()
			b.x = clampf(b.x+dx, 0, size-1)
			b.y = clampf(b.y+dy, 0, size-1)
			p = &schema.ClientPacket{Body: &schema.ClientPacket_Move{Move: &schema.Move{X: b.x, Y: b.y}}}
			mu.Unlock()
			isMove = true
		}
		// Reserve the seq and record it before the write; the write happens
		// without holding mu so that answers keep flowing while it blocks.
		seq := c.Reserve()
		p.Seq = seq
		now := time.Now()
		mu.Lock()
		sentAt[seq] = now
		if isMove {
			lastMove = seq
			moves = append(moves, seq)
			moveAt[seq] = now
			if len(moves) > 4096 { // no world echoing: do not grow forever
				delete(moveAt, moves[0])
				moves = moves[1:]
			}
		}
		mu.Unlock()
		if err := c.SendRaw(ctx, p); err != nil {
			return
		}
		s.sent.Add(1)
	}
}

// attackReach is how close a target must have been seen to be attacked
// (the world's default attack range is 60).
const attackReach = 50

func clampf(v, lo, hi float32) float32 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

package rules

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// walk sends a bot's 10 Hz moves (step units along x, 20 moves out and 20 back) with the
// given receive times and decides them at the tick after their receipt, as
// the zone does; it returns the refused moves.
func walk(t *testing.T, c *Config, step float32, recv []int64, tick time.Duration) []string {
	t.Helper()
	s := NewState("z1_1")
	s.Players["bot"] = &schema.PlayerState{PlayerId: "bot", SessionId: "sb", X: 100, Y: 850, Hp: 100, MaxHp: 100}
	var refused []string
	x := float32(100)
	for i, r := range recv {
		if (i/20)%2 == 0 {
			x += step
		} else {
			x -= step
		}
		now := (r/int64(tick) + 1) * int64(tick)
		seq := uint64(i + 1)
		cmd := &schema.Command{CommandId: wire.CommandID("sb", seq), SessionId: "sb", ClientSeq: seq, PlayerId: "bot", ReceivedAtNs: r,
			Body: &schema.Command_Move{Move: &schema.Move{X: x, Y: 850}}}
		ev := c.Decide(s, cmd, now)
		if rej := ev.GetCommandRejected(); rej != nil {
			refused = append(refused, FormatEvent(ev))
		}
		c.Apply(s, ev, seq)
	}
	return refused
}

// TestMovesInBursts (issue 15 item 3): a bot walking at 10 Hz below the max
// speed has every move accepted whatever the bunching of their arrival at
// the gateway: moves delivered in bursts (several at the same receive
// time after a stall), random FIFO jitter, and the zone deciding them one
// tick later. Moves faster than the max speed are still refused.
func TestMovesInBursts(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	const period = 100 * time.Millisecond
	step := float32(0.95 * c.MaxSpeed * float32(period.Seconds())) // 95% of the max speed
	base := int64(time.Hour)
	send := func(i int) int64 { return base + int64(i)*int64(period) }
	cases := map[string][]int64{}
	// Regular arrivals.
	var reg []int64
	for i := 0; i < n; i++ {
		reg = append(reg, send(i))
	}
	cases["regular"] = reg
	// Bursts: the moves of each 400ms arrive together at its end.
	var bursts []int64
	for i := 0; i < n; i++ {
		bursts = append(bursts, send(i/4*4+3))
	}
	cases["bursts of 4"] = bursts
	// A stall: nothing for 450ms, then everything at once, every 2s.
	var stall []int64
	for i := 0; i < n; i++ {
		r := send(i)
		if k := i % 20; k < 5 {
			r = send(i - k + 4)
		}
		stall = append(stall, r)
	}
	cases["stalls of 450ms"] = stall
	// Random delays of 0-400ms, FIFO (TCP keeps order).
	rng := rand.New(rand.NewPCG(7, 7))
	var jit []int64
	for i := 0; i < n; i++ {
		r := send(i) + rng.Int64N(int64(400*time.Millisecond))
		if i > 0 {
			r = max(r, jit[i-1])
		}
		jit = append(jit, r)
	}
	cases["random FIFO jitter 0-400ms"] = jit
	for name, recv := range cases {
		for _, tick := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond} {
			if refused := walk(t, c, step, recv, tick); len(refused) > 0 {
				t.Errorf("%s, tick %v: %d of %d legal moves refused, e.g. %s", name, tick, len(refused), n, refused[0])
			}
		}
	}
	// Faster than the max speed (120%) with bursts: refused, the budget
	// never grows past MaxStep.
	fast := float32(1.2 * c.MaxSpeed * float32(period.Seconds()))
	if refused := walk(t, c, fast, cases["bursts of 4"], 50*time.Millisecond); len(refused) < n/10 {
		t.Errorf("a bot at 120%% of the max speed had only %d of %d moves refused", len(refused), n)
	}
}

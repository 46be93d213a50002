package world

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/redistest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/worldmap"
	"github.com/realmstream/realmstream/services/world/internal/zone"
)

// TestExactlyOnce: every command accepted by JetStream is applied exactly
// once (checked by command id against the event logs) across redeliveries
// (the same command resent under a new Nats-Msg-Id, as after the duplicate
// window), a crash with takeover, and a graceful restart.
func TestExactlyOnce(t *testing.T) {
	srv, _, js := natstest.StartWithStreams(t)
	redistest.Shared(t)
	base := testConfig(t, srv.URL, redistest.Addr(), "")
	mk := func(id string) Config { c := base; c.InstanceID = id; return c }
	zones := base.Map.Zones()
	a, b, c := startInst(t, mk("a")), startInst(t, mk("b")), startInst(t, mk("c"))
	insts := []*inst{a, b, c}
	waitBalanced(t, 15*time.Second, insts...)

	var mu sync.Mutex
	seqs := map[string]uint64{}
	phase := func(n int) {
		var wg sync.WaitGroup
		for i, z := range zones {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := fmt.Sprintf("s%d", i)
				for k := 0; k < n; k++ {
					mu.Lock()
					seqs[s]++
					q := seqs[s]
					mu.Unlock()
					cmd := chat(fmt.Sprintf("m%d", q))
					if q == 1 {
						cmd = join(z)
					}
					send(t, js, z, s, q, "p"+s, cmd)
					if q%5 == 0 { // a resend that JetStream cannot deduplicate
						sendID(t, js, z, fmt.Sprintf("resend-%s-%d", s, q), s, q, "p"+s, chat(fmt.Sprintf("m%d", q)))
					}
				}
			}()
		}
		wg.Wait()
	}
	phase(15)
	b.crash() // takeover of b's zones while commands are in flight
	phase(15)
	c.stop() // graceful handover
	d := startInst(t, mk("d"))
	insts = append(insts, d)
	phase(15)
	waitBalanced(t, 15*time.Second, insts...)
	phase(5)

	cmds := commandIDs(t, js)
	var all []string
	for id := range cmds {
		all = append(all, id)
	}
	waitApplied(t, js, zones, all, 20*time.Second)
	_, r := checkLogs(t, js, zones)
	if len(r.Applied) != len(cmds) {
		t.Fatalf("%d commands applied, %d distinct commands in CMD", len(r.Applied), len(cmds))
	}
	t.Logf("%d distinct commands (%d resent under new ids) applied exactly once; %d events, %d claims", len(cmds), len(cmds)/5, r.Events, r.Claims)
}

// TestTransferCrash crosses a player from one zone into a neighbour owned by
// another instance and crashes one side at each step of the transfer. The
// player always ends in exactly one zone, the target, accepted once.
func TestTransferCrash(t *testing.T) {
	for _, tc := range []struct{ name, side, at string }{
		{"source before TransferIn is sent", "source", "send:"},
		{"source before TransferDelivered", "source", "/d/"},
		{"target before TransferAccepted", "target", "/c/"},
		{"target before the ack", "target", "ack:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, js := natstest.StartWithStreams(t)
			redistest.Shared(t)
			base := testConfig(t, srv.URL, redistest.Addr(), "")
			m := base.Map
			zones := m.Zones()
			var armed sync.Mutex
			trigger := ""
			hit := make(chan struct{}, 1)
			hook := func(_ *Service, _ *inst) {}
			hookFor := func(s *Service, _ *inst) {
				s.hooks.beforeAppend = func(z, id string) error {
					armed.Lock()
					defer armed.Unlock()
					if trigger != "" && strings.Contains(z+"|"+id, trigger) {
						trigger = ""
						hit <- struct{}{}
						return zone.ErrCrash
					}
					return nil
				}
			}
			mk := func(id string) Config { c := base; c.InstanceID = id; return c }
			a := startInst(t, mk("a"), hookFor)
			b := startInst(t, mk("b"), hook)
			own := waitBalanced(t, 15*time.Second, a, b)
			// A pair of neighbours: src owned by a, dst by b (or the reverse).
			src, dst, dx, dy := pair(m, own, tc.side)
			x, y := float32(500), float32(500)
			switch {
			case dx == 1:
				x = m.ZoneSize - 2
			case dx == -1:
				x = 1
			case dy == 1:
				y = m.ZoneSize - 2
			case dy == -1:
				y = 1
			}
			// Put the player at the edge of src (a transfer from outside).
			in := &schema.Command{CommandId: "setup", Body: &schema.Command_TransferIn{TransferIn: &schema.TransferIn{TransferId: "setup", FromZone: "none",
				Player: &schema.PlayerState{PlayerId: "pt", Name: "pt", SessionId: "st", X: x, Y: y, Hp: 100, MaxHp: 100}}}}
			sendRaw(t, js, src, "setup", in)
			waitApplied(t, js, zones, []string{"setup"}, 10*time.Second)

			tid := fmt.Sprintf("%s>%s/%s", src, dst, "st:1")
			armed.Lock()
			switch tc.at {
			case "send:":
				trigger = "send:" + tid
			case "/d/":
				trigger = src + "|" + src + "/d/" + tid
			case "/c/":
				trigger = dst + "|" + dst + "/c/" + tid
			case "ack:":
				trigger = dst + "|ack:" + tid
			}
			armed.Unlock()
			send(t, js, src, "st", 1, "pt", move(x+float32(dx)*4, y+float32(dy)*4))
			select {
			case <-hit:
			case <-time.After(10 * time.Second):
				t.Fatalf("crash point %q never reached", tc.at)
			}
			a.crash()
			waitAllOwned(t, 10*time.Second, b)
			waitfor.True(t, 15*time.Second, func() error {
				logs, _ := checkLogs(t, js, zones)
				st := fold(logs)
				if w := whereIs(st, "pt"); len(w) != 1 || w[0] != dst {
					return fmt.Errorf("player in %v, want only %s", w, dst)
				}
				if n := len(st[src].PendingTransfers); n != 0 {
					return fmt.Errorf("%d transfers still pending in %s", n, src)
				}
				return nil
			})
			logs, _ := checkLogs(t, js, zones)
			accepted := 0
			for _, e := range logs[dst] {
				if e.Event.GetTransferAccepted().GetTransferId() == tid {
					accepted++
				}
			}
			if accepted != 1 {
				t.Fatalf("transfer %s accepted %d times", tid, accepted)
			}
		})
	}
}

// pair finds neighbouring zones src -> dst where the crashing side (a) is
// the source or the target as asked.
func pair(m worldmap.Map, own map[string]string, side string) (src, dst string, dx, dy int) {
	for _, z := range m.Zones() {
		for _, d := range [][2]int{{1, 0}, {-1, 0}, {0, 1}, {0, -1}} {
			n, ok := m.Neighbour(z, d[0], d[1])
			if !ok || own[z] == own[n] {
				continue
			}
			if (side == "source" && own[z] == "a") || (side == "target" && own[n] == "a") {
				return z, n, d[0], d[1]
			}
		}
	}
	panic(fmt.Sprintf("no neighbouring zones with different owners: %v", own))
}

package rules

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/golden"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestScripts runs every testdata/*.txt script and compares the decisions
// and states with testdata/*.golden (go test -update rewrites them).
//
// Script lines:
//
//	zone <id>
//	time <ms>                                   the owner's clock for what follows
//	cmd <session> <seq> <player> join [zone]
//	cmd <session> <seq> <player> move <x> <y>
//	cmd <session> <seq> <player> chat zone|nearby <text...>
//	cmd <session> <seq> <player> attack <target>
//	cmd <session> <seq> <player> leave
//	xfer <transfer-id> <from> <player> <session> <x> <y> <last-seq>
//	tick                                        apply the events due now
//	delivered <transfer-id>                     the source saw its TransferIn stored
//	state                                       print the players
func TestScripts(t *testing.T) {
	golden.Scripts(t, "testdata/*.txt", *update, runScript)
}

func runScript(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := Default()
	s := NewState("z1_1")
	var now int64
	var out strings.Builder
	var log []*schema.Event
	seq := uint64(0)
	apply := func(ev *schema.Event) {
		seq++
		Apply(s, ev, seq, c.KeepTransfers)
		log = append(log, ev)
		fmt.Fprintf(&out, "  -> %s\n", FormatEvent(ev))
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fmt.Fprintf(&out, "%s\n", line)
		w := strings.Fields(line)
		switch w[0] {
		case "zone":
			s, log, seq = NewState(w[1]), nil, 0
		case "time":
			ms, _ := strconv.ParseInt(w[1], 10, 64)
			now = ms * int64(time.Millisecond)
		case "cmd":
			// A trailing "@<ms>" is the gateway's receive time of the command.
			var recv int64
			if last := w[len(w)-1]; strings.HasPrefix(last, "@") {
				ms, err := strconv.ParseInt(last[1:], 10, 64)
				if err != nil {
					t.Fatalf("%s: bad receive time %q", path, last)
				}
				recv, w = ms*int64(time.Millisecond), w[:len(w)-1]
			}
			cmd := parseCmd(t, s.Zone, w[1:])
			cmd.ReceivedAtNs = recv
			if ev := c.Decide(s, cmd, now); ev == nil {
				fmt.Fprintf(&out, "  -> duplicate (no event)\n")
			} else {
				apply(ev)
			}
		case "xfer":
			x, _ := strconv.ParseFloat(w[5], 32)
			y, _ := strconv.ParseFloat(w[6], 32)
			ls, _ := strconv.ParseUint(w[7], 10, 64)
			cmd := &schema.Command{CommandId: w[1], SessionId: w[4], PlayerId: w[3], Zone: s.Zone,
				Body: &schema.Command_TransferIn{TransferIn: &schema.TransferIn{TransferId: w[1], FromZone: w[2],
					Player: &schema.PlayerState{PlayerId: w[3], Name: w[3], SessionId: w[4], X: float32(x), Y: float32(y), Hp: 100, MaxHp: 100, LastInputSeq: ls}}}}
			if ev := c.Decide(s, cmd, now); ev == nil {
				fmt.Fprintf(&out, "  -> duplicate (no event)\n")
			} else {
				apply(ev)
			}
		case "tick":
			for _, ev := range c.Tick(s, now) {
				apply(ev)
			}
		case "delivered":
			apply(&schema.Event{EventId: s.Zone + "/d/" + w[1], Zone: s.Zone, TimestampNs: now,
				Body: &schema.Event_TransferDelivered{TransferDelivered: &schema.TransferDelivered{TransferId: w[1]}}})
		case "state":
			out.WriteString(formatState(s))
		default:
			t.Fatalf("%s: unknown line %q", path, line)
		}
	}
	// Replaying the log into an empty state rebuilds the same state.
	r := NewState(s.Zone)
	for i, ev := range log {
		Apply(r, ev, uint64(i+1), c.KeepTransfers)
	}
	if !proto.Equal(r, s) {
		t.Errorf("replay differs from the live state:\n%s\n%s", formatState(r), formatState(s))
	}
	return out.String()
}

func parseCmd(t *testing.T, zone string, w []string) *schema.Command {
	seq, err := strconv.ParseUint(w[1], 10, 64)
	if err != nil {
		t.Fatalf("bad seq %q", w[1])
	}
	cmd := &schema.Command{CommandId: wire.CommandID(w[0], seq), SessionId: w[0], ClientSeq: seq, PlayerId: w[2], Zone: zone}
	f := func(i int) float32 { v, _ := strconv.ParseFloat(w[i], 32); return float32(v) }
	switch w[3] {
	case "join":
		j := &schema.Join{Zone: zone}
		if len(w) > 4 {
			j.Zone = w[4]
		}
		cmd.Body = &schema.Command_Join{Join: j}
	case "move":
		cmd.Body = &schema.Command_Move{Move: &schema.Move{X: f(4), Y: f(5)}}
	case "chat":
		sc := schema.ChatScope_CHAT_SCOPE_ZONE
		if w[4] == "nearby" {
			sc = schema.ChatScope_CHAT_SCOPE_NEARBY
		}
		cmd.Body = &schema.Command_Chat{Chat: &schema.Chat{Text: strings.Join(w[5:], " "), Scope: sc}}
	case "attack":
		cmd.Body = &schema.Command_Attack{Attack: &schema.Attack{TargetId: w[4]}}
	case "leave":
		cmd.Body = &schema.Command_Leave{Leave: &schema.Leave{}}
	default:
		t.Fatalf("unknown command %q", w[3])
	}
	return cmd
}

func formatState(s *schema.ZoneSnapshot) string {
	var b strings.Builder
	ids := make([]string, 0, len(s.Players))
	for id := range s.Players {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Fprintf(&b, "  state %s seq=%d events=%d pending=%d accepted=%d\n", s.Zone, s.LastSeq, s.Events, len(s.PendingTransfers), len(s.AcceptedTransfers))
	for _, id := range ids {
		p := s.Players[id]
		fmt.Fprintf(&b, "    %s %s (%.1f,%.1f) hp=%d dead=%v kills=%d deaths=%d in=%d\n", id, p.SessionId, p.X, p.Y, p.Hp, p.Dead, p.Kills, p.Deaths, p.LastInputSeq)
	}
	return b.String()
}

func TestClips(t *testing.T) {
	r := Rect{10, 10, 20, 20}
	for _, tc := range []struct {
		x0, y0, x1, y1 float32
		want           bool
	}{
		{0, 0, 5, 5, false}, {0, 15, 30, 15, true}, {15, 15, 15, 15, true}, {0, 0, 30, 30, true}, {0, 25, 30, 25, false}, {21, 0, 21, 30, false},
	} {
		if got := clips(r, tc.x0, tc.y0, tc.x1, tc.y1); got != tc.want {
			t.Errorf("clips(%v) = %v", tc, got)
		}
	}
}

// FuzzDecideApply feeds arbitrary command sequences: nothing panics, every
// non-duplicate command causes exactly one event, a redelivery causes none,
// and replaying the log rebuilds the same state.
func FuzzDecideApply(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 200, 100, 50})
	f.Add([]byte("join move attack chat leave xfer"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		s := NewState("z1_1")
		var log []*schema.Event
		seqs := map[string]uint64{}
		for i := 0; i+3 < len(data) && i < 400; i += 4 {
			op, a, b, d := data[i], data[i+1], data[i+2], data[i+3]
			pl := fmt.Sprint("p", a%4)
			ses := "s" + pl
			seqs[ses]++
			cmd := &schema.Command{SessionId: ses, PlayerId: pl, ClientSeq: seqs[ses], Zone: s.Zone}
			cmd.CommandId = wire.CommandID(ses, cmd.ClientSeq)
			switch op % 6 {
			case 0:
				cmd.Body = &schema.Command_Join{Join: &schema.Join{Zone: s.Zone}}
			case 1:
				cmd.Body = &schema.Command_Move{Move: &schema.Move{X: float32(b)*5 - 100, Y: float32(d)*5 - 100}}
			case 2:
				cmd.Body = &schema.Command_Attack{Attack: &schema.Attack{TargetId: fmt.Sprint("p", b%4)}}
			case 3:
				cmd.Body = &schema.Command_Chat{Chat: &schema.Chat{Text: string(data[i:min(len(data), i+int(b%8))])}}
			case 4:
				cmd.Body = &schema.Command_Leave{Leave: &schema.Leave{}}
			case 5:
				id := fmt.Sprint("x", b%3)
				cmd.CommandId = id
				cmd.Body = &schema.Command_TransferIn{TransferIn: &schema.TransferIn{TransferId: id, FromZone: "z0_1",
					Player: &schema.PlayerState{PlayerId: pl, SessionId: ses, X: float32(d), Y: 5, Hp: 100}}}
			}
			now := int64(i) * int64(100*time.Millisecond)
			ev := c.Decide(s, cmd, now)
			if ev != nil {
				log = append(log, ev)
				Apply(s, ev, uint64(len(log)), c.KeepTransfers)
				if c.Decide(s, cmd, now) != nil {
					t.Fatalf("command %s applied twice", cmd.CommandId)
				}
			}
			for _, te := range c.Tick(s, now) {
				log = append(log, te)
				Apply(s, te, uint64(len(log)), c.KeepTransfers)
			}
		}
		r := NewState("z1_1")
		for i, ev := range log {
			Apply(r, ev, uint64(i+1), c.KeepTransfers)
		}
		if !proto.Equal(r, s) {
			t.Fatal("replay differs")
		}
	})
}

// TestReorderedRedelivery: a command redelivered behind later ones of its
// session is still applied once; every seq is applied exactly once whatever
// the order within the window.
func TestReorderedRedelivery(t *testing.T) {
	s := NewState("z")
	s.Sessions["s"] = 0
	order := []uint64{1, 3, 4, 2, 2, 6, 5, 3, 70, 7, 8, 69, 5}
	applied := map[uint64]int{}
	for _, q := range order {
		if seen(s, "s", q) {
			continue
		}
		applied[q]++
		markSeen(s, "s", q)
	}
	for _, q := range []uint64{1, 2, 3, 4, 5, 6, 7, 8, 69, 70} {
		if applied[q] != 1 {
			t.Errorf("seq %d applied %d times", q, applied[q])
		}
	}
	if !seen(s, "s", 4) || seen(s, "s", 68) || !seen(s, "s", 6) {
		t.Fatalf("seen: high %d mask %b", s.Sessions["s"], s.SessionMasks["s"])
	}
}

func TestSessionPruning(t *testing.T) {
	c := Default()
	s := NewState("z")
	seq := uint64(0)
	for i := 0; i < 3000; i++ {
		sess := fmt.Sprint("s", i)
		now := int64(i) * int64(time.Second)
		for _, body := range []*schema.Command{{Body: &schema.Command_Join{Join: &schema.Join{}}}, {Body: &schema.Command_Leave{Leave: &schema.Leave{}}}} {
			q := uint64(1)
			if body.GetLeave() != nil {
				q = 2
			}
			body.SessionId, body.PlayerId, body.ClientSeq, body.CommandId = sess, "p"+sess, q, wire.CommandID(sess, q)
			ev := c.Decide(s, body, now)
			seq++
			Apply(s, ev, seq, c.KeepTransfers)
		}
	}
	// 3000 sessions over 3000s of event time; only those within ~10 minutes (+ pruning period) remain.
	if n := len(s.Sessions); n > 1200 || n < 600 {
		t.Fatalf("%d sessions kept", n)
	}
	if len(s.SessionLeftNs) != len(s.Sessions) {
		t.Fatalf("left %d, sessions %d", len(s.SessionLeftNs), len(s.Sessions))
	}
}

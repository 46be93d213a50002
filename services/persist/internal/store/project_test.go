package store

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/realmstream/realmstream/libs/golden"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestProjectGolden folds the records of each testdata/project/*.txt script
// with Project and Memberships and compares the player patches, tallies and
// memberships with testdata/project/*.golden (go test -update rewrites
// them), like the rules' scripts. A script line is one stored event:
//
//	<seq>.<index> <zone> <player> join <name> <x> <y> <hp>
//	<seq>.<index> <zone> <player> transfer-in <name> <x> <y> <hp>
//	<seq>.<index> <zone> <player> move <x> <y>
//	<seq>.<index> <zone> <player> leave
//	<seq>.<index> <zone> <player> hit <target> <target-hp> [killed]
//	<seq>.<index> <zone> <player> died [<killer>]
//	<seq>.<index> <zone> <player> respawn <x> <y> <hp>
//	<seq>.<index> <zone> <player> transfer-out <to-zone>
//
// Lines need not be in log order (Project sorts); "#" starts a comment.
func TestProjectGolden(t *testing.T) {
	golden.Scripts(t, filepath.Join("testdata", "project", "*.txt"), *update, func(t *testing.T, path string) string {
		return renderProjection(readProjectScript(t, path))
	})
}

func readProjectScript(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []Record
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		bad := func(format string, a ...any) {
			t.Helper()
			t.Fatalf("%s:%d: %s", path, n, fmt.Sprintf(format, a...))
		}
		if len(fs) < 4 {
			bad("want <seq>.<index> <zone> <player> <event> ...")
		}
		seqS, idxS, _ := strings.Cut(fs[0], ".")
		seq, err1 := strconv.ParseUint(seqS, 10, 64)
		idx, err2 := strconv.ParseUint(idxS, 10, 32)
		if err1 != nil || err2 != nil {
			bad("position %q: want <seq>.<index>", fs[0])
		}
		zone, player, kind, args := fs[1], fs[2], fs[3], fs[4:]
		num := func(i int) float64 {
			if i >= len(args) {
				bad("%s: argument %d missing", kind, i+1)
			}
			v, err := strconv.ParseFloat(args[i], 64)
			if err != nil {
				bad("%s: %q is not a number", kind, args[i])
			}
			return v
		}
		str := func(i int) string {
			if i >= len(args) {
				bad("%s: argument %d missing", kind, i+1)
			}
			return args[i]
		}
		state := func() *schema.PlayerState {
			return &schema.PlayerState{PlayerId: player, Name: str(0), X: float32(num(1)), Y: float32(num(2)), Hp: int32(num(3)), MaxHp: 100}
		}
		ev := &schema.Event{EventId: fmt.Sprintf("%s/%d/%d", zone, seq, idx), Zone: zone, PlayerId: player, TimestampNs: int64(seq) * 1000}
		switch kind {
		case "join":
			ev.Body = &schema.Event_PlayerJoined{PlayerJoined: &schema.PlayerJoined{Player: state()}}
		case "transfer-in":
			ev.Body = &schema.Event_TransferAccepted{TransferAccepted: &schema.TransferAccepted{TransferId: "t" + fs[0], FromZone: "elsewhere", Player: state()}}
		case "move":
			ev.Body = &schema.Event_PlayerMoved{PlayerMoved: &schema.PlayerMoved{X: float32(num(0)), Y: float32(num(1))}}
		case "leave":
			ev.Body = &schema.Event_PlayerLeft{PlayerLeft: &schema.PlayerLeft{Reason: "script"}}
		case "hit":
			ev.Body = &schema.Event_AttackHit{AttackHit: &schema.AttackHit{TargetId: str(0), TargetHp: int32(num(1)), Damage: 10,
				Killed: len(args) > 2 && args[2] == "killed"}}
		case "died":
			d := &schema.PlayerDied{}
			if len(args) > 0 {
				d.KillerId = args[0]
			}
			ev.Body = &schema.Event_PlayerDied{PlayerDied: d}
		case "respawn":
			ev.Body = &schema.Event_PlayerRespawned{PlayerRespawned: &schema.PlayerRespawned{X: float32(num(0)), Y: float32(num(1)), Hp: int32(num(2))}}
		case "transfer-out":
			ev.Body = &schema.Event_TransferOut{TransferOut: &schema.TransferOut{TransferId: "t" + fs[0], ToZone: str(0)}}
		default:
			bad("unknown event %q", kind)
		}
		r := Record{Seq: seq, Index: uint32(idx), Zone: zone}
		fill(&r, ev)
		if r.Type != wire.EventType(ev) {
			bad("type %q", r.Type)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// renderProjection prints what Project and Memberships make of recs, one
// fact a line, in their output order.
func renderProjection(recs []Record) string {
	var b strings.Builder
	patches, tallies := Project(recs)
	for _, p := range patches {
		fmt.Fprintf(&b, "player %s seq %d ts %d touched %v\n", p.PlayerID, p.Seq, p.TSNs, p.Touched)
		if p.Name != nil {
			fmt.Fprintf(&b, "  name %s @%d\n", *p.Name, p.Seqs.Name)
		}
		if p.Zone != nil {
			fmt.Fprintf(&b, "  zone %s @%d\n", *p.Zone, p.Seqs.Zone)
		}
		if p.X != nil {
			fmt.Fprintf(&b, "  pos %g %g @%d\n", *p.X, *p.Y, p.Seqs.Pos)
		}
		if p.HP != nil {
			fmt.Fprintf(&b, "  hp %d @%d\n", *p.HP, p.Seqs.HP)
		}
		if p.Online != nil {
			fmt.Fprintf(&b, "  online %t @%d\n", *p.Online, p.Seqs.Online)
		}
	}
	for _, t := range tallies {
		kind := "kill"
		if t.Kind == 'd' {
			kind = "death"
		}
		fmt.Fprintf(&b, "tally %s %s at %d.%d\n", t.PlayerID, kind, t.Seq, t.Index)
	}
	for _, m := range Memberships(recs) {
		fmt.Fprintf(&b, "member %s %s present %t @%d\n", m.Zone, m.PlayerID, m.Present, m.Seq)
	}
	return b.String()
}

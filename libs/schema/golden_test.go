package schema

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

var update = flag.Bool("update", false, "rewrite testdata/packets.golden from the current encoding")

// goldenPackets is one packet of every body of ClientPacket and ServerPacket
// with every field set. Their bytes are pinned in testdata/packets.golden: a
// change of a field number, type or oneof that would break deployed clients
// fails TestGoldenPackets. Clients in other languages can test their
// encoders and decoders against the same file (name, then hex).
func goldenPackets() map[string]proto.Message {
	pos := &EntityView{Id: "p-ann", Name: "ann", X: 12.5, Y: 900.25, Hp: 87, Dead: false, LastInputSeq: 41}
	return map[string]proto.Message{
		"client.hello": &ClientPacket{Seq: 1, Body: &ClientPacket_Hello{Hello: &Hello{Token: "eyJ.x.y", Name: "ann", ResumeSession: "s0123456789abcdef01234567",
			ProtocolVersion: 2, ClientName: "realmstream-go", ClientVersion: "1.2.3", WantWorld: true}}},
		"client.hello_v1":   &ClientPacket{Seq: 1, Body: &ClientPacket_Hello{Hello: &Hello{Name: "ann"}}},
		"client.join":       &ClientPacket{Seq: 2, Body: &ClientPacket_Join{Join: &Join{Zone: "z1_1"}}},
		"client.leave":      &ClientPacket{Seq: 3, Body: &ClientPacket_Leave{Leave: &Leave{}}},
		"client.move":       &ClientPacket{Seq: 300, Body: &ClientPacket_Move{Move: &Move{X: 500.5, Y: -1}}},
		"client.chat":       &ClientPacket{Seq: 5, Body: &ClientPacket_Chat{Chat: &Chat{Text: "héllo", Scope: ChatScope_CHAT_SCOPE_NEARBY}}},
		"client.attack":     &ClientPacket{Seq: 6, Body: &ClientPacket_Attack{Attack: &Attack{TargetId: "bot-7"}}},
		"client.ping":       &ClientPacket{Seq: 7, Body: &ClientPacket_Ping{Ping: &Ping{ClientTimeNs: 1764000000123456789}}},
		"client.world_info": &ClientPacket{Seq: 8, Body: &ClientPacket_WorldInfo{WorldInfo: &WorldInfoRequest{}}},
		"server.welcome": &ServerPacket{AckSeq: 1, Body: &ServerPacket_Welcome{Welcome: &Welcome{SessionId: "s0123", PlayerId: "u42", Token: "eyJ.a.b",
			LastSeq: 1024, ServerTimeNs: 1764000000000000000, ServerVersion: "v0.9.0", ProtocolVersion: 2,
			Limits: &Limits{MaxFrameBytes: 4096, RatePerSec: 100, Burst: 200, MaxChatBytes: 200, MaxNameBytes: 32, MaxIdBytes: 64, HelloTimeoutMs: 10000},
			World: &WorldInfo{Cols: 2, Rows: 2, ZoneSize: 1000, CellSize: 100, MaxSpeed: 250,
				Zones: []*ZoneInfo{
					{Id: "z0_0", Col: 0, Row: 0, Neighbours: []*Neighbour{{Dx: 1, Dy: 0, Zone: "z1_0"}}},
					{Id: "z1_0", Col: 1, Row: 0, OriginX: 1000, Neighbours: []*Neighbour{{Dx: -1, Dy: 0, Zone: "z0_0"}}},
					{Id: "z0_1", Col: 0, Row: 1, OriginY: 1000, Neighbours: []*Neighbour{{Dx: 0, Dy: -1, Zone: "z0_0"}}},
				},
				Obstacles: []*Rect{{MinX: 100, MinY: 200, MaxX: 150, MaxY: 400}}},
			TokenExpiresAtNs: 1764086400000000000, SessionExpiresAtNs: 1764086400000000000, PlayerName: "ann", GatewayId: "gw-1"}}},
		"server.ack": &ServerPacket{AckSeq: 2, Body: &ServerPacket_Ack{Ack: &Ack{StreamSeq: 123456, Duplicate: true}}},
		"server.update": &ServerPacket{Body: &ServerPacket_Update{Update: &Update{ZoneUpdate: &ZoneUpdate{Zone: "z1_1", Cell: 55, Tick: 9001, ServerTimeNs: 1764000000000000001,
			Entities: []*EntityView{pos, {Id: "bot-7", Name: "bot-7", X: 1, Y: 2, Hp: 0, Dead: true}},
			Chat:     []*ChatLine{{From: "ann", Text: "hi", Scope: ChatScope_CHAT_SCOPE_NEARBY}},
			Combat:   []*CombatLine{{Attacker: "p-ann", Target: "bot-7", Damage: 10, Killed: true}},
			Removed:  []string{"p-gone"}}}}},
		"server.updates": &ServerPacket{Body: &ServerPacket_Updates{Updates: &Updates{ZoneUpdates: []*ZoneUpdate{
			{Zone: "z1_1", Cell: 54, Tick: 9001, ServerTimeNs: 1764000000000000001, Entities: []*EntityView{pos}, Removed: []string{"p-gone"}},
			{Zone: "z1_1", Cell: 55, Tick: 9001, ServerTimeNs: 1764000000000000001, Entities: []*EntityView{{Id: "bot-7", Name: "bot-7", X: 1, Y: 2, Hp: 0, Dead: true}},
				Chat: []*ChatLine{{From: "ann", Text: "hi", Scope: ChatScope_CHAT_SCOPE_NEARBY}}, Combat: []*CombatLine{{Attacker: "p-ann", Target: "bot-7", Damage: 10, Killed: true}}},
		}}}},
		"server.error":        &ServerPacket{AckSeq: 9, Body: &ServerPacket_Error{Error: &Error{Code: ErrorCode_ERROR_CODE_SEQ_REUSED, Message: "seq 9 was already used"}}},
		"server.error_legacy": &ServerPacket{AckSeq: 9, Body: &ServerPacket_Error{Error: &Error{Code: ErrorCode_ERROR_CODE_RATE_LIMITED, Message: "slow down"}}},
		"server.busy":         &ServerPacket{AckSeq: 10, Body: &ServerPacket_Busy{Busy: &Busy{RetryAfterMs: 50}}},
		"server.pong":         &ServerPacket{AckSeq: 7, Body: &ServerPacket_Pong{Pong: &Pong{ClientTimeNs: 1764000000123456789, ServerTimeNs: 1764000000123999999}}},
		"server.zone_changed": &ServerPacket{Body: &ServerPacket_ZoneChanged{ZoneChanged: &ZoneChanged{Zone: "z2_1", X: 0.5, Y: 300, TransferId: "t-1"}}},
		"server.world_info":   &ServerPacket{AckSeq: 8, Body: &ServerPacket_WorldInfo{WorldInfo: &WorldInfo{Cols: 1, Rows: 1, ZoneSize: 1000, CellSize: 100, Zones: []*ZoneInfo{{Id: "z0_0"}}}}},
	}
}

const goldenFile = "testdata/packets.golden"

func TestGoldenPackets(t *testing.T) {
	pk := goldenPackets()
	enc := map[string]string{}
	for name, m := range pk {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		enc[name] = hex.EncodeToString(b)
	}
	if *update {
		names := make([]string, 0, len(enc))
		for n := range enc {
			names = append(names, n)
		}
		sort.Strings(names)
		var sb strings.Builder
		sb.WriteString("# Golden wire bytes of every client.proto packet: <name> <hex>. Regenerate only for an\n")
		sb.WriteString("# intentional, compatible change: go test ./libs/schema -run TestGoldenPackets -update\n")
		for _, n := range names {
			fmt.Fprintf(&sb, "%s %s\n", n, enc[n])
		}
		if err := os.WriteFile(filepath.FromSlash(goldenFile), []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(filepath.FromSlash(goldenFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, want, _ := strings.Cut(line, " ")
		seen[name] = true
		m, ok := pk[name]
		if !ok {
			t.Errorf("golden packet %s is no longer built by the test: a deployed client may still send or expect it", name)
			continue
		}
		if enc[name] != want {
			t.Errorf("%s: wire bytes changed (a break for deployed clients)\n got %s\nwant %s", name, enc[name], want)
		}
		// The pinned bytes must still decode to the same packet.
		raw, _ := hex.DecodeString(want)
		back := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(raw, back); err != nil || !proto.Equal(back, m) {
			t.Errorf("%s: pinned bytes decode to %v (err %v), want %v", name, back, err, m)
		}
	}
	for name := range pk {
		if !seen[name] {
			t.Errorf("packet %s has no golden bytes: run with -update and commit %s", name, goldenFile)
		}
	}
}

// TestGoldenCoversEveryBody fails when a packet body is added to
// client.proto without a golden packet (and every field of it set).
func TestGoldenCoversEveryBody(t *testing.T) {
	pk := goldenPackets()
	for _, root := range []proto.Message{&ClientPacket{}, &ServerPacket{}} {
		od := root.ProtoReflect().Descriptor().Oneofs().ByName("body")
		for i := 0; i < od.Fields().Len(); i++ {
			fd := od.Fields().Get(i)
			found := false
			for _, m := range pk {
				if m.ProtoReflect().Descriptor() != root.ProtoReflect().Descriptor() {
					continue
				}
				if m.ProtoReflect().Has(fd) {
					found = true
					checkAllSet(t, string(fd.Name()), m.ProtoReflect())
				}
			}
			if !found {
				t.Errorf("%s.%s has no golden packet", root.ProtoReflect().Descriptor().Name(), fd.Name())
			}
		}
	}
}

// checkAllSet reports fields of m (recursively) set in no golden packet of
// that body; bools may be false in one and true in another, so only the union
// over all packets of a body must cover every field.
var covered = map[protoreflect.FullName]bool{}

func checkAllSet(t *testing.T, body string, m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		covered[fd.FullName()] = true
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				checkAllSet(t, body, v.List().Get(i).Message())
			}
		case fd.Message() != nil && !fd.IsMap():
			checkAllSet(t, body, v.Message())
		}
		return true
	})
}

func TestGoldenSetsEveryField(t *testing.T) {
	TestGoldenCoversEveryBody(t)
	var walk func(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool)
	walk = func(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			if !covered[fd.FullName()] && fd.ContainingOneof() == nil {
				// Empty messages (Leave, WorldInfoRequest) have no fields.
				t.Errorf("field %s is set in no golden packet", fd.FullName())
			}
			if fd.Message() != nil {
				walk(fd.Message(), seen)
			}
		}
	}
	seen := map[protoreflect.FullName]bool{}
	walk((&ClientPacket{}).ProtoReflect().Descriptor(), seen)
	walk((&ServerPacket{}).ProtoReflect().Descriptor(), seen)
}

package packet

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/libs/worldmap"
)

func enc(t testing.TB, p *schema.ClientPacket) []byte {
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidate(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	cases := []struct {
		name string
		p    *schema.ClientPacket
		want schema.ErrorCode
	}{
		{"join ok", &schema.ClientPacket{Seq: 1, Body: &schema.ClientPacket_Join{Join: &schema.Join{Zone: "z0_0"}}}, 0},
		{"join unknown", &schema.ClientPacket{Seq: 1, Body: &schema.ClientPacket_Join{Join: &schema.Join{Zone: "z9_9"}}}, schema.ErrorCode_ERROR_CODE_UNKNOWN_ZONE},
		{"move ok", &schema.ClientPacket{Seq: 2, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: 10, Y: 999}}}, 0},
		{"move nan", &schema.ClientPacket{Seq: 2, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: nan}}}, schema.ErrorCode_ERROR_CODE_INVALID},
		{"move inf", &schema.ClientPacket{Seq: 2, Body: &schema.ClientPacket_Move{Move: &schema.Move{Y: inf}}}, schema.ErrorCode_ERROR_CODE_INVALID},
		{"move far", &schema.ClientPacket{Seq: 2, Body: &schema.ClientPacket_Move{Move: &schema.Move{Y: 1e7}}}, schema.ErrorCode_ERROR_CODE_INVALID},
		{"seq zero", &schema.ClientPacket{Body: &schema.ClientPacket_Move{Move: &schema.Move{}}}, schema.ErrorCode_ERROR_CODE_INVALID},
		{"chat empty", &schema.ClientPacket{Seq: 3, Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: "  "}}}, schema.ErrorCode_ERROR_CODE_INVALID},
		{"chat long", &schema.ClientPacket{Seq: 3, Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: strings.Repeat("a", 257)}}}, schema.ErrorCode_ERROR_CODE_INVALID},
		{"chat ok", &schema.ClientPacket{Seq: 3, Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: "hi"}}}, 0},
		{"attack bad", &schema.ClientPacket{Seq: 4, Body: &schema.ClientPacket_Attack{Attack: &schema.Attack{TargetId: "a b"}}}, schema.ErrorCode_ERROR_CODE_INVALID},
		{"hello empty", &schema.ClientPacket{Body: &schema.ClientPacket_Hello{Hello: &schema.Hello{}}}, schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED},
		{"hello name", &schema.ClientPacket{Body: &schema.ClientPacket_Hello{Hello: &schema.Hello{Name: "ann"}}}, 0},
		{"ping", &schema.ClientPacket{Body: &schema.ClientPacket_Ping{Ping: &schema.Ping{}}}, 0},
	}
	var p schema.ClientPacket
	for _, c := range cases {
		if e := Decode(enc(t, c.p), &p); e != nil {
			t.Fatalf("%s: decode: %v", c.name, e)
		}
		e := Validate(&p, Limits{})
		got := schema.ErrorCode(0)
		if e != nil {
			got = e.Code
		}
		if got != c.want {
			t.Errorf("%s: got %v (%v), want %v", c.name, got, e, c.want)
		}
	}
	if e := Decode([]byte{0xff, 0xff}, &p); e == nil || e.Code != schema.ErrorCode_ERROR_CODE_MALFORMED {
		t.Fatalf("garbage: got %v", e)
	}
	if e := Decode(enc(t, &schema.ClientPacket{Seq: 5}), &p); e == nil || e.Code != schema.ErrorCode_ERROR_CODE_MALFORMED {
		t.Fatalf("no body: got %v", e)
	}
}

// FuzzDecodeValidate feeds arbitrary frames through the decode and validation
// path: it must never panic, and whatever it accepts must be well-formed.
func FuzzDecodeValidate(f *testing.F) {
	for _, p := range []*schema.ClientPacket{
		{Seq: 1, Body: &schema.ClientPacket_Join{Join: &schema.Join{Zone: "z1_1"}}},
		{Seq: 2, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: 1, Y: 2}}},
		{Seq: 3, Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: "hello"}}},
		{Seq: 4, Body: &schema.ClientPacket_Attack{Attack: &schema.Attack{TargetId: "p-1"}}},
		{Body: &schema.ClientPacket_Hello{Hello: &schema.Hello{Name: "bob", ResumeSession: "s1"}}},
		{Body: &schema.ClientPacket_Ping{Ping: &schema.Ping{ClientTimeNs: 7}}},
	} {
		f.Add(enc(f, p))
	}
	f.Add([]byte{})
	f.Add([]byte{0x6a, 0x05, 0x0d, 0x00, 0x00, 0xc0, 0x7f}) // move with NaN x
	f.Fuzz(func(t *testing.T, frame []byte) {
		var p schema.ClientPacket
		if Decode(frame, &p) != nil {
			return
		}
		if Validate(&p, Limits{}) != nil {
			return
		}
		switch b := p.Body.(type) {
		case *schema.ClientPacket_Move:
			for _, v := range []float32{b.Move.X, b.Move.Y} {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("accepted non-finite move %v", v)
				}
			}
		case *schema.ClientPacket_Chat:
			if wire.CheckChat(b.Chat.Text) != nil {
				t.Fatalf("accepted chat %q", b.Chat.Text)
			}
		case *schema.ClientPacket_Join:
			if b.Join.Zone == "" {
				t.Fatal("accepted empty zone")
			}
		}
		if p.Body == nil {
			t.Fatal("accepted packet without body")
		}
		if p.Seq != PeekSeq(frame) {
			t.Fatalf("PeekSeq %d, decoded seq %d", PeekSeq(frame), p.Seq)
		}
	})
}

// TestValidateUsesWireLimits is the gateway half of issue 10 #9: Validate
// accepts a chat line, move coordinate, name or id exactly when the shared
// checks of libs/wire do (which the world's rules test against:
// rules.TestGatewayAcceptedInputAcceptedByRules). Before the fix the gateway's
// chat limit was its own 256 bytes.
func TestValidateUsesWireLimits(t *testing.T) {
	lim := NewLimits(worldmap.Default())
	if lim.MaxChat != wire.MaxChatBytes || lim.MaxName != wire.MaxNameBytes {
		t.Fatalf("limits %+v, want the wire limits", lim)
	}
	if l := (Limits{MaxChat: 10_000}).withDefaults(); l.MaxChat != wire.MaxChatBytes {
		t.Fatalf("a chat limit above the world's was kept: %d", l.MaxChat)
	}
	check := func(what string, p *schema.ClientPacket, wireErr error) {
		t.Helper()
		e := Validate(p, lim)
		if (e == nil) != (wireErr == nil) {
			t.Errorf("%s: Validate %v, wire %v", what, e, wireErr)
		}
	}
	for n := 0; n <= wire.MaxChatBytes+4; n++ {
		for _, text := range []string{strings.Repeat("x", n), strings.Repeat("x", max(n-2, 0)) + "é", strings.Repeat(" ", n)} {
			check("chat", &schema.ClientPacket{Seq: 1, Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: text}}}, wire.CheckChat(text))
		}
	}
	check("chat bad utf8", &schema.ClientPacket{Seq: 1, Body: &schema.ClientPacket_Chat{Chat: &schema.Chat{Text: "a\xff"}}}, wire.CheckChat("a\xff"))
	size := lim.Map.ZoneSize
	for _, v := range []float32{-size - 1, -size, 0, 2*size - 1, 2 * size, float32(math.NaN())} {
		check("move", &schema.ClientPacket{Seq: 1, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: v, Y: 1}}}, wire.CheckCoord(v, size))
	}
	for n := 1; n <= wire.MaxIDBytes+1; n += 7 {
		id := strings.Repeat("p", n)
		check("attack", &schema.ClientPacket{Seq: 1, Body: &schema.ClientPacket_Attack{Attack: &schema.Attack{TargetId: id}}}, wire.CheckID(id))
	}
	for n := 1; n <= wire.MaxNameBytes+1; n++ {
		name := strings.Repeat("n", n)
		check("name", &schema.ClientPacket{Body: &schema.ClientPacket_Hello{Hello: &schema.Hello{Name: name}}}, wire.CheckName(name))
	}
}

// TestPeekSeq: the seq of a frame is readable without decoding it, also when
// the body is missing or does not decode (issue 10 #8).
func TestPeekSeq(t *testing.T) {
	seqOnly := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7)
	badBody := protowire.AppendBytes(protowire.AppendTag(append([]byte(nil), seqOnly...), 13, protowire.BytesType), []byte{0x0d, 0x01})
	for _, c := range []struct {
		name  string
		frame []byte
		want  uint64
	}{
		{"move", enc(t, &schema.ClientPacket{Seq: 42, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: 1}}}), 42},
		{"seq only", seqOnly, 7},
		{"bad body", badBody, 7},
		{"garbage", []byte{0xff, 0xff, 0xff}, 0},
		{"empty", nil, 0},
		{"truncated seq", []byte{0x08, 0xff}, 0},
	} {
		if got := PeekSeq(c.frame); got != c.want {
			t.Errorf("%s: PeekSeq %d, want %d", c.name, got, c.want)
		}
	}
	var p schema.ClientPacket
	if e := Decode(badBody, &p); e == nil {
		t.Fatal("bad body decoded")
	}
}

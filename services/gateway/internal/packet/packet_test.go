package packet

import (
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/schema"
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
			if strings.TrimSpace(b.Chat.Text) == "" || len(b.Chat.Text) > 256 {
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
	})
}

package rules

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
)

// TestGatewayAcceptedInputAcceptedByRules is the world half of issue 10 #9:
// every chat line and move coordinate that the gateway's checks accept
// (wire.CheckChat / wire.CheckCoord, which services/gateway/internal/packet
// calls; its TestValidateUsesWireLimits ties the two) is never refused INVALID
// by the zone's rules; only game state (speed, obstacles, the world's edge)
// may refuse it, and that is REJECTED. Before the fix the gateway accepted
// chat up to 256 bytes and the rules 200: Ack, then INVALID.
func TestGatewayAcceptedInputAcceptedByRules(t *testing.T) {
	c := Default()
	if c.MaxChatLen != wire.MaxChatBytes {
		t.Fatalf("rules chat limit %d, wire.MaxChatBytes %d", c.MaxChatLen, wire.MaxChatBytes)
	}
	s := NewState("z1_1")
	seq := uint64(0)
	cmd := func(body any) *schema.Command {
		seq++
		cm := &schema.Command{SessionId: "s1", PlayerId: "p1", ClientSeq: seq, Zone: s.Zone, CommandId: wire.CommandID("s1", seq)}
		switch b := body.(type) {
		case *schema.Join:
			cm.Body = &schema.Command_Join{Join: b}
		case *schema.Chat:
			cm.Body = &schema.Command_Chat{Chat: b}
		case *schema.Move:
			cm.Body = &schema.Command_Move{Move: b}
		}
		return cm
	}
	now := int64(1e12)
	join := c.Decide(s, cmd(&schema.Join{Zone: s.Zone}), now)
	Apply(s, join, 1, c.KeepTransfers)
	pos := uint64(1)

	rng := rand.New(rand.NewPCG(10, 9))
	alphabet := []string{"a", " ", "é", "日", "🙂", "\t", "z"}
	var chats []string
	for n := wire.MaxChatBytes - 8; n <= wire.MaxChatBytes+8; n++ {
		chats = append(chats, strings.Repeat("x", n))
	}
	chats = append(chats, strings.Repeat("x", wire.MaxChatBytes-2)+"é", strings.Repeat("日", wire.MaxChatBytes/3))
	for range 2000 {
		var b strings.Builder
		for b.Len() < rng.IntN(wire.MaxChatBytes+20) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		chats = append(chats, b.String())
	}
	accepted := 0
	for _, text := range chats {
		if wire.CheckChat(text) != nil {
			continue
		}
		accepted++
		ev := c.Decide(s, cmd(&schema.Chat{Text: text}), now)
		if r := ev.GetCommandRejected(); r != nil {
			t.Fatalf("chat of %d bytes (%d runes) accepted by the gateway, refused by the rules: %v", len(text), utf8.RuneCountInString(text), r)
		}
		pos++
		Apply(s, ev, pos, c.KeepTransfers)
	}
	if accepted < 100 {
		t.Fatalf("only %d chats accepted: the test exercises too little", accepted)
	}

	// Moves: every coordinate the gateway accepts is refused, if at all, for
	// game state (REJECTED), never as INVALID input.
	size := c.Map.ZoneSize
	coords := []float32{-size, -size + 0.01, -1, 0, size / 2, size - 0.01, size, 2*size - 0.1, 2 * size, -size - 1}
	for range 500 {
		coords = append(coords, (rng.Float32()*3-1)*size)
	}
	for _, x := range coords {
		if wire.CheckCoord(x, size) != nil {
			continue
		}
		for _, y := range []float32{size / 2, x} {
			if wire.CheckCoord(y, size) != nil {
				continue
			}
			ev := c.Decide(s, cmd(&schema.Move{X: x, Y: y}), now)
			if r := ev.GetCommandRejected(); r != nil && r.Code == schema.ErrorCode_ERROR_CODE_INVALID {
				t.Fatalf("move to (%v, %v) accepted by the gateway, refused INVALID by the rules: %v", x, y, r)
			}
		}
	}
}

package bots

import (
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/schema"
)

// TestRefusalAfterRespawnKeepsTheSpawnPoint: a bot that died and respawned
// has its first move from the spawn point refused (a wall); it must stay at
// the spawn point, not go back to where it was before it died (its next
// moves would then be "too fast": a bot run recorded 328.6 units in one move).
func TestRefusalAfterRespawnKeepsTheSpawnPoint(t *testing.T) {
	s, err := New(Config{Gateways: []Gateway{{TCP: "127.0.0.1:1"}}, Bots: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := s.bots[0]
	b.player, b.zone = "p-1", "z0_0"
	now := time.Now()
	b.now = now
	move := func(x, y float32) uint64 {
		b.sendLocked(nil, sentCmd{kind: kMove, x: x, y: y}, now)
		return b.seq
	}
	update := func(x, y float32, dead bool, last uint64) {
		b.entity([]byte(b.zone), &entity{id: []byte(b.player), x: x, y: y, dead: dead, lastSeq: last})
	}
	move(100, 100)
	last := move(103, 100)
	update(103, 100, false, last)
	update(103, 100, true, last) // killed
	if !b.dead {
		t.Fatal("the bot does not know it is dead")
	}
	update(10, 10, false, last) // respawned at a spawn point
	if b.x != 10 || b.y != 10 {
		t.Fatalf("after the respawn the bot is at (%v, %v), want the spawn point (10, 10)", b.x, b.y)
	}
	refused := move(13, 10)
	b.onOtherLocked(&schema.ServerPacket{AckSeq: refused, Body: &schema.ServerPacket_Error{Error: &schema.Error{
		Code: schema.ErrorCode_ERROR_CODE_REJECTED, Message: "path blocked"}}}, now)
	if b.x != 10 || b.y != 10 {
		t.Fatalf("after the refusal of the first move from the spawn point the bot is at (%v, %v), want (10, 10)", b.x, b.y)
	}
	// A refusal before any death still goes back to the last accepted move.
	ok := move(16, 10)
	update(16, 10, false, ok)
	bad := move(19, 10)
	b.onOtherLocked(&schema.ServerPacket{AckSeq: bad, Body: &schema.ServerPacket_Error{Error: &schema.Error{
		Code: schema.ErrorCode_ERROR_CODE_REJECTED, Message: "path blocked"}}}, now)
	if b.x != 16 || b.y != 10 {
		t.Fatalf("after a refusal the bot is at (%v, %v), want its last accepted move (16, 10)", b.x, b.y)
	}
}

package world

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/world/internal/rules"
)

// TestQueuedMovesOneTick: moves of one player that queued up while the zone
// had no owner (the takeover case of the audit) are processed together in
// the new owner's first tick. Sent at a legal walking speed (200 units/s,
// 100ms apart by the gateway's receive time), they are all accepted; a
// teleport among them is still refused.
func TestQueuedMovesOneTick(t *testing.T) {
	srv, _, js := natstest.StartWithStreams(t)
	cfg := testConfig(t, srv.URL, "", "solo")
	const z, session, player = "z1_1", "sq", "walker"

	// Where the join will put the player (the rules are deterministic).
	j := join(z)
	j.CommandId, j.SessionId, j.ClientSeq, j.PlayerId, j.Zone = wire.CommandID(session, 1), session, 1, player, z
	rc := rules.Default()
	p := rc.Decide(rules.NewState(z), j, 1).GetPlayerJoined().GetPlayer()
	dy := float32(20) // toward the zone centre, away from its edges (and clear of the obstacles from this spawn)
	if p.Y > 500 {
		dy = -20
	}

	base := time.Now().Add(-2 * time.Second).UnixNano()
	at := func(ms int64) int64 { return base + ms*int64(time.Millisecond) }
	cmd := func(seq uint64, recv int64, c *schema.Command) {
		c.CommandId, c.SessionId, c.ClientSeq, c.PlayerId, c.Zone = wire.CommandID(session, seq), session, seq, player, z
		c.ReceivedAtNs = recv
		sendRaw(t, js, z, c.CommandId, c)
	}
	cmd(1, at(0), join(z))
	const walks = 5
	y := p.Y
	for i := 1; i <= walks; i++ {
		y += dy
		cmd(uint64(1+i), at(int64(100*i)), move(p.X, y))
	}
	cmd(walks+2, at(100*walks+100), move(p.X, y+15*dy)) // 300 units in 100ms

	// Everything is queued before any instance owns the zone.
	a := startInst(t, cfg)
	var ids []string
	for seq := 1; seq <= walks+2; seq++ {
		ids = append(ids, fmt.Sprintf("%s:%d", session, seq))
	}
	waitApplied(t, js, []string{z}, ids, 15*time.Second)
	logs, _ := checkLogs(t, js, []string{z})
	ticks := map[uint64]int{}
	for _, e := range logs[z] {
		ev := e.Event
		if ev.PlayerId != player || ev.CommandId == "" || ev.CommandId == ids[0] {
			continue
		}
		ticks[ev.Tick]++
		last := ev.CommandId == ids[len(ids)-1]
		switch {
		case !last && ev.GetPlayerMoved() == nil:
			t.Errorf("walking move %s refused: %v", ev.CommandId, rules.FormatEvent(ev))
		case last && !strings.Contains(ev.GetCommandRejected().GetReason(), "too fast"):
			t.Errorf("teleport %s not refused as too fast: %v", ev.CommandId, rules.FormatEvent(ev))
		}
	}
	t.Logf("moves processed in ticks %v", ticks)
	st := fold(logs)[z].Players[player]
	// last_move_ns is the pace time: walking below the max speed it stays
	// at or before the last accepted move's receive time.
	if st == nil || st.Y != y || st.LastMoveNs > at(100*walks) || st.LastMoveNs < at(0) {
		t.Errorf("final state %v, want y=%v last_move_ns in [%d, %d]", st, y, at(0), at(100*walks))
	}
	a.stop()
}

package rules

import (
	"fmt"

	"github.com/realmstream/realmstream/libs/schema"
)

// FormatEvent renders an event on one line, stably (logs and golden files).
func FormatEvent(ev *schema.Event) string {
	head := fmt.Sprintf("%s player=%s", ev.EventId, ev.PlayerId)
	switch b := ev.Body.(type) {
	case *schema.Event_OwnershipClaimed:
		return fmt.Sprintf("%s claimed by %s fence=%d", head, b.OwnershipClaimed.InstanceId, b.OwnershipClaimed.Fence)
	case *schema.Event_OwnershipReleased:
		return fmt.Sprintf("%s released by %s", head, b.OwnershipReleased.InstanceId)
	case *schema.Event_PlayerJoined:
		p := b.PlayerJoined.Player
		return fmt.Sprintf("%s joined %q at (%.1f,%.1f) hp=%d session=%s", head, p.Name, p.X, p.Y, p.Hp, p.SessionId)
	case *schema.Event_PlayerLeft:
		return fmt.Sprintf("%s left (%s)", head, b.PlayerLeft.Reason)
	case *schema.Event_PlayerMoved:
		return fmt.Sprintf("%s moved to (%.1f,%.1f) input=%d", head, b.PlayerMoved.X, b.PlayerMoved.Y, b.PlayerMoved.InputSeq)
	case *schema.Event_ChatSent:
		return fmt.Sprintf("%s chat %s %q", head, b.ChatSent.Scope, b.ChatSent.Text)
	case *schema.Event_AttackHit:
		h := b.AttackHit
		return fmt.Sprintf("%s hit %s for %d hp=%d killed=%v respawn_at=%d ready_at=%d", head, h.TargetId, h.Damage, h.TargetHp, h.Killed, h.RespawnAtNs, h.AttackerReadyAtNs)
	case *schema.Event_PlayerRespawned:
		return fmt.Sprintf("%s respawned at (%.1f,%.1f) hp=%d", head, b.PlayerRespawned.X, b.PlayerRespawned.Y, b.PlayerRespawned.Hp)
	case *schema.Event_TransferOut:
		p := b.TransferOut.Player
		return fmt.Sprintf("%s transfer-out %s to %s at (%.1f,%.1f)", head, b.TransferOut.TransferId, b.TransferOut.ToZone, p.X, p.Y)
	case *schema.Event_TransferDelivered:
		return fmt.Sprintf("%s transfer-delivered %s", head, b.TransferDelivered.TransferId)
	case *schema.Event_TransferAccepted:
		p := b.TransferAccepted.Player
		return fmt.Sprintf("%s transfer-accepted %s from %s at (%.1f,%.1f)", head, b.TransferAccepted.TransferId, b.TransferAccepted.FromZone, p.X, p.Y)
	case *schema.Event_CommandRejected:
		return fmt.Sprintf("%s rejected %s: %s", head, b.CommandRejected.Code, b.CommandRejected.Reason)
	}
	return head + fmt.Sprintf(" %T", ev.Body)
}

package zone

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/schema"
)

// A player is in exactly one zone (issue 10 #5). The zones share a KV
// bucket (world_players: player id -> zone) that says where each player
// is:
//
//   - a Join of a player this zone does not hold claims the entry with a
//     compare-and-set create before the join is decided; when another zone
//     holds it the Join is refused (ERROR_CODE_REJECTED, "player is in zone
//     X: leave it first or cross the border") — a Join never moves a body;
//     moving between zones is the transfer;
//   - after a commit, the zone points the entry of a player that left it by
//     a transfer at the target zone, and deletes the entry of a player that
//     left (leave, disconnect, idle) if it still names this zone
//     (compare-and-set on the revision);
//   - an entry that names the zone itself is the zone's own (a rejoin, or
//     a claim whose commit failed).
//
// A crash between a commit and the entry's update can leave an entry naming
// a zone the player left; the player can then join that zone again (the
// entry is its own there) and leave it, which clears the entry. The entry
// never makes the zone logs disagree: it only refuses joins.
type whereabouts struct {
	kv      jetstream.KeyValue
	zone    string
	timeout time.Duration
}

// claim reports where player is when it is not free to join this zone
// ("" = it may join: the entry is created or already names this zone). An
// unreachable bucket lets the join through (availability over the check).
func (w *whereabouts) claim(ctx context.Context, player string) string {
	if w == nil || w.kv == nil {
		return ""
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
	defer cancel()
	if _, err := w.kv.Create(cctx, player, []byte(w.zone)); err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
		return ""
	}
	e, err := w.kv.Get(cctx, player)
	if err != nil || string(e.Value()) == w.zone {
		return ""
	}
	return string(e.Value())
}

// committed updates the entries after a commit of evs.
func (w *whereabouts) committed(ctx context.Context, evs []*schema.Event) {
	if w == nil || w.kv == nil {
		return
	}
	for _, ev := range evs {
		switch b := ev.Body.(type) {
		case *schema.Event_TransferOut:
			w.put(ctx, ev.PlayerId, b.TransferOut.ToZone)
		case *schema.Event_TransferAccepted:
			w.put(ctx, b.TransferAccepted.GetPlayer().GetPlayerId(), w.zone)
		case *schema.Event_PlayerLeft:
			w.clear(ctx, ev.PlayerId)
		}
	}
}

func (w *whereabouts) put(ctx context.Context, player, zone string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
	defer cancel()
	_, _ = w.kv.Put(cctx, player, []byte(zone))
}

// clear deletes the entry of player if it still names this zone.
func (w *whereabouts) clear(ctx context.Context, player string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
	defer cancel()
	e, err := w.kv.Get(cctx, player)
	if err != nil || string(e.Value()) != w.zone {
		return
	}
	_ = w.kv.Delete(cctx, player, jetstream.LastRevision(e.Revision()))
}

package world

import (
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/zonelog"
	"github.com/realmstream/realmstream/services/world/internal/rules"
	"github.com/realmstream/realmstream/services/world/internal/zone"
)

// Fold folds a zone's events, in log order, into the zone state with the
// same rules the owner applies: the reference an auditor or a test compares a
// recovered zone or a time-travel answer against (default rules).
func Fold(zone string, events []zonelog.Entry) *schema.ZoneSnapshot {
	st := rules.NewState(zone)
	rc, _ := rules.New(rules.Default())
	for _, e := range events {
		rules.Apply(st, e.Event, e.Seq, rc.KeepTransfers)
	}
	return st
}

// ErrCrash, as the cancel cause of Run's context, stops the instance as if
// its process died: no handover, no final snapshot, leases left to expire.
// Tests outside this module (the one-process stack's) use it.
var ErrCrash = zone.ErrCrash

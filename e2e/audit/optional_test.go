package audit

import "testing"

// TestDisconnectMayCauseNoEvent: a gateway's Disconnect (cancelled by a
// later command or a resume elsewhere) causes no event and is no loss; every
// other stored command must cause one.
func TestDisconnectMayCauseNoEvent(t *testing.T) {
	cl := &CommandLog{ByID: map[string][]uint64{"s:1": {1}, "s/disconnect/x": {2}, "s:2": {3}},
		Zone: map[string]string{"s:1": "z", "s/disconnect/x": "z", "s:2": "z"}, Optional: map[string]bool{"s/disconnect/x": true}}
	missing, vs := CheckApplied(cl, map[string]bool{"s:1": true})
	if missing["z"] != 1 || len(vs) != 1 {
		t.Fatalf("missing %v, violations %v: want only s:2", missing, vs)
	}
}

package pebblestore

import (
	"testing"

	"github.com/realmstream/realmstream/services/persist/internal/store"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

// TestReadModelCacheMatchesPebble: a store whose read-model cache holds at
// most 2 players (evicting as it goes) and a store that keeps none end with
// the same players and zones after the same game log in batches of
// messages, redeliveries included; both equal what a store reopened from
// disk (cold cache) reads.
func TestReadModelCacheMatchesPebble(t *testing.T) {
	dirSmall, dirNone := t.TempDir(), t.TempDir()
	small, err := Open(dirSmall)
	if err != nil {
		t.Fatal(err)
	}
	none, err := Open(dirNone)
	if err != nil {
		t.Fatal(err)
	}
	small.cacheMax, none.cacheMax = 2, 0
	msgs := storetest.GameRecords(3000, 7, 5)
	var batch []store.Record
	for i, m := range msgs {
		batch = append(batch, m...)
		if i%4 == 3 || i == len(msgs)-1 {
			for _, s := range []*Store{small, none} {
				if _, err := s.Write(t.Context(), batch); err != nil {
					t.Fatal(err)
				}
				// Redelivery of the batch's last message stores nothing.
				if _, err := s.Write(t.Context(), m); err != nil {
					t.Fatal(err)
				}
			}
			if len(small.players) > small.cacheMax {
				t.Fatalf("cache holds %d players, bound %d", len(small.players), small.cacheMax)
			}
			batch = nil
		}
	}
	if err := none.Close(); err != nil {
		t.Fatal(err)
	}
	cold, err := Open(dirNone)
	if err != nil {
		t.Fatal(err)
	}
	defer cold.Close()
	defer small.Close()
	for _, id := range []string{"pa", "pb", "pc", "pd", "pe", "pf"} {
		a, okA, errA := small.Player(t.Context(), id)
		b, okB, errB := cold.Player(t.Context(), id)
		if errA != nil || errB != nil || !okA || !okB || a != b {
			t.Errorf("player %s: cached store %+v (%v %v), uncached %+v (%v %v)", id, a, okA, errA, b, okB, errB)
		}
	}
	for _, z := range []string{"z0_0", "z1_1", "z2_1"} {
		a, _, _ := small.Zone(t.Context(), z)
		b, _, _ := cold.Zone(t.Context(), z)
		if a != b || a.Events == 0 {
			t.Errorf("zone %s: cached store %+v, uncached %+v", z, a, b)
		}
	}
}

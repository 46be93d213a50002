package packet

import (
	"testing"

	"github.com/realmstream/realmstream/libs/worldmap"
)

// TestWorldInfoHasObstacles: the world description a client gets names the
// obstacles the world's rules stand on (one list, libs/worldmap).
func TestWorldInfoHasObstacles(t *testing.T) {
	w := WorldInfo(worldmap.Default(), nil)
	want := worldmap.DefaultObstacles()
	if len(w.Obstacles) != len(want) || len(want) == 0 {
		t.Fatalf("WorldInfo has %d obstacles, the rules %d", len(w.Obstacles), len(want))
	}
	for i, o := range want {
		r := w.Obstacles[i]
		if r.MinX != o.X0 || r.MinY != o.Y0 || r.MaxX != o.X1 || r.MaxY != o.Y1 {
			t.Fatalf("obstacle %d: %v, want %v", i, r, o)
		}
	}
	if len(w.Zones) != 9 {
		t.Fatalf("%d zones", len(w.Zones))
	}
}

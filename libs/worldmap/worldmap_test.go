package worldmap

import "testing"

func TestZones(t *testing.T) {
	m := Default()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	zs := m.Zones()
	if len(zs) != 9 || zs[0] != "z0_0" || zs[8] != "z2_2" {
		t.Fatalf("zones = %v", zs)
	}
	for _, bad := range []string{"", "z", "z3_0", "z0_-1", "z00_0", "x0_0", "z0_0.x"} {
		if m.Has(bad) {
			t.Errorf("Has(%q) = true", bad)
		}
	}
}

func TestCross(t *testing.T) {
	m := Default()
	to, x, y, ok := m.Cross("z0_0", 1000.5, 10)
	if !ok || to != "z1_0" || x != 0.5 || y != 10 {
		t.Fatalf("Cross = %s %v %v %v", to, x, y, ok)
	}
	if _, _, _, ok := m.Cross("z0_0", -1, 10); ok {
		t.Fatal("crossed out of the world")
	}
	if _, _, _, ok := m.Cross("z1_1", 5, 5); ok {
		t.Fatal("crossed while in bounds")
	}
}

func TestNearCells(t *testing.T) {
	m := Default()
	if got := m.NearCells(nil, m.CellOf(0, 0)); len(got) != 4 {
		t.Fatalf("corner: %v", got)
	}
	if got := m.NearCells(nil, m.CellOf(550, 550)); len(got) != 9 {
		t.Fatalf("middle: %v", got)
	}
	if c := m.CellOf(999.9, 999.9); c != 99 {
		t.Fatalf("last cell = %d", c)
	}
}

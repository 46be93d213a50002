package shard

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
)

// TestGoldenVectors (SHARD-1, SHARD-T1) pins the hash: if this fails, existing
// rows would be looked up on the wrong database. xxhash64("") is the published
// 0xef46db3751d8e999, whose top byte is 239.
func TestGoldenVectors(t *testing.T) {
	for _, g := range []struct {
		key  string
		want int
	}{
		{"", 239},
		{"z0_0", 97},
		{"z1_2", 187},
		{"z2_2", 134},
		{"player-1", 185},
		{"p:42", 221},
		{"αβγ", 31},
	} {
		if got := Of(g.key); got != g.want {
			t.Errorf("Of(%q) = %d, want %d", g.key, got, g.want)
		}
	}
}

// TestUniformity (SHARD-T2): 1M keys over 256 logical shards pass a
// chi-square test (255 degrees of freedom; 99.9% quantile is about 330).
func TestUniformity(t *testing.T) {
	const n = 1 << 20
	var counts [Logical]int
	var buf [8]byte
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(buf[:], uint64(i)*0x9e3779b97f4a7c15)
		counts[Of(fmt.Sprintf("player-%x", buf))]++
	}
	exp := float64(n) / Logical
	chi := 0.0
	for _, c := range counts {
		d := float64(c) - exp
		chi += d * d / exp
	}
	if chi > 330 {
		t.Fatalf("chi-square %.1f > 330: hash not uniform over logical shards", chi)
	}
	t.Logf("chi-square %.1f (255 dof)", chi)
}

func dbs(n int) []DB {
	out := make([]DB, n)
	for i := range out {
		out[i] = DB{Name: fmt.Sprintf("pg%d", i), URL: fmt.Sprintf("postgres://h/db%d", i)}
	}
	return out
}

func TestEvenBalance(t *testing.T) {
	for n := 1; n <= 17; n++ {
		m, err := Even(dbs(n))
		if err != nil {
			t.Fatal(err)
		}
		assertBalanced(t, m)
	}
}

func assertBalanced(t *testing.T, m Map) {
	t.Helper()
	lo, hi := math.MaxInt, 0
	for _, c := range m.Counts() {
		lo, hi = min(lo, c), max(hi, c)
	}
	if hi-lo > 1 {
		t.Fatalf("unbalanced map (%d DBs): counts %v", len(m.DBs), m.Counts())
	}
}

// checkPlan applies a plan and checks SHARD-T3: balanced after, every
// logical shard assigned exactly once, each moved at most once, only from
// databases above target, version strictly increasing, and the number of moves
// minimal (sum of excess over target).
func checkPlan(t *testing.T, m Map) {
	t.Helper()
	plan := m.PlanBalance()
	seen := map[int]bool{}
	cur := m
	for _, mv := range plan {
		if seen[mv.Logical] {
			t.Fatalf("logical %d moved twice", mv.Logical)
		}
		seen[mv.Logical] = true
		if cur.Assign[mv.Logical] != mv.From {
			t.Fatalf("move %+v: owner is %s", mv, cur.Assign[mv.Logical])
		}
		next, err := cur.WithMove(mv.Logical, mv.To)
		if err != nil {
			t.Fatal(err)
		}
		if next.Version != cur.Version+1 {
			t.Fatalf("version %d -> %d", cur.Version, next.Version)
		}
		cur = next
	}
	assertBalanced(t, cur)
	// Minimality: a balanced map must move at least sum(max(0, count-ceil)).
	n := len(m.DBs)
	ceil := (Logical + n - 1) / n
	need := 0
	counts := m.Counts()
	for _, c := range counts {
		if c > ceil {
			need += c - ceil
		}
	}
	floor := Logical / n
	maxNeed := 0
	for _, c := range counts {
		if c > floor {
			maxNeed += c - floor
		}
	}
	if len(plan) < need || len(plan) > maxNeed {
		t.Fatalf("plan moves %d shards, want between %d and %d", len(plan), need, maxNeed)
	}
}

func TestPlanAddDB(t *testing.T) {
	m, _ := Even(dbs(2))
	m2, err := m.WithDB(DB{Name: "pg2", URL: "x"})
	if err != nil {
		t.Fatal(err)
	}
	plan := m2.PlanBalance()
	// 256/3 = 85.33: the new DB takes 85 shards, the old ones keep 86 and 85.
	if len(plan) != 85 {
		t.Fatalf("adding a third DB moves %d logical shards, want 85", len(plan))
	}
	for _, mv := range plan {
		if mv.To != "pg2" {
			t.Fatalf("move %+v not to the new DB", mv)
		}
	}
	checkPlan(t, m2)
}

// FuzzPlan (SHARD-T3): random maps (random DB count and random assignment)
// always get a plan that balances them with each shard moved at most once.
func FuzzPlan(f *testing.F) {
	f.Add(uint8(2), uint8(1), []byte{1, 2, 3})
	f.Add(uint8(1), uint8(5), []byte{})
	f.Add(uint8(7), uint8(0), []byte{255, 0, 9, 9, 9})
	f.Fuzz(func(t *testing.T, n, add uint8, seed []byte) {
		nd := int(n%16) + 1
		m, err := Even(dbs(nd))
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range seed {
			m.Assign[(i*31+int(b))%Logical] = m.DBs[int(b)%nd].Name
		}
		for i := 0; i < int(add%4); i++ {
			m, err = m.WithDB(DB{Name: fmt.Sprintf("new%d", i), URL: "u"})
			if err != nil {
				t.Fatal(err)
			}
		}
		checkPlan(t, m)
	})
}

// FuzzDecode: any input either fails to decode or yields a valid map that
// round-trips.
func FuzzDecode(f *testing.F) {
	m, _ := Even(dbs(2))
	b, _ := m.Encode()
	f.Add(b)
	f.Add([]byte(`{"version":1,"dbs":[],"assign":[]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Decode(in)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		out, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Decode(out)
		if err != nil || m2.Version != m.Version || len(m2.Assign) != Logical {
			t.Fatalf("round trip: %v", err)
		}
		_ = m.DBFor("z0_0")
	})
}

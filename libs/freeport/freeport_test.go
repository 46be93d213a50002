package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestPortsBelowEphemeralAndNeverTwice: every port is in the range, free
// (a server can bind it), and none is handed out twice, even when one of
// the range is held by someone else.
func TestPortsBelowEphemeralAndNeverTwice(t *testing.T) {
	// Hold the next port of the range; if that fails, someone else holds
	// it, which is the same case.
	heldPort := next
	if held, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(heldPort)); err == nil {
		defer held.Close()
	}
	seen := map[int]bool{}
	for range 200 {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if p == heldPort {
			t.Fatalf("port %d is held by another listener", p)
		}
		checkNew(t, seen, p)
	}
}

// checkNew fails unless p is in the range, not in seen, and bindable; it
// adds p to seen.
func checkNew(t *testing.T, seen map[int]bool, p int) {
	t.Helper()
	if p < Low || p >= High || seen[p] {
		t.Fatalf("port %d outside %d-%d or handed out twice", p, Low, High-1)
	}
	seen[p] = true
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("port %d handed out but not bindable: %v", p, err)
	}
	l.Close()
}

// TestRunIsConsecutiveAndFree: a run's ports are consecutive, bindable and
// never overlap another run's or a single port's.
func TestRunIsConsecutiveAndFree(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		base, err := Run(5)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []int{base, base + 1, base + 2, base + 3, base + 4, p} {
			checkNew(t, seen, q)
		}
	}
	if _, err := Run(0); err == nil {
		t.Fatal("a run of 0 ports accepted")
	}
}

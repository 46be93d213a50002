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
	held, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(next))
	if err != nil {
		t.Skipf("cannot hold a port of the range: %v", err)
	}
	defer held.Close()
	heldPort := held.Addr().(*net.TCPAddr).Port
	seen := map[int]bool{}
	for range 200 {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if p < Low || p >= High {
			t.Fatalf("port %d outside %d-%d", p, Low, High-1)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		if p == heldPort {
			t.Fatalf("port %d is held by another listener", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d handed out but not bindable: %v", p, err)
		}
		l.Close()
	}
}

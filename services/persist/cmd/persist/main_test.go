package main

import "testing"

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"shards", "--help"}} {
		if code := run(args); code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
	}
	if code := run([]string{"--batch-size", "0"}); code != 2 {
		t.Fatalf("invalid config: exit %d, want 2", code)
	}
	if code := run([]string{"shards", "move", "--logical", "999"}); code != 2 {
		t.Fatal("bad move accepted")
	}
}

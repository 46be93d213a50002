package rules

import "testing"

// TestLateRedeliveryIsApplied: a crashed or stale owner's commands come back
// after the ack wait, behind hundreds of newer commands of the same session
// (the e2e fault run lost 146 commands this way with a 64-deep window: they
// were taken as applied and acked without an event). Every seq is applied
// exactly once as long as it is within the window.
func TestLateRedeliveryIsApplied(t *testing.T) {
	s := NewState("z")
	applied := map[uint64]int{}
	apply := func(q uint64) {
		if !seen(s, "s", q) {
			applied[q]++
			markSeen(s, "s", q)
		}
	}
	// 1..100 and 400..1000 arrive first; 101..399 come back late (300 behind),
	// then every seq is redelivered once more.
	for q := uint64(1); q <= 100; q++ {
		apply(q)
	}
	for q := uint64(400); q <= 1000; q++ {
		apply(q)
	}
	for q := uint64(101); q < 400; q++ {
		apply(q)
	}
	for q := uint64(1); q <= 1000; q++ {
		apply(q)
	}
	for q := uint64(1); q <= 1000; q++ {
		if applied[q] != 1 {
			t.Fatalf("seq %d applied %d times", q, applied[q])
		}
	}
	// Past the window a seq counts as applied (documented bound).
	for q := uint64(1001); q <= 2*window; q++ {
		apply(q)
	}
	if !seen(s, "s", window-1) {
		t.Fatal("a seq more than the window behind is not treated as applied")
	}
}

// TestSeqJumpOfAResume (e2e fault run 32 on the fixed code, 2 Dec): a
// session resumed from a crashed gateway's record continues above the
// reserved bound, up to 1024 (the gateway's session.ReserveAhead) above its
// last seq: here from 139 to 1128. Seqs 129 and 131 were delivered to a zone
// owner that died and come back after the jump; they are new. Before (a
// window of 1024) they were taken for applied, and acked with no event.
func TestSeqJumpOfAResume(t *testing.T) {
	s := NewState("z")
	for q := uint64(1); q <= 139; q++ {
		if q != 129 && q != 131 {
			markSeen(s, "s", q)
		}
	}
	for q := uint64(1128); q <= 1165; q++ {
		markSeen(s, "s", q)
	}
	for q := uint64(1); q <= 1165; q++ {
		want := q <= 139 && q != 129 && q != 131 || q >= 1128
		if seen(s, "s", q) != want {
			t.Fatalf("seq %d seen %v after the jump, want %v", q, !want, want)
		}
	}
}

// TestShortWindowUpgrades: a state written with the 1024-deep window keeps
// its marks, and the seqs beyond its depth, which it treated as applied,
// stay applied.
func TestShortWindowUpgrades(t *testing.T) {
	s := NewState("z")
	s.Sessions["s"] = 5000
	b := make([]byte, 1024/8)
	b[0] = 0b10 // seq 4998 applied (bit 1), 4999 not
	s.SessionWindow = map[string][]byte{"s": b}
	if seen(s, "s", 4999) || !seen(s, "s", 4998) || seen(s, "s", 5000-1-5) {
		t.Fatal("old window marks not honoured")
	}
	if !seen(s, "s", 5000-1-1024) || !seen(s, "s", 5000-1-3000) {
		t.Fatal("seqs beyond the old window's depth no longer taken as applied")
	}
}

// TestOldMaskUpgrades: a snapshot written with the 64-deep mask still
// dedupes the seqs it marked.
func TestOldMaskUpgrades(t *testing.T) {
	s := NewState("z")
	s.Sessions["s"] = 100
	s.SessionMasks = map[string]uint64{"s": 1 << 4} // seq 95 applied, 96..99 not
	if !seen(s, "s", 95) || seen(s, "s", 96) || !seen(s, "s", 100) {
		t.Fatal("old mask not honoured")
	}
	markSeen(s, "s", 96)
	markSeen(s, "s", 101)
	if !seen(s, "s", 95) || !seen(s, "s", 96) || seen(s, "s", 97) || !seen(s, "s", 100) {
		t.Fatal("upgraded window lost a mark")
	}
	if _, ok := s.SessionMasks["s"]; ok {
		t.Fatal("old mask kept beside the window")
	}
}

func TestShift(t *testing.T) {
	for _, d := range []uint64{1, 3, 8, 9, 17, 100, 1023, 1024, 5000} {
		b := make([]byte, window/8)
		b[0] = 0b101 // bits 0 and 2
		shift(b, d)
		for k := uint64(0); k < window; k++ {
			want := k == d || k == d+2
			if bitSet(b, k) != want {
				t.Fatalf("shift %d: bit %d = %v", d, k, !want)
			}
		}
	}
}

// TestTransferKeepsOwnSeqs: a player arriving by transfer with last input
// seq 40 had seqs 1..20 in this zone (applied but 15, still to come back
// after a crash) and 21..40 in the source zone. The source's seqs are
// duplicates here; seq 15 is new (before the fix the transfer marked every
// seq up to 40 as applied, and seq 15 was acked without an event).
func TestTransferKeepsOwnSeqs(t *testing.T) {
	s := NewState("z")
	for q := uint64(1); q <= 20; q++ {
		if q != 15 {
			markSeen(s, "s", q)
		}
	}
	markThrough(s, "s", 40)
	if seen(s, "s", 15) {
		t.Fatal("seq 15, sent here and not yet decided, taken as applied after the transfer")
	}
	for q := uint64(1); q <= 41; q++ {
		if want := q != 15 && q != 41; seen(s, "s", q) != want {
			t.Fatalf("seq %d seen %v after the transfer, want %v", q, !want, want)
		}
	}
	// A session this zone never saw: everything up to the transfer's seq
	// was the source's.
	markThrough(s, "u", 7)
	for q := uint64(1); q <= 8; q++ {
		if want := q != 8; seen(s, "u", q) != want {
			t.Fatalf("new session: seq %d seen %v, want %v", q, !want, want)
		}
	}
	// A transfer seq at or below what this zone saw marks that seq only.
	markThrough(s, "s", 30)
	if !seen(s, "s", 30) || seen(s, "s", 15) {
		t.Fatal("transfer below the session's high: want seq 30 marked and seq 15 still new")
	}
	// Far ahead: beyond the window everything counts as applied anyway.
	markThrough(s, "s", 5000)
	if !seen(s, "s", 4999) || !seen(s, "s", 3000) {
		t.Fatal("seqs before a far transfer not marked")
	}
}

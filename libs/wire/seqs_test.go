package wire

import "testing"

// TestSeqContract: the world's dedupe window holds the largest seq jump a
// resumed session can make, with room for as much reorder again.
func TestSeqContract(t *testing.T) {
	if SessionSeqWindow < 2*SessionSeqReserve {
		t.Fatalf("SessionSeqWindow %d < 2 x SessionSeqReserve %d: a redelivered command after a resume's jump would be taken for applied", SessionSeqWindow, SessionSeqReserve)
	}
	if SessionSeqWindow%64 != 0 {
		t.Fatalf("SessionSeqWindow %d: the window is a bitmap of 64-bit words", SessionSeqWindow)
	}
}

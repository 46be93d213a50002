package wire

// Session seqs: one contract between the gateways and the worlds.
//
// A gateway reserves SessionSeqReserve seqs ahead in a session's shared
// record before accepting one above the reservation; a session resumed
// from a crashed gateway's record (or when its old connection does not hand
// over in time) continues above the reserved bound, so its seqs can jump by
// up to SessionSeqReserve. A zone remembers, per session, which of the last
// SessionSeqWindow seqs it applied; a seq further below the session's high
// counts as applied. A command of that session redelivered after such a
// jump (its owner died before deciding it) must still fall inside the
// window, or it is acked with no event (e2e fault run, 2 Dec). So the window
// holds a jump plus the reorder of a redelivery: SessionSeqWindow >=
// 2*SessionSeqReserve (TestSeqContract).
const (
	SessionSeqReserve = 1024
	SessionSeqWindow  = 4096
)

package gateway

import (
	"sync"
)

// resendSlots bounds the seqs a connection remembers as resendable.
const resendSlots = 64

// resendSet remembers, per connection, the seqs at or below the connection's
// last accepted seq that the client may still send again with the same seq
// (issue 10 #4): commands answered OUTCOME_UNKNOWN, INTERNAL or SHUTTING_DOWN
// by the publisher, and commands answered Busy. Any other seq at or below the
// last accepted one is STALE_SEQ.
//
// A resend reuses the command id (session:seq), so JetStream (inside its
// duplicate window) or the world's per-session seq record (after it)
// deduplicates it: a command that was in fact stored is applied once. For
// that to be safe the resend must carry the same command: each entry keeps a
// hash of the command body (key) and a resend with a different body is
// refused SEQ_REUSED (it would be acked as a duplicate and silently lost).
// key 0 means "never published" (Busy): any body may take the seq.
//
// Writers: the publisher's ack callbacks and the reader; the set is tiny
// (resendSlots entries, oldest overwritten) and guarded by mu.
type resendSet struct {
	mu   sync.Mutex
	ents [resendSlots]resendEnt
	next int
}

type resendEnt struct{ seq, key uint64 }

// add remembers seq (seq > 0) with its body key.
func (r *resendSet) add(seq, key uint64) {
	r.mu.Lock()
	r.ents[r.next] = resendEnt{seq, key}
	r.next = (r.next + 1) % resendSlots
	r.mu.Unlock()
}

// lookup returns the key of seq, if seq is resendable.
func (r *resendSet) lookup(seq uint64) (key uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.ents {
		if e.seq == seq && seq != 0 {
			return e.key, true
		}
	}
	return 0, false
}

// remove forgets seq (its resend was accepted).
func (r *resendSet) remove(seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.ents {
		if e.seq == seq {
			r.ents[i] = resendEnt{}
		}
	}
}

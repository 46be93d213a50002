package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/realmstream/realmstream/libs/schema"
)

// StoreTimeout bounds one call to the session or deny-list bucket.
const StoreTimeout = 3 * time.Second

// DupMargin is kept off the JetStream duplicate window when deciding that a
// seq may still be deduplicated there.
const DupMargin = 10 * time.Second

// Updater writes a session record conditionally on its revision (Store).
type Updater interface {
	Update(ctx context.Context, id string, r Record, rev uint64) (uint64, error)
}

// Owner is the connection a Conn belongs to, as the session state reads and
// answers it. Conn calls it under its lock (see Conn).
type Owner interface {
	// LastSeq is the highest seq the connection accepted; Zone its zone.
	LastSeq() uint64
	Zone() string
	// Refuse answers seq with an Error; Busy answers it Busy; Close closes
	// the connection (from a goroutine of its own: Conn does not wait).
	Refuse(seq uint64, code schema.ErrorCode, msg string)
	Busy(seq uint64)
	Close()
}

// Conn is one connection's share of its session (the session half of a
// connection: Hello opens it, the reader accepts seqs through it, a
// hand-over or the close writes its final record). Its state is guarded by
// mu: the reader accepts commands under it and a hand-over snapshots under
// it, so the record written at hand-over covers every accepted seq. Accept
// holds mu across the reservation's KV put (one put per ReserveAhead seqs,
// bounded by StoreTimeout) and across the answer to a refused seq (which may
// wait for room in the reader's answer queue): a hand-over must snapshot a
// record that covers every seq the reader let through.
type Conn struct {
	store     Updater
	owner     Owner
	log       *slog.Logger
	dupWindow time.Duration // JetStream's duplicate window of CMD

	mu        sync.Mutex
	sid       string // the session (set by Open)
	rec       Record // the shared record as this connection last wrote it
	reserved  uint64 // LastSeq written in the shared record (an upper bound)
	rev       uint64 // revision of the shared record as this connection last read or wrote it
	ring      Ring   // recent accepted commands (seeded from a resumed record)
	resumedTo uint64 // seqs at or below it belong to earlier connections
	maxOK     uint64 // highest seq Accept let through (it may not be enqueued yet)
	handedOff bool   // the session moved to another connection: accept nothing
}

// Init sets what c works with; it is called once, before Open.
func (c *Conn) Init(store Updater, owner Owner, log *slog.Logger, dupWindow time.Duration) {
	c.store, c.owner, c.log, c.dupWindow = store, owner, log, dupWindow
}

// Open makes rec (read at revision rev; 0: a new session) this connection's
// session sid: it continues after rec.LastSeq, reserves ReserveAhead seqs
// and writes the record marked open, conditionally on rev (a connection
// that wrote the record in between, another resume or the delayed close of
// the connection the session left, makes it fail with ErrMoved rather than
// lose that write).
func (c *Conn) Open(ctx context.Context, sid string, rec Record, rev uint64) error {
	c.mu.Lock()
	c.sid = sid
	c.ring.Seed(rec.Recent)
	c.resumedTo = rec.LastSeq
	c.reserved = rec.LastSeq + ReserveAhead
	rec.LastSeq = c.reserved
	rec.RecentTo = c.resumedTo
	rec.Open = true
	c.rec = rec
	c.mu.Unlock()
	nrev, err := c.store.Update(ctx, sid, rec, rev)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.rev = nrev
	c.mu.Unlock()
	return nil
}

// ResumedTo is the last seq of the session's earlier connections (the
// reader's: it is set by Open on the reader's goroutine).
func (c *Conn) ResumedTo() uint64 { return c.resumedTo }

// HandedOff says whether the session moved to another connection.
func (c *Conn) HandedOff() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handedOff
}

// Accept decides, under the session lock, whether the command seq whose
// packet has digest may be accepted, and answers it (through the Owner) when
// not. It reserves seqs in the shared record before accepting one above the
// reservation. verified: seq is a resend whose command matched the recorded
// one. On ok the caller calls Accepted(seq, digest) once the command is
// enqueued.
func (c *Conn) Accept(seq, digest uint64) (verified, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.handedOff {
		c.owner.Refuse(seq, schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "session resumed on another connection")
		return false, false
	}
	if seq <= c.resumedTo {
		if d, found := c.ring.Lookup(seq); found {
			if d != digest {
				c.owner.Refuse(seq, schema.ErrorCode_ERROR_CODE_SEQ_REUSED, fmt.Sprintf("seq %d was already used in this session for a different command; use seqs above %d", seq, c.resumedTo))
				return false, false
			}
			return true, true // a resend: JetStream or the world deduplicates it
		}
		r := &c.rec
		if seq > r.UnknownFrom && seq <= r.UnknownTo && time.Since(r.UnknownAt) < c.dupWindow-DupMargin {
			return false, true // after a crash: JetStream's duplicate check decides (onDuplicate)
		}
		c.owner.Refuse(seq, schema.ErrorCode_ERROR_CODE_STALE_SEQ, fmt.Sprintf("seq %d was used in this session before and cannot be resent now; use seqs above %d", seq, c.resumedTo))
		return false, false
	}
	if seq > c.reserved {
		rec := c.rec
		rec.LastSeq = seq + ReserveAhead
		rec.RecentTo = max(c.owner.LastSeq(), c.resumedTo)
		rec.Recent = c.ring.Entries()
		rec.Zone = c.owner.Zone()
		ctx, cancel := context.WithTimeout(context.Background(), StoreTimeout)
		nrev, err := c.store.Update(ctx, c.sid, rec, c.rev)
		cancel()
		if errors.Is(err, ErrMoved) {
			// Another connection resumed the session (its hand-over request
			// did not reach this one): this one accepts nothing more.
			c.handedOff = true
			c.owner.Refuse(seq, schema.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "session resumed on another connection")
			go c.owner.Close()
			return false, false
		}
		if err != nil {
			c.log.Warn("session reservation", "session", c.sid, "err", err)
			c.owner.Busy(seq)
			return false, false
		}
		c.reserved, c.rec, c.rev = rec.LastSeq, rec, nrev
	}
	c.maxOK = max(c.maxOK, seq)
	return false, true
}

// Accepted records an accepted command (called by the reader after the
// enqueue succeeded).
func (c *Conn) Accepted(seq, digest uint64) {
	c.mu.Lock()
	c.ring.Add(seq, digest)
	c.mu.Unlock()
}

// WriteFinal writes the exact record of this connection's session (at close,
// or at hand-over: handOff, after which Accept refuses everything) unless
// the session already moved on or was never opened.
func (c *Conn) WriteFinal(handOff bool) {
	c.mu.Lock()
	if c.handedOff || c.sid == "" {
		c.mu.Unlock()
		return
	}
	c.handedOff = handOff || c.handedOff
	rec := c.rec
	exact := max(c.owner.LastSeq(), c.resumedTo)
	rec.LastSeq = max(exact, c.maxOK)
	rec.RecentTo = exact
	if rec.LastSeq > exact {
		// The reader let a seq through that it has not recorded yet (it is
		// being enqueued as we hand over): the next connection checks a
		// resend of it against JetStream, like after a crash.
		rec.WidenUnknown(exact, time.Now(), c.dupWindow)
	}
	rec.Recent = c.ring.Entries()
	rec.Open = false
	rec.Gateway = ""
	rec.Zone = c.owner.Zone()
	rev, sid := c.rev, c.sid
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), StoreTimeout)
	defer cancel()
	nrev, err := c.store.Update(ctx, sid, rec, rev)
	switch {
	case errors.Is(err, ErrMoved):
		// Another connection resumed the session and wrote the record
		// since: this late close must not take it back.
		c.log.Debug("final session record not written: the session moved on", "session", sid)
	case err != nil:
		c.log.Warn("final session record", "session", sid, "err", err)
	default:
		c.mu.Lock()
		c.rev = nrev
		c.mu.Unlock()
	}
}

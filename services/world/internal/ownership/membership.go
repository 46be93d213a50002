package ownership

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/lock"
)

// checkEligible leaves the membership when the lock store has stopped
// answering (lockHealth.unhealthy) and rejoins once a probe gets an answer.
// Out of the membership, this instance wants no zone (LiveMembers leaves it
// out) and the others take its zones as soon as its leases expire; before
// this, rendezvous hashing kept assigning them to it and nobody acquired
// them until its lock store came back (audit finding 5).
func (c *Controller) checkEligible(ctx context.Context) {
	renew := c.locker.RenewEvery()
	if !c.out.Load() {
		if !c.health.unhealthy(renew, c.cfg.LeaseTTL) {
			return
		}
		err := c.leaveMembership(ctx)
		c.lastProbe = time.Now()
		c.log.Warn("lock store does not answer: left the membership until it does", "delete_err", err)
		return
	}
	if time.Since(c.lastProbe) < renew {
		return
	}
	c.lastProbe = time.Now()
	// A renewal of a lease nobody holds: a healthy store answers "not held".
	pctx, cancel := context.WithTimeout(ctx, renew)
	err := c.store.Renew(pctx, "probe:"+c.cfg.Instance, "probe", c.cfg.LeaseTTL)
	cancel()
	if err != nil && !errors.Is(err, lock.ErrNotHeld) {
		return
	}
	c.out.Store(false)
	c.putMember(ctx)
	c.log.Info("lock store answers again: rejoined the membership")
}

// Leave deletes this instance's membership entry (graceful shutdown: the
// others start acquiring its zones at once).
func (c *Controller) Leave(ctx context.Context) error { return c.members.Delete(ctx, c.cfg.Instance) }

// leaveMembership marks this instance out and deletes its membership entry.
// out is set first: a put in flight sees it when it lands (putMember).
func (c *Controller) leaveMembership(ctx context.Context) error {
	c.out.Store(true)
	dctx, cancel := context.WithTimeout(ctx, c.cfg.PublishTimeout)
	defer cancel()
	return c.members.Delete(dctx, c.cfg.Instance)
}

// putMember puts this instance's membership entry, unless it is out. It
// holds no lock across the put: if the instance left while the put was in
// flight (out set after the check above), the entry it wrote may have landed
// after the leave's delete, so it deletes it again; a put that lands before
// the leave's delete is removed by that delete.
func (c *Controller) putMember(ctx context.Context) {
	if c.out.Load() {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, c.cfg.PublishTimeout)
	defer cancel()
	_, err := c.members.Put(pctx, c.cfg.Instance, []byte(c.cfg.Instance))
	if err == nil && c.out.Load() {
		_ = c.members.Delete(pctx, c.cfg.Instance)
		return
	}
	if err != nil && ctx.Err() == nil {
		c.log.Warn("membership heartbeat", "err", err)
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) {
			if cerr := c.recreate(pctx); cerr != nil {
				c.log.Warn("recreate members bucket", "err", cerr)
			}
		}
	}
}

// Membership puts this instance's entry every member TTL / 3 and watches the
// bucket until ctx ends; ready is closed once the initial entries are known.
func (c *Controller) Membership(ctx context.Context, ready chan struct{}) {
	put := func() {
		if c.paused() {
			return
		}
		c.putMember(ctx)
	}
	put()
	var once sync.Once
	markReady := func() { once.Do(func() { close(ready) }) }
	defer markReady()
	interval := c.cfg.MemberTTL / 3
	t := time.NewTicker(interval)
	defer t.Stop()
	for ctx.Err() == nil {
		// Our own puts come back through the watch: if they stop coming
		// (e.g. the watch did not survive a NATS restart), start a new one.
		selfSeen := time.Now()
		w, err := c.members.WatchAll(ctx)
		if err != nil {
			c.log.Warn("watch members", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
	loop:
		for {
			select {
			case <-ctx.Done():
				_ = w.Stop()
				return
			case <-t.C:
				put()
				if c.out.Load() {
					selfSeen = time.Now() // no puts of ours to expect
				}
				if time.Since(selfSeen) > 3*interval && !c.paused() {
					c.log.Warn("membership watch silent; restarting it")
					_ = w.Stop()
					break loop
				}
			case e, ok := <-w.Updates():
				if !ok {
					break loop
				}
				if e == nil {
					markReady()
					continue
				}
				if e.Key() == c.cfg.Instance {
					selfSeen = time.Now()
				}
				c.mu.Lock()
				if e.Operation() == jetstream.KeyValuePut {
					c.seen[e.Key()] = time.Now()
				} else {
					delete(c.seen, e.Key())
				}
				c.mu.Unlock()
			}
		}
	}
}

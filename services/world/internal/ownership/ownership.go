// Package ownership is the world's ownership controller: which zones this
// instance runs. Zones are spread over the live instances by rendezvous
// hashing (Owner); the membership is a NATS KV bucket (one entry per
// instance, put every member TTL / 3, watched); a zone is run only under its
// lease (libs/lock), taken over at once from an owner whose membership ended
// (TakeOverDead), and handed over when the hashing moves it. An instance
// whose lock store stops answering leaves the membership until a probe gets
// an answer again (lockhealth.go). Safety does not rest on any of this: the
// zone's appends are fenced by the log itself (internal/zone).
//
// Goroutines: the caller's controller loop calls Rebalance (acquire and
// release, the health check); Membership runs in its own goroutine; each
// zone started runs in one goroutine (Start). Shared between them, behind
// mu: zones, status, seen, cooldown. No mutex is held across a network call
// (a lock store call, a KV put or delete, a NATS request): a slow store or
// KV must not stall the controller or the metrics that read the state.
package ownership

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/services/world/internal/zone"
)

// Config configures the controller of one instance.
type Config struct {
	Instance       string
	Zones          []string      // every zone of the map
	LeaseTTL       time.Duration // the zone leases' TTL
	MemberTTL      time.Duration // an instance without a membership put for this long is gone
	PublishTimeout time.Duration // bounds one membership put or delete
	// Paused (tests): the controller and the membership puts stop, as if
	// the process were stopped (SIGSTOP); nil in production.
	Paused func() bool
}

// RunZone runs zone z under lease until ctx ends (or the zone fails, or
// crashes: an error wrapping zone.ErrCrash), reporting its status to
// onStatus. It is the world's zone.Run with the instance's zone config.
type RunZone func(ctx context.Context, z string, lease *lock.Lease, onStatus func(zone.Status)) error

// Members is the membership bucket as the controller uses it
// (jetstream.KeyValue).
type Members interface {
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error
	WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error)
}

// Controller decides and runs this instance's share of the zones.
type Controller struct {
	cfg    Config
	log    *slog.Logger
	locker *lock.Locker
	run    RunZone
	// members is the bucket; recreate makes it again if it disappears (e.g.
	// a NATS server restarted without its store).
	members  Members
	recreate func(ctx context.Context) error

	// store is the lock store as the locker sees it (health-recording);
	// health says whether it answers. While it does not, out is set: this
	// instance has left the membership and only the controller probes the
	// store (lastProbe). No lock is held across a membership call (a slow
	// KV must not stall the controller): out is set before the delete, and
	// a put re-reads it after it lands and deletes what it wrote when out
	// was set meanwhile (putMember), so an entry never outlives a leave.
	store     lock.Store
	health    *lockHealth
	out       atomic.Bool
	lastProbe time.Time // controller goroutine only

	mu       sync.Mutex
	zones    map[string]*owned
	status   map[string]zone.Status
	seen     map[string]time.Time // member -> local time of its last heartbeat
	cooldown map[string]time.Time // zone -> no acquire attempt before
	warned   map[string]time.Time // zone -> no acquire warning before (controller goroutine only)
}

type owned struct {
	lease  *lock.Lease
	cancel context.CancelCauseFunc
	done   chan struct{}
	moving bool // handing over
}

// New builds the controller; Open gives it what it runs on.
func New(cfg Config, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	return &Controller{cfg: cfg, log: log, health: newLockHealth(),
		zones: map[string]*owned{}, status: map[string]zone.Status{}, seen: map[string]time.Time{}, cooldown: map[string]time.Time{}, warned: map[string]time.Time{}}
}

// Open gives the controller the lock store (wrapped to record its health),
// the locker's options lockOpts (Owner and TTL are cfg's), the membership
// bucket and the function that makes it again, and run to run a zone. It is
// called once, before Rebalance and Membership; what New built (Owned,
// Running, Eligible, LiveMembers) may be read before it.
func (c *Controller) Open(store lock.Store, lockOpts lock.Options, members Members, recreate func(context.Context) error, run RunZone) error {
	c.store = healthStore{Store: store, h: c.health}
	lockOpts.TTL, lockOpts.Owner = c.cfg.LeaseTTL, c.cfg.Instance
	var err error
	if c.locker, err = lock.New(c.store, lockOpts); err != nil {
		return err
	}
	c.members, c.recreate, c.run = members, recreate, run
	return nil
}

func (c *Controller) paused() bool { return c.cfg.Paused != nil && c.cfg.Paused() }

// Owned returns the status of the zones this instance runs, by zone id.
func (c *Controller) Owned() map[string]zone.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]zone.Status, len(c.zones))
	for z := range c.zones {
		out[z] = c.status[z]
	}
	return out
}

// Running is the number of zones this instance runs.
func (c *Controller) Running() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.zones)
}

// Eligible says whether this instance is in the membership (false while its
// lock store does not answer).
func (c *Controller) Eligible() bool { return !c.out.Load() }

// Stop cancels every running zone with cause: zone.ErrCrash stops them
// without releasing anything (a simulated crash), context.Canceled hands
// them over (release event, final snapshot, lease release). Wait waits for
// them.
func (c *Controller) Stop(cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.zones {
		if !errors.Is(cause, zone.ErrCrash) {
			o.moving = true
		}
		o.cancel(cause)
	}
}

// Wait waits until no zone runs, up to d; it reports success.
func (c *Controller) Wait(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		var done []chan struct{}
		for _, o := range c.zones {
			done = append(done, o.done)
		}
		c.mu.Unlock()
		if len(done) == 0 {
			return true
		}
		select {
		case <-done[0]:
		case <-time.After(time.Until(deadline)):
			return false
		}
	}
}

// Rebalance acquires the zones this instance should own and hands over the
// ones it should not.
func (c *Controller) Rebalance(ctx context.Context) {
	if c.paused() {
		return
	}
	c.checkEligible(ctx)
	live := c.LiveMembers()
	now := time.Now()
	for _, z := range c.cfg.Zones {
		want := Owner(z, live) == c.cfg.Instance
		c.mu.Lock()
		o := c.zones[z]
		cool := now.Before(c.cooldown[z])
		c.mu.Unlock()
		switch {
		case want && o == nil && !cool:
			actx, cancel := context.WithTimeout(ctx, c.cfg.LeaseTTL/3)
			lease, err := c.locker.TryAcquire(actx, "zone:"+z)
			if errors.Is(err, lock.ErrHeld) {
				// Held by a crashed owner? Its membership ended before its
				// lease will: take the zone now, not after the lease TTL.
				lease, err = c.locker.TakeOverDead(actx, "zone:"+z, c.deadOwner)
				if err == nil {
					c.log.Info("took over the lease of a dead owner", "zone", z, "fence", lease.Fence())
				} else if errors.Is(err, lock.ErrNotHeld) || errors.Is(err, lock.ErrNoBreaker) {
					err = lock.ErrHeld // moved meanwhile: next round
				}
			}
			cancel()
			if err != nil {
				if !errors.Is(err, lock.ErrHeld) && now.After(c.warned[z]) {
					c.warned[z] = now.Add(5 * time.Second) // at most one warning per zone per 5s
					c.log.Warn("acquire zone lease", "zone", z, "err", err)
				}
				continue
			}
			c.start(z, lease)
		case !want && o != nil && !o.moving:
			c.log.Info("handing zone over", "zone", z, "to", Owner(z, live))
			c.mu.Lock()
			o.moving = true
			c.mu.Unlock()
			o.cancel(context.Canceled)
		}
	}
}

// Unclaimed lists the zones rendezvous hashing assigns to this instance that
// it has not claimed yet (no lease, or the claim not appended).
func (c *Controller) Unclaimed() []string {
	live := c.LiveMembers()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, z := range c.cfg.Zones {
		if Owner(z, live) != c.cfg.Instance {
			continue
		}
		if o := c.zones[z]; o == nil || c.status[z].Fence == 0 {
			out = append(out, z)
		}
	}
	return out
}

// deadOwner reports whether owner, the holder of a zone lease this instance
// wants, is known to be dead: its membership heartbeat was seen and has
// ended (older than the member TTL, which is shorter than the lease TTL), or
// owner is this instance's own id while this process runs no such zone (a
// previous incarnation killed and restarted under the same pod name). An
// owner never seen is not judged: its lease runs out its TTL.
func (c *Controller) deadOwner(owner string) bool {
	if owner == c.cfg.Instance {
		return true // called only for zones this process does not own (Rebalance: o == nil)
	}
	c.mu.Lock()
	at, ok := c.seen[owner]
	c.mu.Unlock()
	return ok && time.Since(at) >= c.cfg.MemberTTL
}

func (c *Controller) start(z string, lease *lock.Lease) {
	zctx, cancel := context.WithCancelCause(context.Background())
	o := &owned{lease: lease, cancel: cancel, done: make(chan struct{})}
	c.mu.Lock()
	c.zones[z] = o
	c.mu.Unlock()
	onStatus := func(st zone.Status) {
		c.mu.Lock()
		c.status[z] = st
		c.mu.Unlock()
	}
	go func() {
		defer close(o.done)
		err := c.run(zctx, z, lease, onStatus)
		crashed := errors.Is(err, zone.ErrCrash)
		if crashed {
			lease.Abandon()
		} else {
			rctx, rcancel := context.WithTimeout(context.Background(), c.cfg.LeaseTTL/3)
			if rerr := lease.Release(rctx); rerr != nil && !errors.Is(rerr, lock.ErrNotHeld) {
				c.log.Warn("release zone lease", "zone", z, "err", rerr)
			}
			rcancel()
		}
		if err != nil && !crashed && !(zctx.Err() != nil && errors.Is(err, context.Canceled)) {
			c.log.Warn("zone stopped", "zone", z, "err", err)
		}
		c.mu.Lock()
		delete(c.zones, z)
		delete(c.status, z)
		if err != nil {
			// Lost or failed: let the new owner settle before trying again.
			c.cooldown[z] = time.Now().Add(c.cfg.LeaseTTL / 2)
		}
		c.mu.Unlock()
	}()
}

// LiveMembers returns the instances with a recent membership heartbeat, self
// included unless it left the membership (lock store unreachable).
func (c *Controller) LiveMembers() []string {
	ttl := c.cfg.MemberTTL
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	if !c.out.Load() {
		out = append(out, c.cfg.Instance)
	}
	for id, at := range c.seen {
		if id != c.cfg.Instance && now.Sub(at) < ttl {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

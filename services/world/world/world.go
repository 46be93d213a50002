// Package world is the zone simulation service of Realmstream. Several
// instances share the zones of the world map; each zone has one owner at a
// time, chosen by rendezvous hashing over the live instances and held by a
// lease (Redis, or the in-process table on one machine). Safety does not rest
// on the lease: every event is appended to evt.<zone> with the expected last
// sequence, so a stale owner can never fork the log (see docs/world.md).
//
// Goroutines: Run owns the controller loop (membership view, acquire and
// release); each owned zone has one goroutine (internal/zone) that owns its
// state; a membership goroutine puts this instance's entry and watches the
// others; a heartbeat goroutine publishes svc.hb.world.<instance>. Shared
// between them, behind mu: zones, statuses, members.
package world

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/opsserver"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/world/internal/history"
	"github.com/realmstream/realmstream/services/world/internal/rules"
	"github.com/realmstream/realmstream/services/world/internal/snapstore"
	"github.com/realmstream/realmstream/services/world/internal/trim"
	"github.com/realmstream/realmstream/services/world/internal/zone"
)

// KV buckets of the world service.
const (
	// BucketMembers holds one entry per live world instance (TTL = member TTL).
	BucketMembers = "world_members"
	// BucketSnapshots holds the latest snapshots of each zone (key = zone id;
	// the last SnapshotHistory revisions are kept for time travel).
	BucketSnapshots = "world_snapshots"
	// BucketPlayers says which zone each player is in (key = player id):
	// a player is in exactly one zone (internal/zone/where.go).
	BucketPlayers = "world_players"
	// SnapshotHistory is how many snapshots per zone the bucket keeps.
	SnapshotHistory = 16
)

// Service is one world instance.
type Service struct {
	cfg   Config
	log   *slog.Logger
	ops   *opsserver.Server
	rules *rules.Config
	zm    *zone.Metrics
	figs  *telemetry.Figures // heartbeat figures
	lm    *lock.Metrics
	ready chan struct{}

	nc      *nats.Conn
	js      jetstream.JetStream
	snaps   jetstream.KeyValue
	chunks  *snapstore.Store // snapshots of any size over snaps (large ones chunked in an object store)
	players jetstream.KeyValue
	members jetstream.KeyValue
	// membersCfg recreates the bucket if it disappears (e.g. a NATS server
	// restarted without its store); only the membership goroutine uses it after start.
	membersCfg jetstream.KeyValueConfig
	locker     *lock.Locker
	rc         redis.UniversalClient
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

	hooks testHooks
}

// testHooks let in-package tests simulate pauses; zero in production.
type testHooks struct {
	wrapStore    func(lock.Store) lock.Store
	beforeAppend func(zone, eventID string) error
	paused       *atomic.Bool // controller and membership heartbeats stop (SIGSTOP-like)
}

type owned struct {
	lease  *lock.Lease
	cancel context.CancelCauseFunc
	done   chan struct{}
	moving bool // handing over
}

// New validates cfg and builds the service; Run starts it.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("world: %w", err)
	}
	rc, err := rules.New(rules.Config{Map: cfg.Map})
	if err != nil {
		return nil, fmt.Errorf("world: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Service{cfg: cfg, log: log.With("instance", cfg.InstanceID), ops: opsserver.New(), rules: rc, ready: make(chan struct{}),
		zones: map[string]*owned{}, status: map[string]zone.Status{}, seen: map[string]time.Time{}, cooldown: map[string]time.Time{}, warned: map[string]time.Time{},
		health: newLockHealth()}
	s.zm = zone.NewMetrics(s.ops.Registry)
	s.figs = newFigures(s.ops.Registry)
	s.lm = lock.NewMetrics("realm_world_lock", s.ops.Registry)
	newGauge(s.ops.Registry, "realm_world_zones_owned", "Zones owned by this instance.", func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(len(s.zones))
	})
	newGauge(s.ops.Registry, "realm_world_members", "Live world instances seen by this instance.", func() float64 {
		return float64(len(s.liveMembers()))
	})
	newGauge(s.ops.Registry, "realm_world_eligible", "1 while this instance is in the membership (0: its lock store does not answer).", func() float64 {
		if s.out.Load() {
			return 0
		}
		return 1
	})
	return s, nil
}

// Ready is closed once the instance has joined and runs its controller.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// HTTPAddr is the bound ops server address (after Ready).
func (s *Service) HTTPAddr() string { return s.ops.Addr() }

// InstanceID returns the instance id.
func (s *Service) InstanceID() string { return s.cfg.InstanceID }

// ZoneStatus is an owned zone as reported by Owned and in heartbeats: zone,
// fence, last stream sequence of its log, players, tick (Fence is 0 until
// the ownership claim is appended).
type ZoneStatus = zone.Status

// Owned returns the status of the zones this instance owns, by zone id.
func (s *Service) Owned() map[string]ZoneStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]ZoneStatus, len(s.zones))
	for z := range s.zones {
		out[z] = s.status[z]
	}
	return out
}

// Run serves until ctx is cancelled, then hands its zones over (release
// event, final snapshot, lease release) within cfg.ShutdownTimeout and
// returns nil.
func (s *Service) Run(ctx context.Context) error {
	nc, err := svcmain.Connect("world", &s.cfg.Common, s.log, nats.DrainTimeout(s.cfg.ShutdownTimeout))
	if err != nil {
		return err
	}
	s.nc = nc
	defer nc.Close()
	if s.js, err = jetstream.New(nc); err != nil {
		return fmt.Errorf("world: jetstream: %w", err)
	}
	if err := s.cfg.EnsureStreams(ctx, s.js); err != nil {
		return fmt.Errorf("world: %w", err)
	}
	replicas := max(s.cfg.Streams.Replicas, 1)
	// File storage: a memory bucket would vanish with a NATS restart.
	s.membersCfg = jetstream.KeyValueConfig{Bucket: BucketMembers, Description: "live world instances",
		TTL: s.cfg.memberTTL(), History: 1, Storage: jetstream.FileStorage, Replicas: replicas}
	if s.members, err = wire.EnsureKeyValue(ctx, s.js, s.membersCfg); err != nil {
		return fmt.Errorf("world: members bucket: %w", err)
	}
	if s.snaps, err = wire.EnsureKeyValue(ctx, s.js, jetstream.KeyValueConfig{Bucket: BucketSnapshots, Description: "zone snapshots",
		History: SnapshotHistory, Replicas: replicas, MaxValueSize: -1}); err != nil {
		return fmt.Errorf("world: snapshots bucket: %w", err)
	}
	if s.chunks, err = snapstore.Open(ctx, s.js, s.snaps, replicas); err != nil {
		return fmt.Errorf("world: %w", err)
	}
	if s.players, err = wire.EnsureKeyValue(ctx, s.js, jetstream.KeyValueConfig{Bucket: BucketPlayers, Description: "zone of each player",
		History: 1, Storage: jetstream.FileStorage, Replicas: replicas}); err != nil {
		return fmt.Errorf("world: players bucket: %w", err)
	}
	store, err := s.lockStore()
	if err != nil {
		return err
	}
	if s.rc != nil {
		defer s.rc.Close()
	}
	if s.locker, err = lock.New(store, lock.Options{TTL: s.cfg.LeaseTTL, Owner: s.cfg.InstanceID, Metrics: s.lm}); err != nil {
		return fmt.Errorf("world: %w", err)
	}
	s.ops.AddCheck("nats", func(context.Context) error {
		if !nc.IsConnected() {
			return errors.New("not connected")
		}
		return nil
	})
	// Time travel: any instance answers world.query.state from the log and
	// the snapshots' history, owner or not.
	hsub, err := history.Serve(ctx, nc, &history.Reader{JS: s.js, Snaps: history.KVSnapshots{KV: s.snaps, Chunks: s.chunks}, Rules: s.rules,
		Below: history.StoreSource{NC: nc}}, 30*time.Second)
	if err != nil {
		return fmt.Errorf("world: query API: %w", err)
	}
	defer func() { _ = hsub.Unsubscribe() }()
	if err := s.ops.Listen(s.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("world: ops listener %s: %w", s.cfg.HTTPAddr, err)
	}

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	watchReady := make(chan struct{})
	wg.Add(2)
	go func() { defer wg.Done(); s.membership(bg, watchReady) }()
	go func() { defer wg.Done(); s.heartbeats(bg) }()
	if s.cfg.TrimInterval > 0 {
		t, err := trim.New(ctx, nc, s.js, trim.Config{KeepAge: s.cfg.TrimKeepAge, KeepRecords: s.cfg.TrimKeepRecords})
		if err != nil {
			stopBG()
			return fmt.Errorf("world: %w", err)
		}
		tr := newTrimmer(s, t)
		wg.Add(1)
		go func() { defer wg.Done(); tr.run(bg, s.cfg.TrimInterval) }()
	}
	select {
	case <-watchReady:
	case <-ctx.Done():
	}
	close(s.ready)
	s.log.Info("world started", "lock", s.lockKind(), "lease_ttl", s.cfg.LeaseTTL, "tick", s.cfg.Tick, "http", s.ops.Addr())

	// /readyz turns ready once the zones this instance is assigned are
	// claimed (snapshot loaded, log replayed, claim appended), not when it
	// first sees the membership: a rolling update (with minReadySeconds) then
	// waits for each new pod's zones to settle before it stops the next old
	// one, so each zone moves once. Bounded: a zone held by an owner nobody
	// saw die waits out its lease TTL, after which it is claimed anyway.
	readyBy := time.Now().Add(2*s.cfg.LeaseTTL + s.cfg.memberTTL())
	opsReady := false
	t := time.NewTicker(s.cfg.Rebalance)
	for ctx.Err() == nil {
		s.rebalance(ctx)
		if !opsReady {
			if missing := s.unclaimed(); len(missing) == 0 || time.Now().After(readyBy) {
				if len(missing) > 0 {
					s.log.Warn("ready although zones are not claimed yet", "zones", missing)
				}
				s.ops.SetReady(true)
				opsReady = true
			}
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	t.Stop()
	s.ops.SetReady(false)

	if errors.Is(context.Cause(ctx), zone.ErrCrash) {
		// Simulated crash: stop everything without releasing anything.
		s.mu.Lock()
		for _, o := range s.zones {
			o.cancel(zone.ErrCrash)
		}
		s.mu.Unlock()
		s.waitZones(time.Minute)
		stopBG()
		wg.Wait()
		nc.Close()
		_ = s.ops.Shutdown(context.Background())
		return nil
	}

	// Graceful: leave the membership first so the others start acquiring,
	// then hand every zone over.
	sdCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	_ = s.members.Delete(sdCtx, s.cfg.InstanceID)
	s.mu.Lock()
	for _, o := range s.zones {
		o.moving = true
		o.cancel(context.Canceled)
	}
	s.mu.Unlock()
	if !s.waitZones(s.cfg.ShutdownTimeout) {
		s.log.Warn("zones not handed over within the shutdown timeout; their leases expire by TTL")
	}
	stopBG()
	wg.Wait()
	s.publishHeartbeat(false, true)
	if !nc.IsConnected() || nc.Drain() != nil {
		nc.Close()
	}
	_ = s.ops.Shutdown(sdCtx)
	s.log.Info("world stopped")
	return nil
}

func (s *Service) lockKind() string {
	switch {
	case s.cfg.LockStore != nil:
		return "provided"
	case s.cfg.RedisSentinelMaster != "":
		return "redis-sentinel"
	case s.cfg.RedisAddr != "":
		return "redis"
	}
	return "in-process"
}

func (s *Service) lockStore() (lock.Store, error) {
	var store lock.Store
	switch {
	case s.cfg.LockStore != nil:
		store = s.cfg.LockStore
	case s.cfg.RedisAddr != "" || s.cfg.RedisSentinelMaster != "":
		rc, err := lock.NewRedisClient(s.cfg.redisConfig())
		if err != nil {
			return nil, fmt.Errorf("world: %w", err)
		}
		s.rc = rc
		s.ops.Registry.MustRegister(lock.NewPoolCollector("realm_world_redis", rc))
		s.ops.AddCheck("redis", func(ctx context.Context) error { return rc.Ping(ctx).Err() })
		store = lock.NewRedisStore(rc, s.cfg.LockPrefix)
	default:
		store = lock.NewTable()
	}
	if s.hooks.wrapStore != nil {
		store = s.hooks.wrapStore(store)
	}
	s.store = healthStore{Store: store, h: s.health}
	return s.store, nil
}

func (s *Service) paused() bool { return s.hooks.paused != nil && s.hooks.paused.Load() }

// waitZones waits until no zone runs, up to d; it reports success.
func (s *Service) waitZones(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		s.mu.Lock()
		var done []chan struct{}
		for _, o := range s.zones {
			done = append(done, o.done)
		}
		s.mu.Unlock()
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

// rebalance acquires the zones this instance should own and hands over the
// ones it should not.
func (s *Service) rebalance(ctx context.Context) {
	if s.paused() {
		return
	}
	s.checkEligible(ctx)
	live := s.liveMembers()
	now := time.Now()
	for _, z := range s.cfg.Map.Zones() {
		want := Owner(z, live) == s.cfg.InstanceID
		s.mu.Lock()
		o := s.zones[z]
		cool := now.Before(s.cooldown[z])
		s.mu.Unlock()
		switch {
		case want && o == nil && !cool:
			actx, cancel := context.WithTimeout(ctx, s.cfg.LeaseTTL/3)
			lease, err := s.locker.TryAcquire(actx, "zone:"+z)
			if errors.Is(err, lock.ErrHeld) {
				// Held by a crashed owner? Its membership ended before its
				// lease will: take the zone now, not after the lease TTL.
				lease, err = s.locker.TakeOverDead(actx, "zone:"+z, s.deadOwner)
				if err == nil {
					s.log.Info("took over the lease of a dead owner", "zone", z, "fence", lease.Fence())
				} else if errors.Is(err, lock.ErrNotHeld) || errors.Is(err, lock.ErrNoBreaker) {
					err = lock.ErrHeld // moved meanwhile: next round
				}
			}
			cancel()
			if err != nil {
				if !errors.Is(err, lock.ErrHeld) && now.After(s.warned[z]) {
					s.warned[z] = now.Add(5 * time.Second) // at most one warning per zone per 5s
					s.log.Warn("acquire zone lease", "zone", z, "err", err)
				}
				continue
			}
			s.start(z, lease)
		case !want && o != nil && !o.moving:
			s.log.Info("handing zone over", "zone", z, "to", Owner(z, live))
			s.mu.Lock()
			o.moving = true
			s.mu.Unlock()
			o.cancel(context.Canceled)
		}
	}
}

// unclaimed lists the zones rendezvous hashing assigns to this instance that
// it has not claimed yet (no lease, or the claim not appended).
func (s *Service) unclaimed() []string {
	live := s.liveMembers()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, z := range s.cfg.Map.Zones() {
		if Owner(z, live) != s.cfg.InstanceID {
			continue
		}
		if o := s.zones[z]; o == nil || s.status[z].Fence == 0 {
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
func (s *Service) deadOwner(owner string) bool {
	if owner == s.cfg.InstanceID {
		return true // called only for zones this process does not own (rebalance: o == nil)
	}
	s.mu.Lock()
	at, ok := s.seen[owner]
	s.mu.Unlock()
	return ok && time.Since(at) >= s.cfg.memberTTL()
}

// checkEligible leaves the membership when the lock store has stopped
// answering (lockHealth.unhealthy) and rejoins once a probe gets an answer.
// Out of the membership, this instance wants no zone (liveMembers leaves it
// out) and the others take its zones as soon as its leases expire; before
// this, rendezvous hashing kept assigning them to it and nobody acquired
// them until its lock store came back (audit finding 5).
func (s *Service) checkEligible(ctx context.Context) {
	renew := s.locker.RenewEvery()
	if !s.out.Load() {
		if !s.health.unhealthy(renew, s.cfg.LeaseTTL) {
			return
		}
		err := s.leaveMembership(ctx)
		s.lastProbe = time.Now()
		s.log.Warn("lock store does not answer: left the membership until it does", "delete_err", err)
		return
	}
	if time.Since(s.lastProbe) < renew {
		return
	}
	s.lastProbe = time.Now()
	// A renewal of a lease nobody holds: a healthy store answers "not held".
	pctx, cancel := context.WithTimeout(ctx, renew)
	err := s.store.Renew(pctx, "probe:"+s.cfg.InstanceID, "probe", s.cfg.LeaseTTL)
	cancel()
	if err != nil && !errors.Is(err, lock.ErrNotHeld) {
		return
	}
	s.out.Store(false)
	s.putMember(ctx)
	s.log.Info("lock store answers again: rejoined the membership")
}

// leaveMembership marks this instance out and deletes its membership entry.
// out is set first: a put in flight sees it when it lands (putMember).
func (s *Service) leaveMembership(ctx context.Context) error {
	s.out.Store(true)
	dctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	return s.members.Delete(dctx, s.cfg.InstanceID)
}

// putMember puts this instance's membership entry, unless it is out. It
// holds no lock across the put: if the instance left while the put was in
// flight (out set after the check above), the entry it wrote may have landed
// after the leave's delete, so it deletes it again; a put that lands before
// the leave's delete is removed by that delete.
func (s *Service) putMember(ctx context.Context) {
	if s.out.Load() {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	_, err := s.members.Put(pctx, s.cfg.InstanceID, []byte(s.cfg.InstanceID))
	if err == nil && s.out.Load() {
		_ = s.members.Delete(pctx, s.cfg.InstanceID)
		return
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("membership heartbeat", "err", err)
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) {
			if _, cerr := wire.EnsureKeyValue(pctx, s.js, s.membersCfg); cerr != nil {
				s.log.Warn("recreate members bucket", "err", cerr)
			}
		}
	}
}

func (s *Service) start(z string, lease *lock.Lease) {
	zctx, cancel := context.WithCancelCause(context.Background())
	o := &owned{lease: lease, cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	s.zones[z] = o
	s.mu.Unlock()
	cfg := zone.Config{
		Zone: z, Instance: s.cfg.InstanceID, NC: s.nc, JS: s.js, Snapshots: s.snaps, SnapStore: s.chunks, Below: history.StoreSource{NC: s.nc}, Players: s.players, Rules: s.rules, Lease: lease,
		Tick: s.cfg.Tick, SnapshotEvery: s.cfg.SnapshotEvery, SnapshotInterval: s.cfg.SnapshotInterval, AckWait: s.cfg.AckWait,
		MaxBatch: s.cfg.MaxBatch, PublishTimeout: s.cfg.PublishTimeout, DisconnectGrace: s.cfg.DisconnectGrace, UpdatesPerCell: s.cfg.UpdateShape == "cell", Log: s.log, Metrics: s.zm,
		OnStatus: func(st zone.Status) {
			s.mu.Lock()
			s.status[z] = st
			s.mu.Unlock()
		},
		BeforeAppend: s.hooks.beforeAppend,
	}
	go func() {
		defer close(o.done)
		err := zone.Run(zctx, cfg)
		crashed := errors.Is(err, zone.ErrCrash)
		if crashed {
			lease.Abandon()
		} else {
			rctx, rcancel := context.WithTimeout(context.Background(), s.cfg.LeaseTTL/3)
			if rerr := lease.Release(rctx); rerr != nil && !errors.Is(rerr, lock.ErrNotHeld) {
				s.log.Warn("release zone lease", "zone", z, "err", rerr)
			}
			rcancel()
		}
		if err != nil && !crashed && !(zctx.Err() != nil && errors.Is(err, context.Canceled)) {
			s.log.Warn("zone stopped", "zone", z, "err", err)
		}
		s.mu.Lock()
		delete(s.zones, z)
		delete(s.status, z)
		if err != nil {
			// Lost or failed: let the new owner settle before trying again.
			s.cooldown[z] = time.Now().Add(s.cfg.LeaseTTL / 2)
		}
		s.mu.Unlock()
	}()
}

// liveMembers returns the instances with a recent membership heartbeat, self
// included unless it left the membership (lock store unreachable).
func (s *Service) liveMembers() []string {
	ttl := s.cfg.memberTTL()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if !s.out.Load() {
		out = append(out, s.cfg.InstanceID)
	}
	for id, at := range s.seen {
		if id != s.cfg.InstanceID && now.Sub(at) < ttl {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// membership puts this instance's entry every member TTL / 3 and watches the
// bucket; ready is closed once the initial entries are known.
func (s *Service) membership(ctx context.Context, ready chan struct{}) {
	put := func() {
		if s.paused() {
			return
		}
		s.putMember(ctx)
	}
	put()
	var once sync.Once
	markReady := func() { once.Do(func() { close(ready) }) }
	defer markReady()
	interval := s.cfg.memberTTL() / 3
	t := time.NewTicker(interval)
	defer t.Stop()
	for ctx.Err() == nil {
		// Our own puts come back through the watch: if they stop coming
		// (e.g. the watch did not survive a NATS restart), start a new one.
		selfSeen := time.Now()
		w, err := s.members.WatchAll(ctx)
		if err != nil {
			s.log.Warn("watch members", "err", err)
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
				if s.out.Load() {
					selfSeen = time.Now() // no puts of ours to expect
				}
				if time.Since(selfSeen) > 3*interval && !s.paused() {
					s.log.Warn("membership watch silent; restarting it")
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
				if e.Key() == s.cfg.InstanceID {
					selfSeen = time.Now()
				}
				s.mu.Lock()
				if e.Operation() == jetstream.KeyValuePut {
					s.seen[e.Key()] = time.Now()
				} else {
					delete(s.seen, e.Key())
				}
				s.mu.Unlock()
			}
		}
	}
}

func (s *Service) heartbeats(ctx context.Context) {
	svcmain.Heartbeats(ctx, s.cfg.Heartbeat, func() { s.publishHeartbeat(true, false) })
}

func (s *Service) publishHeartbeat(ready, stopping bool) {
	hb := &schema.Heartbeat{Service: "world", InstanceId: s.cfg.InstanceID, SentAtNs: time.Now().UnixNano(), Ready: ready && !stopping && !s.out.Load(),
		HttpAddr: s.ops.Addr(), Stopping: stopping, Figures: s.figs.Sample(time.Now())}
	owned := s.Owned()
	zs := make([]string, 0, len(owned))
	for z := range owned {
		zs = append(zs, z)
	}
	sort.Strings(zs)
	for _, z := range zs {
		st := owned[z]
		hb.Zones = append(hb.Zones, &schema.ZoneOwnership{Zone: z, Fence: st.Fence, LastSeq: st.LastSeq, Players: int32(st.Players)})
		hb.Players += int64(st.Players)
	}
	_ = svcmain.PublishHeartbeat(s.nc, hb)
}

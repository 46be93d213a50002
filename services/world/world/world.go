// Package world is the zone simulation service of Realmstream. Several
// instances share the zones of the world map; each zone has one owner at a
// time, chosen by rendezvous hashing over the live instances and held by a
// lease (Redis, or the in-process table on one machine). Safety does not rest
// on the lease: every event is appended to evt.<zone> with the expected last
// sequence, so a stale owner can never fork the log (see docs/world.md).
//
// This package is Config, New and Run: the buckets, the lock store, the query
// API and the composition. The ownership controller (membership, rendezvous
// hashing, leases, takeover, lock store health) is internal/ownership; the
// zone itself is internal/zone.
//
// Goroutines: Run owns the controller loop (ownership.Controller.Rebalance:
// acquire and release); each owned zone has one goroutine (internal/zone)
// that owns its state; a membership goroutine puts this instance's entry and
// watches the others; a heartbeat goroutine publishes
// svc.hb.world.<instance>.
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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/opsserver"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/telemetry"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/world/internal/history"
	"github.com/realmstream/realmstream/services/world/internal/ownership"
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
	ajs     jetstream.JetStream // the zones' tick records: a connection of their own (zone.Config.AppendJS)
	snaps   jetstream.KeyValue
	chunks  *snapstore.Store // snapshots of any size over snaps (large ones chunked in an object store)
	players jetstream.KeyValue
	rc      redis.UniversalClient
	ctrl    *ownership.Controller // which zones this instance runs

	hooks testHooks
}

// testHooks let in-package tests simulate pauses; zero in production.
type testHooks struct {
	wrapStore    func(lock.Store) lock.Store
	beforeAppend func(zone, eventID string) error
	paused       *atomic.Bool // controller and membership heartbeats stop (SIGSTOP-like)
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
	s := &Service{cfg: cfg, log: log.With("instance", cfg.InstanceID), ops: opsserver.New(), rules: rc, ready: make(chan struct{})}
	s.ctrl = ownership.New(ownership.Config{Instance: cfg.InstanceID, Zones: cfg.Map.Zones(), LeaseTTL: cfg.LeaseTTL, MemberTTL: cfg.memberTTL(),
		PublishTimeout: cfg.PublishTimeout, Paused: s.paused}, s.log)
	s.zm = zone.NewMetrics(s.ops.Registry)
	s.figs = newFigures(s.ops.Registry)
	s.lm = lock.NewMetrics("realm_world_lock", s.ops.Registry)
	newGauge(s.ops.Registry, "realm_world_zones_owned", "Zones owned by this instance.", func() float64 {
		return float64(s.ctrl.Running())
	})
	newGauge(s.ops.Registry, "realm_world_members", "Live world instances seen by this instance.", func() float64 {
		return float64(len(s.ctrl.LiveMembers()))
	})
	newGauge(s.ops.Registry, "realm_world_eligible", "1 while this instance is in the membership (0: its lock store does not answer).", func() float64 {
		if !s.ctrl.Eligible() {
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
func (s *Service) Owned() map[string]ZoneStatus { return s.ctrl.Owned() }

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
	anc, err := svcmain.Connect("world-append", &s.cfg.Common, s.log)
	if err != nil {
		return err
	}
	defer anc.Close()
	if s.ajs, err = jetstream.New(anc); err != nil {
		return fmt.Errorf("world: jetstream: %w", err)
	}
	if err := s.cfg.EnsureStreams(ctx, s.js); err != nil {
		return fmt.Errorf("world: %w", err)
	}
	replicas := max(s.cfg.Streams.Replicas, 1)
	// File storage: a memory bucket would vanish with a NATS restart.
	membersCfg := jetstream.KeyValueConfig{Bucket: BucketMembers, Description: "live world instances",
		TTL: s.cfg.memberTTL(), History: 1, Storage: jetstream.FileStorage, Replicas: replicas}
	members, err := wire.EnsureKeyValue(ctx, s.js, membersCfg)
	if err != nil {
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
	// The members bucket is made again if it disappears (e.g. a NATS
	// server restarted without its store).
	recreate := func(ctx context.Context) error { _, err := wire.EnsureKeyValue(ctx, s.js, membersCfg); return err }
	if err := s.ctrl.Open(store, lock.Options{Metrics: s.lm}, members, recreate, s.runZone); err != nil {
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
	go func() { defer wg.Done(); s.ctrl.Membership(bg, watchReady) }()
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
		s.ctrl.Rebalance(ctx)
		if !opsReady {
			if missing := s.ctrl.Unclaimed(); len(missing) == 0 || time.Now().After(readyBy) {
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
		s.ctrl.Stop(zone.ErrCrash)
		s.ctrl.Wait(time.Minute)
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
	_ = s.ctrl.Leave(sdCtx)
	s.ctrl.Stop(context.Canceled)
	if !s.ctrl.Wait(s.cfg.ShutdownTimeout) {
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
	return store, nil
}

func (s *Service) paused() bool { return s.hooks.paused != nil && s.hooks.paused.Load() }

// runZone runs zone z under lease with this instance's zone config
// (ownership.RunZone).
func (s *Service) runZone(ctx context.Context, z string, lease *lock.Lease, onStatus func(zone.Status)) error {
	return zone.Run(ctx, zone.Config{
		Zone: z, Instance: s.cfg.InstanceID, NC: s.nc, JS: s.js, AppendJS: s.ajs, Snapshots: s.snaps, SnapStore: s.chunks, Below: history.StoreSource{NC: s.nc}, Players: s.players, Rules: s.rules, Lease: lease,
		Tick: s.cfg.Tick, SnapshotEvery: s.cfg.SnapshotEvery, SnapshotInterval: s.cfg.SnapshotInterval, AckWait: s.cfg.AckWait,
		MaxBatch: s.cfg.MaxBatch, PublishTimeout: s.cfg.PublishTimeout, DisconnectGrace: s.cfg.DisconnectGrace, UpdatesPerCell: s.cfg.UpdateShape == "cell", Log: s.log, Metrics: s.zm,
		OnStatus:     onStatus,
		BeforeAppend: s.hooks.beforeAppend,
	})
}

func newGauge(reg prometheus.Registerer, name, help string, f func() float64) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

func (s *Service) heartbeats(ctx context.Context) {
	svcmain.Heartbeats(ctx, s.cfg.Heartbeat, func() { s.publishHeartbeat(true, false) })
}

func (s *Service) publishHeartbeat(ready, stopping bool) {
	hb := &schema.Heartbeat{Service: "world", InstanceId: s.cfg.InstanceID, SentAtNs: time.Now().UnixNano(), Ready: ready && !stopping && s.ctrl.Eligible(),
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

package persist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/realmstream/realmstream/libs/opsserver"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/accounts"
	"github.com/realmstream/realmstream/services/persist/internal/dbmon"
	"github.com/realmstream/realmstream/services/persist/internal/pebblestore"
	"github.com/realmstream/realmstream/services/persist/internal/pgstore"
	"github.com/realmstream/realmstream/services/persist/internal/pipeline"
	"github.com/realmstream/realmstream/services/persist/internal/query"
	"github.com/realmstream/realmstream/services/persist/internal/shardmap"
	"github.com/realmstream/realmstream/services/persist/internal/store"
)

// Service is a running persist instance.
type Service struct {
	cfg   Config
	log   *slog.Logger
	ready chan struct{}
	ops   *opsserver.Server

	mu    sync.Mutex
	pipe  *pipeline.Pipeline
	pg    *pgstore.Store
	pb    *pebblestore.Store
	mon   *dbmon.Monitor
	start time.Time
}

// New validates cfg and returns a service; nothing is started until Run.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{cfg: cfg, log: log, ready: make(chan struct{}), ops: opsserver.New()}, nil
}

// Ready is closed when persist consumes events and answers queries.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// HTTPAddr is the bound ops address (after Ready).
func (s *Service) HTTPAddr() string { return s.ops.Addr() }

// Backend is "postgres" or "pebble".
func (s *Service) Backend() string {
	if len(s.cfg.PGURLs) > 0 {
		return "postgres"
	}
	return "pebble"
}

// EventsStored is how many event rows this instance stored (redeliveries
// not counted).
func (s *Service) EventsStored() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pipe == nil {
		return 0
	}
	return s.pipe.Stats.Inserted.Load()
}

// Run starts everything and blocks until ctx is cancelled, then drains
// (the batch in flight is finished and acked within ShutdownTimeout).
func (s *Service) Run(ctx context.Context) error {
	s.start = time.Now()
	nc, err := svcmain.Connect("persist", &s.cfg.Common, s.log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := s.cfg.EnsureStreams(ctx, js); err != nil {
		return err
	}
	if err := s.ops.Listen(s.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("persist: ops server %s: %w", s.cfg.HTTPAddr, err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.ops.Shutdown(sctx)
	}()

	var st store.Store
	var accts accounts.Store // the reference login's accounts, beside the events
	var sources func() []dbmon.Source
	var partman func(context.Context)
	var watchMap func(context.Context)
	if len(s.cfg.PGURLs) > 0 {
		pg, err := s.openPostgres(ctx, js)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while waiting for a shard at start
			}
			return err
		}
		defer pg.Close()
		st = pg
		if dbs := pg.DBs(); len(dbs) > 0 {
			// Accounts live in the first database by name (see internal/accounts).
			if accts, err = accounts.NewPostgres(ctx, dbs[0].Pool); err != nil {
				return err
			}
		}
		s.mu.Lock()
		s.pg = pg
		s.mu.Unlock()
		sources = func() []dbmon.Source {
			var out []dbmon.Source
			for _, d := range pg.DBs() {
				out = append(out, &dbmon.PG{DB: d, MapVersion: func() (uint64, int) {
					m := pg.Map()
					return m.Version, len(m.Owned(d.Name))
				}})
			}
			return out
		}
		partman = func(ctx context.Context) { s.partitionAll(ctx, pg) }
		watchMap = func(ctx context.Context) {
			kv, err := shardmap.Open(ctx, js, s.cfg.ShardMapBucket, s.cfg.Streams.Replicas)
			if err != nil {
				s.log.Error("shard map watch", "err", err)
				return
			}
			_ = kv.Watch(ctx, func(m shard.Map) {
				if m.Version != pg.Map().Version {
					if err := pg.Reload(ctx); err != nil {
						s.log.Warn("shard map reload failed", "err", err)
					}
				}
			})
		}
	} else {
		if err := os.MkdirAll(s.cfg.PebbleDir, 0o755); err != nil {
			return fmt.Errorf("persist: pebble dir: %w", err)
		}
		pb, err := pebblestore.Open(s.cfg.PebbleDir)
		if err != nil {
			return err
		}
		defer pb.Close()
		st = pb
		accts = accounts.NewPebble(pb.DB())
		s.mu.Lock()
		s.pb = pb
		s.mu.Unlock()
		src := []dbmon.Source{&dbmon.Pebble{S: pb}}
		sources = func() []dbmon.Source { return src }
		s.log.Info("no Postgres configured: storing in Pebble", "dir", s.cfg.PebbleDir)
	}

	pcfg := pipeline.Config{BatchSize: s.cfg.BatchSize, BatchWait: s.cfg.BatchWait, AckWait: s.cfg.AckWait,
		WriteTimeout: s.cfg.ShutdownTimeout, BeforeAck: s.cfg.testBeforeAck, StoreName: "pebble"}
	if len(s.cfg.PGURLs) > 0 {
		pcfg.StoreName = "postgres"
	}
	pipe, err := pipeline.New(ctx, js, pcfg, st, s.log)
	if err != nil {
		return err
	}
	mon := dbmon.New(js, s.cfg.StatsInterval, s.cfg.InstanceID, sources, pipe.Lag, s.log)
	s.mu.Lock()
	s.pipe, s.mon = pipe, mon
	s.mu.Unlock()
	s.registerMetrics(pipe, mon, sources)

	subs, err := query.Serve(nc, st, ackFloor(js, pipe), s.cfg.QueryTimeout, s.log)
	if err != nil {
		return err
	}
	if accts != nil {
		sub, err := accounts.Serve(nc, accts, s.cfg.QueryTimeout, s.log)
		if err != nil {
			return err
		}
		subs = append(subs, sub)
	}
	s.ops.AddCheck("nats", func(context.Context) error {
		if !nc.IsConnected() {
			return errors.New("not connected to NATS")
		}
		return nil
	})

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	goLoop := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(bg) }()
	}
	goLoop(func(c context.Context) { _ = mon.Run(c) })
	goLoop(func(c context.Context) { s.heartbeats(c, nc) })
	if watchMap != nil {
		goLoop(watchMap)
	}
	if partman != nil {
		goLoop(func(c context.Context) {
			t := time.NewTicker(s.cfg.PartitionInterval)
			defer t.Stop()
			for {
				select {
				case <-c.Done():
					return
				case <-t.C:
					partman(c)
				}
			}
		})
	}
	pipeErr := make(chan error, 1)
	go func() { pipeErr <- pipe.Run(ctx) }()

	s.ops.SetReady(true)
	close(s.ready)
	s.log.Info("persist ready", "backend", s.Backend(), "http", s.ops.Addr(), "batch_size", s.cfg.BatchSize)

	var runErr error
	select {
	case <-ctx.Done():
		runErr = <-pipeErr
	case runErr = <-pipeErr:
	}
	s.ops.SetReady(false)
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
	stopBG()
	wg.Wait()
	_ = nc.Flush()
	s.log.Info("persist stopped", "events_stored", pipe.Stats.Inserted.Load())
	return runErr
}

// openPostgres bootstraps or loads the shard map, migrates every shard,
// runs partition maintenance once and records ownership.
func (s *Service) openPostgres(ctx context.Context, js jetstream.JetStream) (*pgstore.Store, error) {
	kv, err := shardmap.Open(ctx, js, s.cfg.ShardMapBucket, s.cfg.Streams.Replicas)
	if err != nil {
		return nil, err
	}
	dbs, _ := s.cfg.shardDBs()
	seed, err := shard.Even(dbs)
	if err != nil {
		return nil, err
	}
	m, _, err := kv.Bootstrap(ctx, seed)
	if err != nil {
		return nil, err
	}
	for _, d := range dbs {
		if m.URLOf(d.Name) == "" {
			s.log.Warn("--pg-urls names a database that is not in the shard map; add it with `persist shards add-db`", "shard", d.Name)
		}
	}
	pg, err := pgstore.Open(ctx, kv, pgstore.Options{MaxConns: int32(s.cfg.PoolSize)}, s.log)
	if err != nil {
		return nil, err
	}
	for _, d := range pg.DBs() {
		for attempt := 1; ; attempt++ {
			err := pgstore.Migrate(ctx, d.Pool, s.log)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				pg.Close()
				return nil, err
			}
			s.log.Warn("shard not migrated yet (is it up?); retrying", "shard", d.Name, "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				pg.Close()
				return nil, ctx.Err()
			case <-time.After(min(time.Duration(attempt)*500*time.Millisecond, 5*time.Second)):
			}
		}
	}
	s.partitionAll(ctx, pg)
	if err := pg.SeedOwnership(ctx); err != nil {
		pg.Close()
		return nil, err
	}
	return pg, nil
}

func (s *Service) partman() *pgstore.Partman {
	return &pgstore.Partman{Premake: s.cfg.PremakeDays, Retention: s.cfg.RetentionDays, Archive: s.cfg.RetentionArchive, Log: s.log}
}

// partitionAll runs maintenance on every shard; a failing shard is logged
// and retried next period.
func (s *Service) partitionAll(ctx context.Context, pg *pgstore.Store) {
	for _, d := range pg.DBs() {
		res, err := s.partman().Run(ctx, d.Pool)
		if err != nil {
			s.log.Error("partition maintenance failed", "shard", d.Name, "err", err)
			continue
		}
		if !res.Leader {
			s.log.Debug("partition maintenance: another replica holds the lock", "shard", d.Name)
		}
	}
}

func (s *Service) heartbeats(ctx context.Context, nc *nats.Conn) {
	svcmain.Heartbeats(ctx, s.cfg.Heartbeat, func() {
		_ = svcmain.PublishHeartbeat(nc, &schema.Heartbeat{Service: "persist", InstanceId: s.cfg.InstanceID, SentAtNs: time.Now().UnixNano(),
			Ready: true, HttpAddr: s.ops.Addr(), Figures: map[string]float64{
				"events_stored": float64(s.EventsStored()),
				"uptime_s":      time.Since(s.start).Seconds(),
			}})
	})
}

func (s *Service) registerMetrics(p *pipeline.Pipeline, mon *dbmon.Monitor, sources func() []dbmon.Source) {
	reg := s.ops.Registry
	counter := func(name, help string, f func() int64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) }))
	}
	counter("persist_events_stored_total", "event rows stored (redeliveries not counted)", p.Stats.Inserted.Load)
	counter("persist_events_skipped_total", "redelivered events found already stored", p.Stats.Skipped.Load)
	counter("persist_batches_total", "batches written and acked", p.Stats.Batches.Load)
	counter("persist_write_retries_total", "failed batch writes that were retried", p.Stats.Retries.Load)
	counter("persist_messages_acked_total", "EVT messages (tick records or legacy events) stored and acked", p.Stats.Messages.Load)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "persist_messages_carried",
		Help: "EVT messages held back because a shard they touch failed (the others keep being stored)"}, func() float64 {
		return float64(p.Stats.Carried.Load())
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "persist_default_partition_rows",
		Help: "rows in events_default over all shards (alarm when > 0), from the last DB stats sample"}, func() float64 {
		var n int64
		for _, src := range sources() {
			if st := mon.Last(src.Name()); st != nil {
				n += st.DefaultPartitionRows
			}
		}
		return float64(n)
	}))
}

// ackFloor reports the durable consumer's ack floor (every EVT message up
// to it is stored: acks follow the commit) and the stream's last sequence.
func ackFloor(js jetstream.JetStream, pipe *pipeline.Pipeline) query.FloorFunc {
	return func(ctx context.Context) (query.AckFloorReply, error) {
		info, err := pipe.Consumer().Info(ctx)
		if err != nil {
			return query.AckFloorReply{}, fmt.Errorf("persist: consumer info: %w", err)
		}
		out := query.AckFloorReply{AckFloor: info.AckFloor.Stream, NumPending: info.NumPending, NumAckPending: info.NumAckPending}
		if st, err := js.Stream(ctx, wire.StreamEvents); err == nil {
			if si, err := st.Info(ctx); err == nil {
				out.StreamLastSeq = si.State.LastSeq
			}
		}
		return out, nil
	}
}

func (s *Service) pipeRetries() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pipe == nil {
		return 0
	}
	return s.pipe.Stats.Retries.Load()
}

func (s *Service) pipeSkipped() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pipe == nil {
		return 0
	}
	return s.pipe.Stats.Skipped.Load()
}

func (s *Service) pipeKeepAlives() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pipe == nil {
		return 0
	}
	return s.pipe.Stats.KeepAlives.Load()
}

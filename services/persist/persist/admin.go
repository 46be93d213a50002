package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/services/persist/internal/pgstore"
	"github.com/realmstream/realmstream/services/persist/internal/shardmap"
)

// Admin is the shard administration behind `persist shards ...`: it works on
// the shard map in NATS KV and the databases it names, while persist
// replicas keep running.
type Admin struct {
	cfg Config
	log *slog.Logger
	nc  *nats.Conn
	kv  *shardmap.KV
	pg  *pgstore.Store
}

// OpenAdmin connects to NATS and the shard map (which must exist: start
// persist with --pg-urls once first).
func OpenAdmin(ctx context.Context, cfg Config, log *slog.Logger) (*Admin, error) {
	nc, err := cfg.NATS.Connect(cfg.NATSURL, nats.Name("persist-admin"))
	if err != nil {
		return nil, fmt.Errorf("persist admin: connect %s: %w", cfg.NATSURL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	kv, err := shardmap.Open(ctx, js, cfg.ShardMapBucket, 0)
	if err != nil {
		nc.Close()
		return nil, err
	}
	pg, err := pgstore.Open(ctx, kv, pgstore.Options{MaxConns: 4}, log)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Admin{cfg: cfg, log: log, nc: nc, kv: kv, pg: pg}, nil
}

// Close releases connections.
func (a *Admin) Close() {
	a.pg.Close()
	a.nc.Close()
}

// Map returns the current shard map.
func (a *Admin) Map(ctx context.Context) (shard.Map, error) {
	m, _, err := a.kv.Load(ctx)
	return m, err
}

// Show writes the map summary (version, databases, logical shards per database).
func (a *Admin) Show(ctx context.Context, w io.Writer) error {
	m, err := a.Map(ctx)
	if err != nil {
		return err
	}
	counts := m.Counts()
	fmt.Fprintf(w, "shard map version %d, %d logical shards\n", m.Version, shard.Logical)
	for _, d := range m.DBs {
		fmt.Fprintf(w, "  %-10s %4d logical shards  %s\n", d.Name, counts[d.Name], redact(d.URL))
	}
	return nil
}

func redact(u string) string {
	cfg, err := pgstore.ParseURL(u)
	if err != nil {
		return "(unparseable url)"
	}
	return cfg
}

// AddDB migrates a new database, adds it to the map and, if rebalance,
// moves logical shards to it online until the map is balanced. Each move is
// reported on w as one JSON line.
func (a *Admin) AddDB(ctx context.Context, name, url string, rebalance bool, w io.Writer) error {
	pm := &pgstore.Partman{Premake: a.cfg.PremakeDays, Retention: a.cfg.RetentionDays, Archive: a.cfg.RetentionArchive, Log: a.log}
	m, err := a.pg.AddDB(ctx, a.kv, shard.DB{Name: name, URL: url}, pm)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "database %s added, shard map version %d\n", name, m.Version)
	if !rebalance {
		return nil
	}
	return a.Rebalance(ctx, w)
}

// Rebalance moves logical shards until every database owns an equal share.
func (a *Admin) Rebalance(ctx context.Context, w io.Writer) error {
	enc := json.NewEncoder(w)
	return a.pg.Rebalance(ctx, a.kv, func(r pgstore.MoveReport) { _ = enc.Encode(r) })
}

// Move moves one logical shard to the named database online.
func (a *Admin) Move(ctx context.Context, logical int, to string, w io.Writer) error {
	rep, err := a.pg.MoveLogical(ctx, a.kv, logical, to)
	if err != nil {
		return err
	}
	return json.NewEncoder(w).Encode(rep)
}

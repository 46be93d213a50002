// Package persist is the persist service: it turns the EVT event log into
// the long-term record (date-partitioned, hash-sharded Postgres, or Pebble on
// one machine), projects read models, answers queries over NATS and watches
// the databases it writes to (DB stats events on stats.db.<shard>).
//
// Composition (the stack module does exactly this):
//
//	cfg := persist.DefaultConfig()
//	cfg.NATSURL = url
//	cfg.PGURLs = nil                 // no Postgres: Pebble
//	cfg.PebbleDir = "/data/pebble"
//	svc, err := persist.New(cfg, log)
//	go svc.Run(ctx)                  // blocks; drains on cancel
//	<-svc.Ready()
package persist

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/pipeline"
	"github.com/realmstream/realmstream/services/persist/internal/shardmap"
	"github.com/realmstream/realmstream/services/persist/internal/store"
)

// Config configures persist. Zero values are not defaults: start from
// DefaultConfig.
type Config struct {
	// Common is the block every service has (svcmain.Common): --nats-url,
	// NATS credentials, --http-addr (ops, default 127.0.0.1:8082),
	// --instance-id, logs, --shutdown-timeout (bound on finishing the batch in
	// flight), --otlp-endpoint, --heartbeat, --stream-replicas (also the
	// shard map bucket's replicas), --create-streams.
	svcmain.Common

	// PGURLs are the physical Postgres shards, each "name=url" or just "url"
	// (named pg0, pg1, ... by position). They seed the shard map the first
	// time; afterwards the map in NATS KV is authoritative (add databases
	// with `persist shards add-db`). Empty = Pebble. Flag --pg-urls, comma list.
	PGURLs []string
	// PebbleDir is the Pebble directory when PGURLs is empty. Default "data/persist".
	PebbleDir string
	// ShardMapBucket is the NATS KV bucket of the shard map. Default persist_shardmap.
	ShardMapBucket string
	// PoolSize is the max connections per shard pool. Default 8.
	PoolSize int

	PremakeDays       int           // daily partitions created ahead of today, default 7
	RetentionDays     int           // drop (or archive) days older than this; 0 = keep forever (default)
	RetentionArchive  bool          // move expired partitions to schema persist_archive instead of dropping
	PartitionInterval time.Duration // partition maintenance period, default 1h (and once at start)

	BatchSize int           // events per batch, default 1000
	BatchWait time.Duration // max wait to fill a batch, default 100ms
	AckWait   time.Duration // JetStream redelivery timeout of unacked events, default 5s (held batches are kept alive)

	StatsInterval time.Duration // DB stats sampling period, default 10s
	QueryTimeout  time.Duration // per-request bound of the query API, default 5s

	// testBeforeAck is a test hook (see pipeline.Config.BeforeAck).
	testBeforeAck func([]store.Record) error
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Common:            svcmain.DefaultCommon("persist", 8082),
		PebbleDir:         "data/persist",
		ShardMapBucket:    shardmap.DefaultBucket,
		PoolSize:          8,
		PremakeDays:       7,
		PartitionInterval: time.Hour,
		BatchSize:         1000,
		BatchWait:         100 * time.Millisecond,
		AckWait:           pipeline.DefaultAckWait,
		StatsInterval:     10 * time.Second,
		QueryTimeout:      5 * time.Second,
	}
}

// csv is a flag.Value for a comma-separated list.
type csv struct{ p *[]string }

func (c csv) String() string {
	if c.p == nil {
		return ""
	}
	return strings.Join(*c.p, ",")
}

func (c csv) Set(s string) error {
	*c.p = splitList(s)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// RegisterFlags binds every field to --flag / REALM_FLAG.
func (c *Config) RegisterFlags(s *envflag.Set) {
	c.Common.RegisterFlags(s)
	pg := strings.Join(c.PGURLs, ",")
	s.String(&pg, "pg-urls", pg, "comma list of Postgres shards, each name=url or url (named pg0, pg1, ...); they seed the shard map; empty = Pebble")
	c.PGURLs = splitList(pg)
	s.FS.Lookup("pg-urls").Value = csv{&c.PGURLs}
	s.String(&c.PebbleDir, "pebble-dir", c.PebbleDir, "Pebble directory (used when --pg-urls is empty)")
	s.String(&c.ShardMapBucket, "shard-map-bucket", c.ShardMapBucket, "NATS KV bucket holding the versioned shard map")
	s.Int(&c.PoolSize, "pool-size", c.PoolSize, "max connections per Postgres shard")
	s.Int(&c.PremakeDays, "premake-days", c.PremakeDays, "daily partitions kept ahead of today")
	s.Int(&c.RetentionDays, "retention-days", c.RetentionDays, "drop (or archive) daily partitions older than this many days; 0 = keep forever")
	s.Bool(&c.RetentionArchive, "retention-archive", c.RetentionArchive, "move expired partitions to schema persist_archive instead of dropping them")
	s.Duration(&c.PartitionInterval, "partition-interval", c.PartitionInterval, "partition maintenance period (also runs at start)")
	s.Int(&c.BatchSize, "batch-size", c.BatchSize, "max events per write batch")
	s.Duration(&c.BatchWait, "batch-wait", c.BatchWait, "max wait to fill a batch")
	s.Duration(&c.AckWait, "ack-wait", c.AckWait, "JetStream redelivery timeout of unacknowledged events: how long the batch of a replica that died waits before another replica gets it (batches being written are kept alive with in-progress acks)")
	s.Duration(&c.StatsInterval, "stats-interval", c.StatsInterval, "DB stats sampling period (stats.db.<shard>)")
	s.Duration(&c.QueryTimeout, "query-timeout", c.QueryTimeout, "bound on answering one query request")
}

// Validate reports the first configuration error in plain words.
func (c Config) Validate() error {
	var errs []error
	if err := c.Common.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.PGURLs) == 0 && c.PebbleDir == "" {
		errs = append(errs, errors.New("--pebble-dir is required when --pg-urls is empty"))
	}
	if _, err := c.shardDBs(); err != nil {
		errs = append(errs, err)
	}
	if c.ShardMapBucket == "" {
		errs = append(errs, errors.New("--shard-map-bucket is required"))
	}
	if c.PoolSize < 1 {
		errs = append(errs, fmt.Errorf("--pool-size %d: want >= 1", c.PoolSize))
	}
	if c.PremakeDays < 1 || c.PremakeDays > 366 {
		errs = append(errs, fmt.Errorf("--premake-days %d: want 1..366", c.PremakeDays))
	}
	if c.RetentionDays < 0 {
		errs = append(errs, fmt.Errorf("--retention-days %d: want >= 0 (0 keeps forever)", c.RetentionDays))
	}
	if c.PartitionInterval < time.Second {
		errs = append(errs, fmt.Errorf("--partition-interval %v: want >= 1s", c.PartitionInterval))
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, fmt.Errorf("--batch-size %d: want 1..100000", c.BatchSize))
	}
	if c.BatchWait <= 0 {
		errs = append(errs, fmt.Errorf("--batch-wait %v: want > 0", c.BatchWait))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("--ack-wait %v: want >= 1s", c.AckWait))
	}
	if c.StatsInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--stats-interval %v: want >= 100ms", c.StatsInterval))
	}
	if c.QueryTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--query-timeout %v: want > 0", c.QueryTimeout))
	}
	return errors.Join(errs...)
}

// shardDBs parses PGURLs.
func (c Config) shardDBs() ([]shard.DB, error) {
	var out []shard.DB
	seen := map[string]bool{}
	for i, u := range c.PGURLs {
		name := "pg" + strconv.Itoa(i)
		if k, v, ok := strings.Cut(u, "="); ok && !strings.Contains(k, "://") && !strings.Contains(k, " ") {
			name, u = k, v
		}
		if !wire.ValidToken(name) {
			return nil, fmt.Errorf("--pg-urls: shard name %q: want [A-Za-z0-9_-]{1,64}", name)
		}
		if seen[name] {
			return nil, fmt.Errorf("--pg-urls: shard name %q twice", name)
		}
		if !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
			return nil, fmt.Errorf("--pg-urls: %q: want postgres://...", u)
		}
		seen[name] = true
		out = append(out, shard.DB{Name: name, URL: u})
	}
	return out, nil
}

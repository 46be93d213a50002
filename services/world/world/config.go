package world

import (
	"errors"
	"fmt"
	"time"

	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/svcmain"
	"github.com/realmstream/realmstream/libs/tlsfiles"
	"github.com/realmstream/realmstream/libs/worldmap"
)

// Config configures a world instance. Every field with a flag is filled by
// RegisterFlags (flag --x-y, env REALM_X_Y); the rest are for embedding.
type Config struct {
	// Common is the block every service has (svcmain.Common): --nats-url,
	// NATS credentials, --http-addr (ops, default 127.0.0.1:8081),
	// --instance-id (also the lease owner), logs, --shutdown-timeout (bound on
	// the graceful handover), --otlp-endpoint, --heartbeat, --stream-replicas,
	// --create-streams. Streams also carries the EVT guard (--event-max-*).
	svcmain.Common

	// Lock store. Empty RedisAddr and RedisSentinelMaster = the in-process lock
	// table (one world instance per NATS system: the embedded stack).
	RedisAddr           string         // --redis-addr, host:port of a single Redis; default "" (in-process table)
	RedisSentinelMaster string         // --redis-sentinel-master, Sentinel primary name (use with --redis-sentinel-addrs)
	RedisSentinelAddrs  string         // --redis-sentinel-addrs, comma-separated Sentinel host:port list
	RedisPassword       string         // --redis-password
	RedisSentinelPass   string         // --redis-sentinel-password, AUTH of the Sentinels (Bitnami: the Redis password)
	RedisTLS            tlsfiles.Files // --redis-tls, --redis-tls-ca/-cert/-key/-server-name (libs/tlsfiles): Redis and Sentinels
	RedisDB             int            // --redis-db, default 0
	RedisPoolSize       int            // --redis-pool-size, max connections, default 16
	RedisMinIdle        int            // --redis-min-idle, idle connections kept open, default 2
	RedisDialTimeout    time.Duration  // --redis-dial-timeout, default 2s
	RedisReadTimeout    time.Duration  // --redis-read-timeout, default 500ms
	RedisWriteTimeout   time.Duration  // --redis-write-timeout, default 500ms
	RedisPoolTimeout    time.Duration  // --redis-pool-timeout, wait for a free connection, default 1s
	RedisMaxRetries     int            // --redis-max-retries, default 1
	LockPrefix          string         // --lock-prefix, Redis key prefix of zone leases, default realm:lock:

	LeaseTTL         time.Duration // --lease-ttl, zone lease TTL (renewed every TTL/3), default 5s
	MemberTTL        time.Duration // --member-ttl, an instance without heartbeat for this long is gone; default max(1s, lease TTL/4), at most the lease TTL
	Rebalance        time.Duration // --rebalance, period of the ownership controller, default 250ms
	Tick             time.Duration // --tick, simulation period, default 50ms (20 Hz)
	SnapshotEvery    int           // --snapshot-every, events between snapshots, default 1000
	SnapshotInterval time.Duration // --snapshot-interval, max time between snapshots of a changing zone, default 30s
	AckWait          time.Duration // --ack-wait, redelivery delay of unacked commands, default 5s
	MaxBatch         int           // --max-batch, commands per zone per tick, default 256
	PublishTimeout   time.Duration // --publish-timeout, one JetStream publish attempt, default 2s
	DisconnectGrace  time.Duration // --disconnect-grace, a disconnected player's body stays this long for a resume, default 15s
	UpdateShape      string        // --update-shape: "tick" (one ZoneTick per zone tick on upd.<zone>) or "cell" (one ZoneUpdate per cell), default "tick"

	// Trimming of the zone logs in JetStream (the store keeps the history):
	// below min(latest snapshot, persist's acknowledged floor, minimum tail).
	TrimInterval    time.Duration // --trim-interval, 0 disables trimming; default 30s
	TrimKeepAge     time.Duration // --trim-keep-age, messages younger than this stay; default 10m
	TrimKeepRecords int           // --trim-keep-records, at least this many messages per zone stay; default 1000

	// Map is the world layout. Default worldmap.Default().
	Map worldmap.Map
	// LockStore, when set, is used instead of Redis or a private table (e.g.
	// one lock.Table shared by several instances in one process).
	LockStore lock.Store
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Common:            svcmain.DefaultCommon("world", 8081),
		RedisPoolSize:     16,
		RedisMinIdle:      2,
		RedisDialTimeout:  2 * time.Second,
		RedisReadTimeout:  500 * time.Millisecond,
		RedisWriteTimeout: 500 * time.Millisecond,
		RedisPoolTimeout:  time.Second,
		RedisMaxRetries:   1,
		LockPrefix:        "realm:lock:",
		LeaseTTL:          5 * time.Second,
		Rebalance:         250 * time.Millisecond,
		Tick:              50 * time.Millisecond,
		SnapshotEvery:     1000,
		SnapshotInterval:  30 * time.Second,
		AckWait:           5 * time.Second,
		MaxBatch:          256,
		PublishTimeout:    2 * time.Second,
		DisconnectGrace:   15 * time.Second,
		UpdateShape:       "tick",
		TrimInterval:      30 * time.Second,
		TrimKeepAge:       10 * time.Minute,
		TrimKeepRecords:   1000,
		Map:               worldmap.Default(),
	}
}

// RegisterFlags binds every flag to c; the current values of c are the defaults.
func (c *Config) RegisterFlags(s *envflag.Set) {
	c.Common.RegisterFlags(s)
	s.String(&c.RedisAddr, "redis-addr", c.RedisAddr, "Redis host:port for zone leases; empty (and no sentinel) = in-process lock table, one instance only")
	s.String(&c.RedisSentinelMaster, "redis-sentinel-master", c.RedisSentinelMaster, "Sentinel primary name (go-redis failover client)")
	s.String(&c.RedisSentinelAddrs, "redis-sentinel-addrs", c.RedisSentinelAddrs, "comma-separated Sentinel host:port addresses")
	s.String(&c.RedisPassword, "redis-password", c.RedisPassword, "Redis password")
	s.String(&c.RedisSentinelPass, "redis-sentinel-password", c.RedisSentinelPass, "password of the Sentinels (requirepass in sentinel.conf); empty = Sentinels without AUTH")
	c.RedisTLS.Register(s, "redis", "Redis and its Sentinels")
	s.Int(&c.RedisDB, "redis-db", c.RedisDB, "Redis database number")
	s.Int(&c.RedisPoolSize, "redis-pool-size", c.RedisPoolSize, "Redis connection pool size")
	s.Int(&c.RedisMinIdle, "redis-min-idle", c.RedisMinIdle, "idle Redis connections kept open")
	s.Duration(&c.RedisDialTimeout, "redis-dial-timeout", c.RedisDialTimeout, "Redis dial timeout")
	s.Duration(&c.RedisReadTimeout, "redis-read-timeout", c.RedisReadTimeout, "Redis read timeout (keep well below the lease TTL)")
	s.Duration(&c.RedisWriteTimeout, "redis-write-timeout", c.RedisWriteTimeout, "Redis write timeout")
	s.Duration(&c.RedisPoolTimeout, "redis-pool-timeout", c.RedisPoolTimeout, "wait for a free pooled Redis connection")
	s.Int(&c.RedisMaxRetries, "redis-max-retries", c.RedisMaxRetries, "retries of a failed Redis command (-1 disables)")
	s.String(&c.LockPrefix, "lock-prefix", c.LockPrefix, "Redis key prefix of zone leases")
	s.Duration(&c.LeaseTTL, "lease-ttl", c.LeaseTTL, "zone lease TTL; renewed every TTL/3; a crashed owner's zones move after about this long")
	s.Duration(&c.MemberTTL, "member-ttl", c.MemberTTL, "an instance whose membership heartbeat is older than this is gone, and its zone leases are taken over at once (0 = max(1s, lease TTL/4))")
	s.Duration(&c.Rebalance, "rebalance", c.Rebalance, "period of the ownership controller (rendezvous hashing, acquire/release)")
	s.Duration(&c.Tick, "tick", c.Tick, "simulation tick period (50ms = 20 Hz)")
	s.Int(&c.SnapshotEvery, "snapshot-every", c.SnapshotEvery, "events between zone snapshots")
	s.Duration(&c.SnapshotInterval, "snapshot-interval", c.SnapshotInterval, "longest time between snapshots of a changing zone")
	s.Duration(&c.AckWait, "ack-wait", c.AckWait, "redelivery delay of fetched but unacknowledged commands")
	s.Int(&c.MaxBatch, "max-batch", c.MaxBatch, "commands taken per zone per tick")
	s.Duration(&c.PublishTimeout, "publish-timeout", c.PublishTimeout, "wait for one JetStream PubAck")
	s.Duration(&c.DisconnectGrace, "disconnect-grace", c.DisconnectGrace, "how long the body of a player whose connection closed without Leave stays for a resume")
	s.String(&c.UpdateShape, "update-shape", c.UpdateShape, "how the AOI view goes to the gateways: tick (one message per zone tick on upd.<zone>, carrying the changed cells) or cell (one message per cell on upd.<zone>.<cell>, for gateways older than client protocol 3; upgrade the gateways first, then switch)")
	s.Duration(&c.TrimInterval, "trim-interval", c.TrimInterval, "how often owned zone logs are trimmed in JetStream below min(snapshot, persist's floor, minimum tail); 0 = never")
	s.Duration(&c.TrimKeepAge, "trim-keep-age", c.TrimKeepAge, "minimum tail: zone log messages younger than this stay in JetStream")
	s.Int(&c.TrimKeepRecords, "trim-keep-records", c.TrimKeepRecords, "minimum tail: at least this many messages of each zone log stay in JetStream")
	s.Duration(&c.Streams.EventMaxAge, "event-max-age", c.Streams.EventMaxAge, "last guard of the EVT stream: its oldest messages go past this age (0 = leave the stream as it is; trimming acts long before)")
	s.Int64(&c.Streams.EventMaxBytes, "event-max-bytes", c.Streams.EventMaxBytes, "last guard of the EVT stream: its oldest messages go past this size in bytes (0 = leave the stream as it is; trimming acts long before)")
}

// Validate checks the configuration and says what is wrong.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := c.Common.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.RedisSentinelMaster != "" && len(lock.SplitAddrs(c.RedisSentinelAddrs)) == 0 {
		add("--redis-sentinel-master needs --redis-sentinel-addrs")
	}
	if c.RedisSentinelMaster != "" && c.RedisAddr != "" {
		add("set either --redis-addr or --redis-sentinel-master, not both")
	}
	if c.RedisPoolSize < 1 || c.RedisMinIdle < 0 || c.RedisMaxRetries < -1 {
		add("--redis-pool-size must be >= 1, --redis-min-idle >= 0, --redis-max-retries >= -1")
	}
	if err := (lock.Options{TTL: c.LeaseTTL}).Validate(); err != nil {
		add("--lease-ttl: %v", err)
	}
	if c.MemberTTL < 0 {
		add("--member-ttl must not be negative")
	}
	if c.SnapshotEvery < 0 {
		add("--snapshot-every must not be negative")
	}
	if c.TrimInterval < 0 || c.TrimKeepAge < 0 || c.TrimKeepRecords < 0 {
		add("--trim-interval, --trim-keep-age and --trim-keep-records must not be negative")
	}
	if c.MaxBatch < 1 {
		add("--max-batch must be >= 1")
	}
	if c.UpdateShape != "tick" && c.UpdateShape != "cell" {
		add("--update-shape %q: want tick or cell", c.UpdateShape)
	}
	for name, d := range map[string]time.Duration{"--rebalance": c.Rebalance, "--tick": c.Tick,
		"--ack-wait": c.AckWait, "--publish-timeout": c.PublishTimeout, "--snapshot-interval": c.SnapshotInterval,
		"--redis-dial-timeout": c.RedisDialTimeout, "--redis-read-timeout": c.RedisReadTimeout, "--redis-write-timeout": c.RedisWriteTimeout,
		"--redis-pool-timeout": c.RedisPoolTimeout} {
		if d <= 0 {
			add("%s must be > 0", name)
		}
	}
	if c.Tick > 0 && c.Tick > time.Second {
		add("--tick %v: want <= 1s", c.Tick)
	}
	if err := c.Map.Validate(); err != nil {
		add("map: %v", err)
	}
	if err := c.RedisTLS.Validate(); err != nil {
		add("--redis-tls*: %v", err)
	}
	return errors.Join(errs...)
}

func (c *Config) memberTTL() time.Duration {
	if c.MemberTTL > 0 {
		return c.MemberTTL
	}
	// Shorter than the lease, so that a crashed owner is known dead (and its
	// leases taken over, TakeOverDead) well before the leases would expire:
	// 1.25s with the 5s default, never below 1s (a loaded machine must not
	// miss three puts in a row and look dead).
	return min(c.LeaseTTL, max(time.Second, c.LeaseTTL/4))
}

func (c *Config) redisConfig() lock.RedisConfig {
	return lock.RedisConfig{
		Addr: c.RedisAddr, SentinelMaster: c.RedisSentinelMaster, SentinelAddrs: lock.SplitAddrs(c.RedisSentinelAddrs),
		SentinelPassword: c.RedisSentinelPass, TLS: c.RedisTLS,
		Password: c.RedisPassword, DB: c.RedisDB, PoolSize: c.RedisPoolSize, MinIdleConns: c.RedisMinIdle,
		DialTimeout: c.RedisDialTimeout, ReadTimeout: c.RedisReadTimeout, WriteTimeout: c.RedisWriteTimeout,
		PoolTimeout: c.RedisPoolTimeout, MaxRetries: c.RedisMaxRetries,
	}
}

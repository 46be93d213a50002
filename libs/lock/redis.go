package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/realmstream/realmstream/libs/tlsfiles"
)

// Lua scripts. KEYS[1] is the lease key, KEYS[2] the fence counter.
var (
	// acquire: SET NX PX, and only when it succeeded INCR the fence, atomically.
	acquireScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0`)
	// renew: compare the token, then PEXPIRE.
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)
	// release: compare the token, then DEL.
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)
)

// RedisStore is the Redis Store. For lease name N the keys are
// <prefix>{N}:owner (value = token, PX = TTL) and <prefix>{N}:fence (INCR);
// the hash tag keeps both in one slot.
//
// Redis INCR alone is not a safe fence: a restart without persistence or a
// failover resets it. The world therefore never trusts it alone; its fence is
// max(lease fence, last fence in the zone log + 1), checked by JetStream.
type RedisStore struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedisStore returns a store on c with key prefix (default "realm:lock:").
func NewRedisStore(c redis.UniversalClient, prefix string) *RedisStore {
	if prefix == "" {
		prefix = "realm:lock:"
	}
	return &RedisStore{c: c, prefix: prefix}
}

func (s *RedisStore) keys(name string) []string {
	base := s.prefix + "{" + name + "}"
	return []string{base + ":owner", base + ":fence"}
}

// TryAcquire implements Store.
func (s *RedisStore) TryAcquire(ctx context.Context, name, value string, ttl time.Duration) (uint64, error) {
	n, err := acquireScript.Run(ctx, s.c, s.keys(name), value, ttl.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("lock: redis acquire %s: %w", name, err)
	}
	if n == 0 {
		return 0, ErrHeld
	}
	return uint64(n), nil
}

// Renew implements Store.
func (s *RedisStore) Renew(ctx context.Context, name, value string, ttl time.Duration) error {
	n, err := renewScript.Run(ctx, s.c, s.keys(name)[:1], value, ttl.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("lock: redis renew %s: %w", name, err)
	}
	if n == 0 {
		return ErrNotHeld
	}
	return nil
}

// Release implements Store.
func (s *RedisStore) Release(ctx context.Context, name, value string) error {
	n, err := releaseScript.Run(ctx, s.c, s.keys(name)[:1], value).Int64()
	if err != nil {
		return fmt.Errorf("lock: redis release %s: %w", name, err)
	}
	if n == 0 {
		return ErrNotHeld
	}
	return nil
}

// RedisConfig configures the Redis client of the lock store: one server, or a
// Sentinel-managed primary (go-redis failover client) when SentinelMaster is set.
type RedisConfig struct {
	Addr           string   // host:port of a single server
	SentinelMaster string   // name of the primary watched by Sentinel
	SentinelAddrs  []string // Sentinel host:port list
	Password       string   // AUTH of the Redis servers
	// SentinelPassword is the AUTH of the Sentinels themselves (requirepass
	// in sentinel.conf). The Bitnami chart protects its Sentinels with the
	// Redis password by default (auth.sentinel: true): without it every
	// SENTINEL get-master-addr-by-name answers NOAUTH.
	SentinelPassword string
	DB               int
	// TLS to the servers and the Sentinels (CA, client certificate); the
	// zero value is plaintext.
	TLS tlsfiles.Files

	PoolSize     int           // max connections; default 10 per CPU (go-redis)
	MinIdleConns int           // kept open; default 2
	DialTimeout  time.Duration // default 2s
	ReadTimeout  time.Duration // default 500ms: a lease call must answer well inside the TTL
	WriteTimeout time.Duration // default 500ms
	PoolTimeout  time.Duration // wait for a free connection; default 1s
	MaxRetries   int           // default 1 (renewals retry on their own schedule)
}

// Validate checks the configuration.
func (c RedisConfig) Validate() error {
	switch {
	case c.SentinelMaster == "" && c.Addr == "":
		return errors.New("lock: redis: set an address or a sentinel master")
	case c.SentinelMaster != "" && len(c.SentinelAddrs) == 0:
		return errors.New("lock: redis: sentinel master set without sentinel addresses")
	case c.SentinelPassword != "" && c.SentinelMaster == "":
		return errors.New("lock: redis: sentinel password set without a sentinel master")
	case c.PoolSize < 0 || c.MinIdleConns < 0 || c.MaxRetries < -1:
		return errors.New("lock: redis: pool size, min idle and retries must not be negative")
	case c.DialTimeout < 0 || c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.PoolTimeout < 0:
		return errors.New("lock: redis: timeouts must not be negative")
	}
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("lock: redis: %w", err)
	}
	return nil
}

func (c RedisConfig) withDefaults() RedisConfig {
	if c.MinIdleConns == 0 {
		c.MinIdleConns = 2
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 500 * time.Millisecond
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 500 * time.Millisecond
	}
	if c.PoolTimeout == 0 {
		c.PoolTimeout = time.Second
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 1
	}
	return c
}

// NewRedisClient builds the configured client: redis.NewFailoverClient for
// Sentinel, redis.NewClient otherwise.
func NewRedisClient(c RedisConfig) (redis.UniversalClient, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	tc, err := c.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("lock: redis: %w", err)
	}
	if c.SentinelMaster != "" {
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.SentinelMaster, SentinelAddrs: c.SentinelAddrs,
			SentinelPassword: c.SentinelPassword,
			Password:         c.Password, DB: c.DB,
			PoolSize: c.PoolSize, MinIdleConns: c.MinIdleConns,
			DialTimeout: c.DialTimeout, ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout,
			PoolTimeout: c.PoolTimeout, MaxRetries: c.MaxRetries,
			TLSConfig: tc,
		}), nil
	}
	return redis.NewClient(&redis.Options{
		Addr: c.Addr, Password: c.Password, DB: c.DB,
		PoolSize: c.PoolSize, MinIdleConns: c.MinIdleConns,
		DialTimeout: c.DialTimeout, ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout,
		PoolTimeout: c.PoolTimeout, MaxRetries: c.MaxRetries,
		TLSConfig: tc,
	}), nil
}

// SplitAddrs splits a comma-separated address list, dropping blanks.
func SplitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// poolCollector exports go-redis pool stats.
type poolCollector struct {
	c     interface{ PoolStats() *redis.PoolStats }
	descs map[string]*prometheus.Desc
}

// NewPoolCollector returns a Prometheus collector of c's connection pool
// stats (<prefix>_pool_hits_total, _misses_total, _timeouts_total,
// _total_conns, _idle_conns, _stale_conns_total).
func NewPoolCollector(prefix string, c interface{ PoolStats() *redis.PoolStats }) prometheus.Collector {
	d := func(n, h string) *prometheus.Desc { return prometheus.NewDesc(prefix+"_pool_"+n, h, nil, nil) }
	return &poolCollector{c: c, descs: map[string]*prometheus.Desc{
		"hits":     d("hits_total", "Free connection found in the pool."),
		"misses":   d("misses_total", "Free connection not found in the pool."),
		"timeouts": d("timeouts_total", "Waits for a connection that timed out."),
		"total":    d("total_conns", "Connections in the pool."),
		"idle":     d("idle_conns", "Idle connections in the pool."),
		"stale":    d("stale_conns_total", "Stale connections removed from the pool."),
	}}
}

func (p *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range p.descs {
		ch <- d
	}
}

func (p *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.c.PoolStats()
	ch <- prometheus.MustNewConstMetric(p.descs["hits"], prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(p.descs["misses"], prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(p.descs["timeouts"], prometheus.CounterValue, float64(s.Timeouts))
	ch <- prometheus.MustNewConstMetric(p.descs["total"], prometheus.GaugeValue, float64(s.TotalConns))
	ch <- prometheus.MustNewConstMetric(p.descs["idle"], prometheus.GaugeValue, float64(s.IdleConns))
	ch <- prometheus.MustNewConstMetric(p.descs["stale"], prometheus.CounterValue, float64(s.StaleConns))
}

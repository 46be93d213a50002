package lock_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/lock/locktest"
	"github.com/realmstream/realmstream/libs/redistest"
)

// TestSentinelConformance runs the conformance suite through the go-redis
// failover client: a private primary watched by a private Sentinel
// (redis-server --sentinel), the client finding the primary by name.
func TestSentinelConformance(t *testing.T) {
	primary := redistest.Start(t)
	addr := startSentinel(t, primary.Port, "")
	c := sentinelClient(t, lock.RedisConfig{SentinelMaster: "realm", SentinelAddrs: []string{addr}})
	locktest.Run(t, func(t *testing.T) lock.Store { return lock.NewRedisStore(c, "realmtest:sentinel:") })
}

// TestSentinelPassword: Sentinels protected by requirepass (the Bitnami
// chart's default, auth.sentinel: true) answer NOAUTH to a client that only
// knows the Redis password; with SentinelPassword the failover client finds
// the primary and takes a lease.
func TestSentinelPassword(t *testing.T) {
	primary := redistest.Start(t)
	addr := startSentinel(t, primary.Port, "s3ntinel")
	cfg := lock.RedisConfig{SentinelMaster: "realm", SentinelAddrs: []string{addr}, DialTimeout: 500 * time.Millisecond}
	bare, err := lock.NewRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err = bare.Ping(ctx).Err()
	cancel()
	bare.Close()
	if err == nil {
		t.Fatal("a client without the Sentinel password reached the primary through a protected Sentinel")
	}
	cfg.SentinelPassword = "s3ntinel"
	c := sentinelClient(t, cfg)
	l, err := lock.New(lock.NewRedisStore(c, "realmtest:sentinelpw:"), lock.Options{TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := l.TryAcquire(context.Background(), "z")
	if err != nil {
		t.Fatalf("lease through a password-protected Sentinel: %v", err)
	}
	_ = ls.Release(context.Background())
	if err := (lock.RedisConfig{Addr: "x:1", SentinelPassword: "p"}).Validate(); err == nil {
		t.Error("a Sentinel password without a Sentinel master validates")
	}
}

// startSentinel runs a private Sentinel (redis-server --sentinel) watching
// the primary on port as master "realm"; password, when set, is the
// Sentinel's own requirepass.
func startSentinel(t *testing.T, primaryPort int, password string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor realm 127.0.0.1 %d 1\nsentinel down-after-milliseconds realm 5000\n", port, dir, primaryPort)
	if password != "" {
		body += "requirepass " + password + "\n"
	}
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sentinel (redis-server --sentinel): %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return "127.0.0.1:" + strconv.Itoa(port)
}

// sentinelClient returns a failover client once it has reached the primary.
func sentinelClient(t *testing.T, cfg lock.RedisConfig) redis.UniversalClient {
	t.Helper()
	c, err := lock.NewRedisClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("failover client never reached the primary through Sentinel: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisRestartLosesLease: a lease whose Redis dies ends locally before
// its TTL; after the restart the key and the fence counter are gone (the
// fence starts again at 1), which is why the world never relies on the Redis
// fence alone (docs/world.md).
func TestRedisRestartLosesLease(t *testing.T) {
	rs := redistest.Start(t)
	c := rs.Client()
	m := lock.NewMetrics("realmtest_lock", prometheus.NewRegistry())
	l, err := lock.New(lock.NewRedisStore(c, ""), lock.Options{TTL: 600 * time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		ls, err := l.TryAcquire(ctx, "z")
		if err != nil {
			t.Fatal(err)
		}
		_ = ls.Release(ctx)
	}
	ls, err := l.TryAcquire(ctx, "z")
	if err != nil || ls.Fence() != 4 {
		t.Fatalf("fence %d, %v", ls.Fence(), err)
	}
	start := time.Now()
	rs.Kill()
	select {
	case <-ls.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("lease context not cancelled with Redis down")
	}
	if d := time.Since(start); d >= 600*time.Millisecond {
		t.Fatalf("lease ended %v after the kill, not before the TTL", d)
	}
	// The loss is counted: world exports it as the leases_lost_total
	// heartbeat figure, on which the monitor's zone_leases_lost alert fires.
	if n := testutil.ToFloat64(m.Lost); n != 1 {
		t.Fatalf("lost leases counted %v, want 1", n)
	}
	rs.Restart()
	ls2, err := l.TryAcquire(ctx, "z")
	if err != nil {
		t.Fatal(err)
	}
	if ls2.Fence() != 1 {
		t.Fatalf("fence after restart %d, expected the counter to be lost (1)", ls2.Fence())
	}
	_ = ls2.Release(ctx)
}

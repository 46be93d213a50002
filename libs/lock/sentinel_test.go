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

	"github.com/realmstream/realmstream/libs/lock"
	"github.com/realmstream/realmstream/libs/lock/locktest"
	"github.com/realmstream/realmstream/libs/redistest"
)

// TestSentinelConformance runs the conformance suite through the go-redis
// failover client: a private primary watched by a private Sentinel
// (redis-server --sentinel), the client finding the primary by name.
func TestSentinelConformance(t *testing.T) {
	primary := redistest.Start(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor realm 127.0.0.1 %d 1\nsentinel down-after-milliseconds realm 5000\n", port, dir, primary.Port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sentinel (redis-server --sentinel): %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c, err := lock.NewRedisClient(lock.RedisConfig{SentinelMaster: "realm", SentinelAddrs: []string{"127.0.0.1:" + strconv.Itoa(port)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failover client never reached the primary through Sentinel: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	locktest.Run(t, func(t *testing.T) lock.Store { return lock.NewRedisStore(c, "realmtest:sentinel:") })
}

// TestRedisRestartLosesLease: a lease whose Redis dies ends locally before
// its TTL; after the restart the key and the fence counter are gone (the
// fence starts again at 1), which is why the world never relies on the Redis
// fence alone (docs/world.md).
func TestRedisRestartLosesLease(t *testing.T) {
	rs := redistest.Start(t)
	c := rs.Client()
	l, err := lock.New(lock.NewRedisStore(c, ""), lock.Options{TTL: 600 * time.Millisecond})
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

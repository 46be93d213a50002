// Package redistest gives tests real Redis servers: the machine's server
// (REALM_TEST_REDIS) and private redis-server processes that a test may stop,
// restart or freeze. Only tests import it.
package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realmstream/realmstream/libs/freeport"
)

const startHint = "start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no " +
	"(or install it: apt-get install -y redis-server), or point REALM_TEST_REDIS at a server"

// Addr is the address of the shared test server.
func Addr() string {
	if a := os.Getenv("REALM_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// Shared returns a client of the shared server, failing the test with a hint
// when it is not running. Tests must use keys unique to themselves.
func Shared(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: Addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("redistest: Redis at %s is not reachable: %v; %s", Addr(), err, startHint)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Server is a private redis-server process.
type Server struct {
	t    testing.TB
	Addr string
	Port int
	dir  string
	cmd  *exec.Cmd
}

// Start runs a private redis-server on a free port; it is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redistest: redis-server not found: install it with: apt-get install -y redis-server")
	}
	port, err := freeport.Port() // below the ephemeral range: redis-server binds it a moment later
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port), dir: t.TempDir()}
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

// Restart starts the server again on the same port (after Kill); its data is gone.
func (s *Server) Restart() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--notify-keyspace-events", "Kgx")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redistest: start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: redis-server on %s not ready: %v", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill kills the server (SIGKILL) and waits for it to exit.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Freeze stops the server process (SIGSTOP): connections hang, like a partition.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	if s.cmd != nil && s.cmd.Process != nil {
		if err := s.cmd.Process.Signal(sig); err != nil {
			s.t.Errorf("redistest: signal %v: %v", sig, err)
		}
	}
}

// Client returns a client of this server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// String returns the address.
func (s *Server) String() string { return fmt.Sprintf("redis-server %s", s.Addr) }

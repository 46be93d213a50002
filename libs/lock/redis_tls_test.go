package lock

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/certtest"
	"github.com/realmstream/realmstream/libs/tlsfiles"
)

// startTLSRedis runs a private redis-server that serves TLS only (no
// plaintext port) with a certificate made in the test and demands a client
// certificate of the same CA, as the Bitnami chart's tls.authClients does.
func startTLSRedis(t *testing.T, pki *certtest.PKI, password string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command("redis-server", "--port", "0", "--tls-port", port, "--bind", "127.0.0.1",
		"--tls-cert-file", pki.ServerCert, "--tls-key-file", pki.ServerKey, "--tls-ca-cert-file", pki.CA,
		"--tls-auth-clients", "yes", "--requirepass", password, "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server (installed by scripts/test-env.sh): %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + port
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server with TLS did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedisTLS: the lock client speaks TLS to Redis with the CA and client
// certificate from files (issue 17 #7); in clear, with another CA or without
// the client certificate it is refused.
func TestRedisTLS(t *testing.T) {
	pki := certtest.New(t, "redis-test-ca")
	addr := startTLSRedis(t, pki, "pw")
	ping := func(f tlsfiles.Files) error {
		c, err := NewRedisClient(RedisConfig{Addr: addr, Password: "pw", TLS: f, DialTimeout: 2 * time.Second, MaxRetries: -1})
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	}
	if err := ping(tlsfiles.Files{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}); err != nil {
		t.Fatalf("PING over TLS: %v", err)
	}
	other := certtest.New(t, "other-ca")
	for name, f := range map[string]tlsfiles.Files{
		"in clear":              {},
		"server of another CA":  {CA: other.CA, Cert: pki.ClientCert, Key: pki.ClientKey},
		"no client certificate": {CA: pki.CA},
		"wrong server name":     {CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey, ServerName: "redis.example.com"},
	} {
		if err := ping(f); err == nil {
			t.Errorf("%s: PING answered, want refused", name)
		}
	}
	if _, err := NewRedisClient(RedisConfig{Addr: addr, TLS: tlsfiles.Files{Cert: pki.ClientCert}}); err == nil {
		t.Error("a client certificate without its key was accepted")
	}
}

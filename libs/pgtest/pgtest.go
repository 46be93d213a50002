// Package pgtest gives tests real PostgreSQL databases: fresh databases on the
// machine's server (REALM_TEST_PG) and, for tests that stop or kill a server,
// a private cluster made with initdb/pg_ctl on a free port. Only tests import it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/realmstream/realmstream/libs/freeport"
)

const defaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

const startHint = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start " +
	"(or install it: apt-get install -y postgresql), or point REALM_TEST_PG at a server"

// AdminURL is the URL of the shared test server's maintenance database.
func AdminURL() string {
	if u := os.Getenv("REALM_TEST_PG"); u != "" {
		return u
	}
	return defaultURL
}

// NewDatabase creates an empty database on the shared server and returns its
// URL; the database is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabaseOn(t, AdminURL())
}

func newDatabaseOn(t testing.TB, admin string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: PostgreSQL at %s is not reachable: %v; %s", admin, err, startHint)
	}
	defer conn.Close(ctx)
	name := "rt_" + randHex(6)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Cluster is a private PostgreSQL server owned by one test.
type Cluster struct {
	t    testing.TB
	Dir  string
	Port int
	bin  string
	run  []string // prefix to run as the postgres OS user when we are root
}

// StartCluster runs initdb and starts a private server on a free port. It is
// stopped (immediate mode) and removed when the test ends.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &Cluster{t: t, Dir: filepath.Join(dir, "data"), Port: freePort(t), bin: bin}
	if u, _ := user.Current(); u != nil && u.Uid == "0" {
		// initdb refuses to run as root: run the server as the postgres user.
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		c.run = []string{"runuser", "-u", "postgres", "--"}
	}
	c.cmd("initdb", "-D", c.Dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
	c.Start()
	t.Cleanup(func() { c.pgctl("stop", "-m", "immediate") })
	return c
}

// URL returns the URL of database db on this cluster.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// NewDatabase creates a database on this cluster and returns its URL.
func (c *Cluster) NewDatabase(t testing.TB) string { return newDatabaseOn(t, c.URL("postgres")) }

// Start starts (or restarts) the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", c.Port, filepath.Dir(c.Dir))
	c.pgctl("start", "-w", "-t", "60", "-o", opts, "-l", filepath.Join(filepath.Dir(c.Dir), "log"))
}

// Stop stops the server in fast mode (clients are disconnected).
func (c *Cluster) Stop() { c.t.Helper(); c.pgctl("stop", "-w", "-m", "fast") }

// Kill stops the server in immediate mode (like a crash).
func (c *Cluster) Kill() { c.t.Helper(); c.pgctl("stop", "-w", "-m", "immediate") }

func (c *Cluster) pgctl(args ...string) {
	c.t.Helper()
	c.cmd("pg_ctl", append([]string{"-D", c.Dir}, args...)...)
}

func (c *Cluster) cmd(name string, args ...string) {
	c.t.Helper()
	full := append(append([]string{}, c.run...), append([]string{filepath.Join(c.bin, name)}, args...)...)
	out, err := exec.Command(full[0], full[1:]...).CombinedOutput()
	if err != nil && !(name == "pg_ctl" && len(args) > 2 && args[2] == "stop") {
		c.t.Fatalf("pgtest: %s: %v\n%s", strings.Join(full, " "), err, out)
	}
}

func binDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no pg_ctl/initdb found: install them with: apt-get install -y postgresql")
}

func version(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// freePort is a port below the ephemeral range (libs/freeport), which
// postgres binds a moment later.
func freePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

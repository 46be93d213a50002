package harness

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/e2e/faultproxy"
	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/redistest"
	"github.com/realmstream/realmstream/libs/wire"

	"github.com/realmstream/realmstream/libs/freeport"
)

// StackConfig sizes the stack. Zero values take the defaults in brackets.
type StackConfig struct {
	Gateways int  // [2]
	Worlds   int  // [3]
	Persists int  // [2]; 0 with NoPersist
	Shards   int  // Postgres clusters [2]
	Monitor  bool // run the monitor
	// NoPersist, NoWorld leave those services out (for harness tests while
	// they do not exist yet).
	NoPersist, NoWorld bool
	// Args adds flags per service ("gateway", "world", "persist", "monitor").
	Args map[string][]string
	// ProcArgs adds flags to one process, by name ("gateway-1"), after Args.
	ProcArgs map[string][]string
	// Env adds environment per service.
	Env map[string][]string
	// LogDir keeps the service logs ("" = a temp dir of the test). A LogDir
	// given also keeps the JetStream store (LogDir/nats): after a failed
	// audit the streams can be read again (nats-server -js -sd LogDir/nats).
	LogDir string
	// LogLevel of the services [info].
	LogLevel string
}

// Stack is NATS (embedded, restartable), Redis and Postgres clusters owned by
// the test, and every service as a separate process. Every link from a
// service to a server goes through its own fault proxy, named
// "<proc>-><server>" (servers: nats, redis, pg0, pg1, ...).
type Stack struct {
	t   testing.TB
	cfg StackConfig

	natsMu   sync.Mutex
	nats     *natstest.Server
	natsDir  string
	natsPort int

	Redis  *redistest.Server
	PG     []*pgtest.Cluster
	PGURLs []string // direct (not proxied) URLs of the shard databases

	Builder *Builder
	procs   map[string]*Proc
	order   []string
	proxies map[string]*faultproxy.Proxy
	ops     map[string]string // proc -> ops address
	clients map[string][2]string

	reserved []net.Listener

	nc *nats.Conn
	js jetstream.JetStream
}

// NATSURL is the (direct) URL of the embedded server.
func (s *Stack) NATSURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.natsPort) }

// JS is the test's own JetStream context (reconnects across NATS restarts).
func (s *Stack) JS() jetstream.JetStream { return s.js }

// NC is the test's own connection.
func (s *Stack) NC() *nats.Conn { return s.nc }

// Proc returns the process named name ("gateway-1", "world-3", ...).
func (s *Stack) Proc(name string) *Proc { return s.procs[name] }

// Procs lists the processes in start order.
func (s *Stack) Procs() []*Proc {
	out := make([]*Proc, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, s.procs[n])
	}
	return out
}

// ProcsOf lists the processes of one service.
func (s *Stack) ProcsOf(svc string) []*Proc {
	var out []*Proc
	for _, n := range s.order {
		if strings.HasPrefix(n, svc+"-") {
			out = append(out, s.procs[n])
		}
	}
	return out
}

// Proxy returns the fault proxy of a link, e.g. Proxy("world-1", "redis").
func (s *Stack) Proxy(proc, server string) *faultproxy.Proxy {
	return s.proxies[proc+"->"+server]
}

// ProxiesTo lists the proxies of every link to server.
func (s *Stack) ProxiesTo(server string) []*faultproxy.Proxy {
	var out []*faultproxy.Proxy
	keys := make([]string, 0, len(s.proxies))
	for k := range s.proxies {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasSuffix(k, "->"+server) {
			out = append(out, s.proxies[k])
		}
	}
	return out
}

// OpsAddr is the ops HTTP address of a process.
func (s *Stack) OpsAddr(proc string) string { return s.ops[proc] }

// GatewayAddrs returns the TCP address and WebSocket URL of every gateway.
func (s *Stack) GatewayAddrs() [][2]string {
	var out [][2]string
	for _, p := range s.ProcsOf("gateway") {
		out = append(out, s.clients[p.Name])
	}
	return out
}

// StartStack starts the servers, builds the binaries and starts every
// service, waiting for each /readyz. Everything is torn down at test end.
func StartStack(t testing.TB, cfg StackConfig) *Stack {
	t.Helper()
	if cfg.Gateways == 0 {
		cfg.Gateways = 2
	}
	if cfg.Worlds == 0 && !cfg.NoWorld {
		cfg.Worlds = 3
	}
	if cfg.Persists == 0 && !cfg.NoPersist {
		cfg.Persists = 2
	}
	if cfg.NoWorld {
		cfg.Worlds = 0
	}
	if cfg.NoPersist {
		cfg.Persists = 0
	}
	if cfg.Shards == 0 {
		cfg.Shards = 2
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	keepStore := cfg.LogDir != ""
	if cfg.LogDir == "" {
		cfg.LogDir = filepath.Join(t.TempDir(), "logs")
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if src := os.Getenv("E2E_SRC"); src != "" {
		// Build the services from another checkout (e.g. a snapshot of a
		// commit) while the tests come from this one.
		root = src
	}
	builder, err := SharedBuilder(root)
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{t: t, cfg: cfg, Builder: builder, procs: map[string]*Proc{},
		proxies: map[string]*faultproxy.Proxy{}, ops: map[string]string{}, clients: map[string][2]string{}}

	// Build first (in parallel with nothing else: 2 cores).
	svcs := []string{"gateway"}
	if !cfg.NoWorld {
		svcs = append(svcs, "world")
	}
	if !cfg.NoPersist {
		svcs = append(svcs, "persist")
	}
	if cfg.Monitor {
		svcs = append(svcs, "monitor")
	}
	tb := time.Now()
	bins, err := s.Builder.BuildServices(svcs)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("stack: built %v in %v", svcs, time.Since(tb).Round(time.Millisecond))

	// Servers.
	s.natsDir = t.TempDir()
	if keepStore {
		s.natsDir = filepath.Join(cfg.LogDir, "nats")
		if err := os.MkdirAll(s.natsDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ns := natstest.StartDir(t, s.natsDir, -1)
	u, _ := url.Parse(ns.ClientURL())
	s.natsPort, _ = strconv.Atoi(u.Port())
	s.nats = ns
	s.nc, err = nats.Connect(s.NATSURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Name("e2e-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.nc.Close)
	s.js, _ = jetstream.New(s.nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wire.EnsureStreams(ctx, s.js, wire.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	needRedis := !cfg.NoWorld
	if needRedis {
		s.Redis = redistest.Start(t)
	}
	if !cfg.NoPersist {
		for i := 0; i < cfg.Shards; i++ {
			c := pgtest.StartCluster(t)
			s.PG = append(s.PG, c)
			s.PGURLs = append(s.PGURLs, c.NewDatabase(t))
		}
	}

	// Processes.
	t.Cleanup(s.closeAll)
	for i := 1; i <= cfg.Gateways; i++ {
		s.addProc(bins["gateway"], "gateway", i)
	}
	for i := 1; i <= cfg.Persists; i++ {
		s.addProc(bins["persist"], "persist", i)
	}
	for i := 1; i <= cfg.Worlds; i++ {
		s.addProc(bins["world"], "world", i)
	}
	if cfg.Monitor {
		s.addProc(bins["monitor"], "monitor", 1)
	}
	s.releasePorts()
	for _, n := range s.order {
		if err := s.procs[n].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range s.order {
		if err := s.procs[n].WaitReady(context.Background(), 60*time.Second); err != nil {
			t.Fatalf("stack: %v (logs in %s)", err, cfg.LogDir)
		}
	}
	return s
}

func (s *Stack) proxy(proc, server, target string) *faultproxy.Proxy {
	p, err := faultproxy.Start(proc+"->"+server, target)
	if err != nil {
		s.t.Fatal(err)
	}
	s.proxies[p.Name] = p
	return p
}

// port reserves a free port: its listener stays open (so that neither the
// proxies nor anything else picks the same port) until releasePorts, just
// before the processes start.
func (s *Stack) port() int {
	l, err := freeport.Listen() // below the ephemeral range (the hold ends before the processes start)
	if err != nil {
		s.t.Fatal(err)
	}
	s.reserved = append(s.reserved, l)
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Stack) releasePorts() {
	for _, l := range s.reserved {
		_ = l.Close()
	}
	s.reserved = nil
}

// addProc defines the process, its proxies and its command line. The flags
// are those of the services' envflag sets (see each cmd/<svc>/main.go).
func (s *Stack) addProc(bin, svc string, i int) {
	name := fmt.Sprintf("%s-%d", svc, i)
	opsAddr := fmt.Sprintf("127.0.0.1:%d", s.port())
	s.ops[name] = opsAddr
	natsProxy := s.proxy(name, "nats", fmt.Sprintf("127.0.0.1:%d", s.natsPort))
	args := []string{
		"--nats-url", "nats://" + natsProxy.Addr(),
		"--http-addr", opsAddr,
		"--instance-id", name,
		"--log-level", s.cfg.LogLevel,
		"--log-format", "text",
	}
	switch svc {
	case "gateway":
		tcp := fmt.Sprintf("127.0.0.1:%d", s.port())
		ws := fmt.Sprintf("127.0.0.1:%d", s.port())
		s.clients[name] = [2]string{tcp, "ws://" + ws + "/"}
		args = append(args, "--tcp-addr", tcp, "--ws-addr", ws, "--dev")
	case "world":
		rp := s.proxy(name, "redis", s.Redis.Addr)
		args = append(args, "--redis-addr", rp.Addr())
	case "persist":
		urls := make([]string, len(s.PGURLs))
		for k, u := range s.PGURLs {
			pu, _ := url.Parse(u)
			pp := s.proxy(name, fmt.Sprintf("pg%d", k), pu.Host)
			pu.Host = pp.Addr()
			urls[k] = pu.String()
		}
		args = append(args, "--pg-urls", strings.Join(urls, ","))
	}
	args = append(args, s.cfg.Args[svc]...)
	args = append(args, s.cfg.ProcArgs[name]...)
	p := &Proc{Name: name, Path: bin, Args: args, Env: s.cfg.Env[svc],
		ReadyURL: "http://" + opsAddr + "/readyz", LogPath: filepath.Join(s.cfg.LogDir, name+".log")}
	s.procs[name] = p
	s.order = append(s.order, name)
}

func (s *Stack) closeAll() {
	// Stop services first (reverse order), then proxies; servers stop in
	// their own cleanups.
	for i := len(s.order) - 1; i >= 0; i-- {
		s.procs[s.order[i]].Close()
	}
	for _, p := range s.proxies {
		_ = p.Close()
	}
}

// LogDir is where the service logs are.
func (s *Stack) LogDir() string { return s.cfg.LogDir }

// Restart starts a stopped (killed) process again and waits for /readyz.
func (s *Stack) Restart(ctx context.Context, name string, timeout time.Duration) error {
	p := s.procs[name]
	if p == nil {
		return fmt.Errorf("stack: no process %s", name)
	}
	if err := p.Start(); err != nil {
		return err
	}
	return p.WaitReady(ctx, timeout)
}

// StopNATS shuts the embedded NATS server down (clients see the connection
// drop; JetStream data stays in its directory).
func (s *Stack) StopNATS() {
	s.natsMu.Lock()
	defer s.natsMu.Unlock()
	if s.nats == nil {
		return
	}
	s.nats.Shutdown()
	s.nats.WaitForShutdown()
	s.nats = nil
}

// StartNATS starts NATS again on the same port and directory.
func (s *Stack) StartNATS() {
	s.natsMu.Lock()
	defer s.natsMu.Unlock()
	if s.nats != nil {
		return
	}
	s.nats = natstest.StartDir(s.t, s.natsDir, s.natsPort)
}

// CheckNoCrashes fails the test for every process exit nobody asked for.
func (s *Stack) CheckNoCrashes(t testing.TB) {
	t.Helper()
	for _, p := range s.Procs() {
		for _, c := range p.Crashes() {
			t.Errorf("%s\n%s", c, p.Tail(4000))
		}
	}
}

package deploy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/redistest"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
)

// buildVersion is stamped into the test builds, as git's revision is into
// the images.
const buildVersion = "deploytest-3f9c2e1"

// commonFlags are the flags every service has (the team brief).
var commonFlags = []string{"nats-url", "http-addr", "instance-id", "log-level", "log-format", "shutdown-timeout", "otlp-endpoint"}

var (
	binMu    sync.Mutex
	binDir   string
	binBuilt = map[string]error{}
	helps    = map[string]Help{}
)

// binary returns the service binary built as the Dockerfile builds it, and
// its parsed --help. A service without a main package fails the test: every
// service the manifests deploy must exist.
func binary(t *testing.T, svc string) (string, Help) {
	t.Helper()
	if !HasMain(repoRoot, svc) {
		t.Fatalf("services/%s/cmd/%s has no Go files: compose and the overlays deploy a service that does not exist", svc, svc)
	}
	binMu.Lock()
	defer binMu.Unlock()
	if binDir == "" {
		d, err := os.MkdirTemp("", "realm-deploy-bins-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = d
	}
	out := filepath.Join(binDir, svc)
	bin := filepath.Join(out, "service")
	err, done := binBuilt[svc]
	if !done {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		err = BuildInStageContext(ctx, repoRoot, svc, out, buildVersion)
		cancel()
		if err == nil {
			var sub []string
			if svc == "stack" {
				sub = []string{"bots"} // the command compose runs
			}
			text, code, herr := RunHelp(context.Background(), bin, nil, sub...)
			switch {
			case herr != nil:
				err = herr
			case code != 0:
				err = fmt.Errorf("%s --help exits %d:\n%s", svc, code, text)
			default:
				helps[svc] = ParseHelp(text)
			}
		}
		binBuilt[svc] = err
	}
	if err != nil {
		t.Fatalf("%s: %v", svc, err)
	}
	return bin, helps[svc]
}

// configSource is one place that configures a service: a compose container
// or a container of an overlay's Deployment.
type configSource struct {
	where string
	name  string // compose service or Deployment name
	svc   string
	env   map[string]EnvValue
	args  []string
}

func composeSources(t *testing.T) []configSource {
	t.Helper()
	p := loadCompose(t, "bots")
	var out []configSource
	for _, name := range SortedNames(p) {
		s := p.Services[name]
		svc := RealmServiceOf(s)
		if svc == "" {
			continue
		}
		env := map[string]EnvValue{}
		for k, v := range ComposeEnv(s) {
			env[k] = EnvValue{Value: v}
		}
		out = append(out, configSource{where: "compose " + name, name: name, svc: svc, env: env, args: s.Command})
	}
	return out
}

func overlaySources(t *testing.T, overlay string) ([]configSource, Objects) {
	t.Helper()
	objs := buildOverlay(t, overlay)
	var out []configSource
	for _, d := range objs.Deployments() {
		if !isRealm(d.Spec.Template.Labels) {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			env, err := ContainerEnv(objs, c)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, configSource{where: overlay + " Deployment/" + d.Name, name: d.Name, svc: d.Name,
				env: RealmEnv(env), args: append(append([]string{}, c.Command...), c.Args...)})
		}
	}
	return out, objs
}

// TestNoConfigDrift: every REALM_* variable and flag that compose and the
// overlays give a service is one its binary (built like the image) accepts,
// every value parses as the flag's type, every setting the binary declares
// required is set by each, and the common flags exist everywhere.
func TestNoConfigDrift(t *testing.T) {
	sources := composeSources(t)
	for _, o := range Overlays {
		s, _ := overlaySources(t, o)
		sources = append(sources, s...)
	}
	for _, svc := range append(append([]string{}, Services...), "stack") {
		t.Run(svc, func(t *testing.T) {
			bin, help := binary(t, svc)
			var sub []string
			if svc == "stack" {
				sub = []string{"bots"}
			}
			for _, f := range commonFlags {
				if svc == "stack" {
					break // a client: no ops server, no NATS
				}
				if fl, ok := help.Flags[f]; !ok || fl.Env != EnvName(f) {
					t.Errorf("%s --help lacks the common flag --%s [env %s]", svc, f, EnvName(f))
				}
			}
			n := 0
			for _, src := range sources {
				if src.svc != svc {
					continue
				}
				n++
				env := map[string]string{}
				for k, v := range src.env {
					if !strings.HasPrefix(k, "REALM_") {
						continue
					}
					if _, ok := help.ByEnv[k]; !ok {
						t.Errorf("%s sets %s, which %s does not accept (no such flag in --help)", src.where, k, svc)
					}
					env[k] = standIn(k, v, svc)
				}
				args := src.args
				if svc == "stack" && len(args) > 0 {
					args = args[1:] // the subcommand
				}
				for _, f := range ArgFlags(args) {
					if _, ok := help.Flags[f]; !ok {
						t.Errorf("%s passes --%s, which %s does not accept", src.where, f, svc)
					}
				}
				for _, f := range help.Flags {
					if f.Required() && f.Env != "" {
						if _, ok := src.env[f.Env]; !ok {
							t.Errorf("%s does not set %s (--%s: %s)", src.where, f.Env, f.Name, f.Usage)
						}
					}
				}
				out, code, err := RunHelp(context.Background(), bin, env, sub...)
				if err != nil || code != 0 {
					t.Errorf("%s: %s rejects the environment (exit %d, %v):\n%s", src.where, svc, code, err, firstLines(out, 5))
				}
			}
			if want := 1 + len(Overlays); svc != "stack" && n < want || n < 1 {
				t.Errorf("%s is configured by %d sources, want compose and every overlay", svc, n)
			}
			if f, ok := help.Flags["http-addr"]; ok {
				// The image's probe defaults to the service's own default ops port.
				_, port := hostPort(strings.Trim(f.Default, `"`))
				// (An odd path: whether or not something listens there, the
				// probe fails and names the URL it tried.)
				cmd := exec.Command(filepath.Join(filepath.Dir(bin), "healthcheck"), "-timeout", "1s", "-path", "/realmstream-probe-check")
				cmd.Env = []string{}
				out, _ := cmd.CombinedOutput()
				if !strings.Contains(string(out), "127.0.0.1:"+port+"/realmstream-probe-check") {
					t.Errorf("the image's healthcheck does not default to %s's ops port %s: %s", svc, port, out)
				}
			}
			if b, err := os.ReadFile(bin); err == nil && !bytes.Contains(b, []byte(buildVersion)) {
				t.Logf("NOTE: %s does not carry the version stamped with -X main.version=%s: its main package needs `var version = \"dev\"` (and should log/print it)", svc, buildVersion)
			}
		})
	}
}

// EnvName mirrors libs/envflag.EnvName (kept here so the test states the rule
// it checks rather than trusting the code under test).
func EnvName(flag string) string {
	return "REALM_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// standIn gives the value a variable would have in the cluster where the
// manifests only name its source (a secret made by an operator, the pod name).
func standIn(k string, v EnvValue, svc string) string {
	if v.External == "" {
		return v.Value
	}
	switch {
	case strings.HasPrefix(v.External, "field metadata.name"):
		return svc + "-7d9f8c6b5-x2x9q"
	case strings.Contains(v.Value, "<secret ") && strings.Contains(v.External, "shard"):
		return rewriteParts(v.Value, func(part string) string {
			if strings.Contains(part, "shard") {
				return "postgres://app:secret@" + part[strings.Index(part, "shard")-5:strings.Index(part, "shard")+6] + "-rw:5432/realm"
			}
			return part
		})
	case strings.Contains(v.External, "token-key"):
		return "stand-in-token-key-0123456789abcdef0123456789"
	case strings.HasPrefix(v.External, "secret nats-auth/"):
		return "stand-in-nats-" + strings.TrimPrefix(v.External, "secret nats-auth/")
	case strings.Contains(v.External, "redis-auth/password"):
		return "stand-in-redis-password"
	case strings.Contains(v.External, "webhook-url"):
		return "https://hooks.example.com/realmstream"
	}
	return "<" + v.External + ">"
}

func rewriteParts(v string, f func(string) string) string {
	parts := strings.Split(v, ",")
	for i, p := range parts {
		parts[i] = f(p)
	}
	return strings.Join(parts, ",")
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

// localDeps are real NATS, Redis (and Sentinel) and Postgres on this machine
// standing in for the deployment's: the stack's addresses are rewritten to them.
type localDeps struct {
	nats, redis, sentinel, otlp string
	secure                      *secureNATS // TLS + users (staging, prod), or nil
	redisPassword               string
	pg                          [2]string
	listen                      map[string]string // "gateway:7000" -> the local address it listens on
	spans                       atomic.Int64
	otlpWrongPath               atomic.Value // a path other than /v1/traces that an exporter posted to
}

// startDeps starts the servers; the Redis password and Sentinel master name
// are taken from the configuration under test, so a Sentinel setup (staging,
// prod) is exercised for real: world asks the Sentinel for the primary.
func startDeps(t *testing.T, redisPassword, sentinelMaster string, natsUsers map[string]string, natsTLS bool) *localDeps {
	t.Helper()
	d := &localDeps{listen: map[string]string{}}
	if natsTLS || len(natsUsers) > 0 {
		d.secure = startSecureNATS(t, natsUsers)
		d.nats = d.secure.url
	} else {
		d.nats = natstest.Start(t).URL
	}
	// A private redis-server rather than the shared one on :6379: the world
	// instances take zone leases under fixed keys (realm:lock:...), which
	// would collide with other packages' tests running at the same time.
	if redisPassword == "" && sentinelMaster == "" {
		d.redis = redistest.Start(t).Addr
	} else {
		d.redis = startRedis(t, redisPassword)
		if sentinelMaster != "" {
			d.sentinel = startSentinel(t, d.redis, sentinelMaster, redisPassword)
		}
	}
	d.pg[0] = pgtest.NewDatabase(t)
	d.pg[1] = pgtest.NewDatabase(t)
	// An OTLP/HTTP sink in place of the collector, so span export succeeds
	// and never holds up a shutdown.
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/v1/traces" {
			d.spans.Add(1)
		} else {
			d.otlpWrongPath.Store(r.URL.Path)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(sink.Close)
	d.otlp = sink.Listener.Addr().String()
	return d
}

// localize rewrites one deployment value to the local servers: endpoints by
// the name of their host (nats, redis, the shard, the collector), listen
// addresses to free loopback ports.
func (d *localDeps) localize(t *testing.T, name, k, v string) string {
	t.Helper()
	if isListen(v) {
		_, port := hostPort(v)
		addr := "127.0.0.1:" + opsPort(t)
		d.listen[name+":"+port] = addr // what clients of this container (bots) reach
		return addr
	}
	if strings.HasPrefix(v, "/etc/realm/nats-ca/") && d.secure != nil {
		return d.secure.pki.CA // the Secret volume nats-ca, as mounted
	}
	if strings.HasPrefix(k, "REALM_REDIS_TLS") {
		// The local Redis and Sentinel speak plaintext; TLS to Redis is
		// tested against a TLS-only redis-server in libs/lock (TestRedisTLS).
		return ""
	}
	if k == "REALM_STREAM_REPLICAS" {
		// Replication is the NATS cluster's property (3 servers in staging
		// and prod); the one local server holds one copy.
		return "1"
	}
	return rewriteParts(v, func(part string) string {
		host, port := hostPort(part)
		if port == "" {
			return part // not an endpoint (a password, a name, a path)
		}
		if a, ok := d.listen[host+":"+port]; ok {
			return a
		}
		switch h := strings.ToLower(host + " " + part); {
		case strings.Contains(h, "shard0"):
			return d.pg[0]
		case strings.Contains(h, "shard1"):
			return d.pg[1]
		case strings.Contains(h, "nats"):
			return d.nats
		case strings.Contains(h, "redis") && port == "26379" && d.sentinel != "":
			return d.sentinel
		case strings.Contains(h, "redis"):
			return d.redis
		case strings.Contains(h, "otel"):
			return strings.Replace(part, host+":"+port, d.otlp, 1)
		}
		return part
	})
}

func isListen(v string) bool {
	return strings.HasPrefix(v, ":") || strings.HasPrefix(v, "0.0.0.0:") || strings.HasPrefix(v, "[::]:")
}

var portSeq atomic.Int32

// opsPort picks a free port below the kernel's ephemeral range, so neither a
// listener on :0 nor an outgoing connection of the running services can take
// it between this check and the service's own bind.
func opsPort(t *testing.T) string {
	t.Helper()
	for i := 0; i < 200; i++ {
		p := 20000 + int(portSeq.Add(1)*7+int32(os.Getpid()%1000)*11)%10000
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			return fmt.Sprint(p)
		}
	}
	t.Fatal("no free port in 20000-29999")
	return ""
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

// proc is one running service binary.
type proc struct {
	name     string
	cmd      *exec.Cmd
	out      *syncBuffer
	done     chan struct{}
	err      error
	ops      string
	shutdown time.Duration
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startProc(t *testing.T, name, bin string, env map[string]string, args []string) *proc {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "TMPDIR=" + dir, "PATH=/usr/bin:/bin"}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	p := &proc{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{}), ops: env["REALM_HTTP_ADDR"]}
	p.shutdown, _ = time.ParseDuration(env["REALM_SHUTDOWN_TIMEOUT"])
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- output of %s (env %s):\n%s", name, strings.Join(keys, " "), tail(p.out.String(), 40))
		}
	})
	return p
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func (p *proc) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	waitfor.True(t, timeout, func() error {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready: %v\n%s", p.name, p.err, tail(p.out.String(), 30))
		default:
		}
		resp, err := client.Get("http://" + p.ops + "/readyz")
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = string(b)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s /readyz: %d %s", p.name, resp.StatusCode, last)
		}
		return nil
	})
	// The image's own probe agrees.
	hc := filepath.Join(filepath.Dir(p.cmd.Path), "healthcheck")
	probe := exec.Command(hc, "-path", "/readyz")
	probe.Env = []string{"REALM_HTTP_ADDR=" + p.ops}
	if out, err := probe.CombinedOutput(); err != nil {
		t.Errorf("%s: the image's healthcheck probe fails on a ready service: %v %s", p.name, err, out)
	}
}

// stop sends SIGTERM and expects a clean exit (status 0) within the
// service's own shutdown timeout plus a margin.
func (p *proc) stop(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", p.name, err)
	}
	limit := p.shutdown + 15*time.Second
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("%s did not stop within %v of SIGTERM\n%s", p.name, limit, tail(p.out.String(), 30))
	}
	if p.err != nil {
		t.Errorf("%s: unclean exit on SIGTERM: %v\n%s", p.name, p.err, tail(p.out.String(), 30))
	}
	return time.Since(start)
}

// runStack starts every source's binary with its environment localized,
// waits until each passes /readyz, then stops them in reverse order (as
// compose and a rolling update do) and checks each exits cleanly.
func runStack(t *testing.T, sources []configSource, replicas map[string]int) {
	var password, master string
	for _, src := range sources {
		if v, ok := src.env["REALM_REDIS_PASSWORD"]; ok {
			password = standIn("REALM_REDIS_PASSWORD", v, src.svc)
		}
		if v, ok := src.env["REALM_REDIS_SENTINEL_MASTER"]; ok {
			master = v.Value
		}
	}
	natsUsers, natsTLS := natsAuthOf(sources)
	d := startDeps(t, password, master, natsUsers, natsTLS)
	d.redisPassword = password
	var procs []*proc
	var clients []configSource
	for _, src := range sources {
		if src.svc == "stack" {
			clients = append(clients, src) // run against the ready stack below
			continue
		}
		bin, _ := binary(t, src.svc)
		n := max(1, replicas[src.where])
		for i := 0; i < n; i++ {
			name := src.where
			env := map[string]string{}
			for k, v := range src.env {
				if !strings.HasPrefix(k, "REALM_") {
					continue
				}
				env[k] = d.localize(t, src.name, k, standIn(k, v, fmt.Sprintf("%s-%d", src.svc, i)))
			}
			if n > 1 {
				name = fmt.Sprintf("%s #%d", src.where, i)
			}
			procs = append(procs, startProc(t, name, bin, env, src.args))
		}
	}
	if len(procs) == 0 {
		t.Fatal("no service binary was started: nothing was checked")
	}
	start := time.Now()
	for _, p := range procs {
		p.waitReady(t, 90*time.Second)
	}
	t.Logf("%d processes ready in %v", len(procs), time.Since(start).Round(time.Millisecond))
	ran := map[string]bool{}
	for _, src := range sources {
		ran[src.svc] = true
	}
	d.checkUsed(t, ran)
	d.checkSecureConnections(t, natsUsers)
	for _, src := range clients {
		d.runBots(t, src)
		if ran["persist"] && ran["world"] && ran["gateway"] {
			d.checkEventsStored(t)
		}
	}
	if len(clients) > 0 && len(ran) >= len(Services) {
		checkDashboardMetrics(t, procs)
	}
	for i := len(procs) - 1; i >= 0; i-- {
		took := procs[i].stop(t)
		t.Logf("%s stopped cleanly in %v", procs[i].name, took.Round(time.Millisecond))
	}
	t.Logf("OTLP export requests received: %d", d.spans.Load())
	if len(clients) > 0 && d.spans.Load() == 0 {
		t.Errorf("the bots played but no service exported a trace to the collector's address (REALM_OTLP_ENDPOINT)")
	}
	if p, ok := d.otlpWrongPath.Load().(string); ok {
		t.Errorf("an exporter posted to %q: the collector takes OTLP/HTTP traces at /v1/traces only", p)
	}
}

// TestComposeStackRuns: the binaries start with compose.yml's environment
// (addresses rewritten to local NATS, Redis and Postgres), all pass /readyz
// together, and stop cleanly on SIGTERM.
func TestComposeStackRuns(t *testing.T) {
	var sources []configSource
	for _, s := range composeSources(t) {
		if HasMain(repoRoot, s.svc) {
			sources = append(sources, s)
		} else {
			t.Logf("NOTE: %s not run: services/%s/cmd/%s is not written yet", s.where, s.svc, s.svc)
		}
	}
	// Dependencies first, as compose orders them: persist, worlds, gateway, monitor.
	order := map[string]int{"persist": 0, "world": 1, "gateway": 2, "monitor": 3}
	sort.SliceStable(sources, func(i, j int) bool { return order[sources[i].svc] < order[sources[j].svc] })
	runStack(t, sources, nil)
}

// TestOverlayStackRuns: the same with each overlay's Deployments (ConfigMaps,
// secrets and downward-API values resolved as the kubelet would), with the
// HPA's minimum number of gateway and world replicas.
func TestOverlayStackRuns(t *testing.T) {
	for _, overlay := range Overlays {
		t.Run(overlay, func(t *testing.T) {
			all, objs := overlaySources(t, overlay)
			var sources []configSource
			replicas := map[string]int{}
			for _, s := range all {
				if !HasMain(repoRoot, s.svc) {
					t.Logf("NOTE: %s not run: the service is not written yet", s.where)
					continue
				}
				sources = append(sources, s)
				if h, ok := objs.Get("HorizontalPodAutoscaler", s.svc).(*autoscalingv2.HorizontalPodAutoscaler); ok && h.Spec.MinReplicas != nil {
					replicas[s.where] = min(int(*h.Spec.MinReplicas), 2)
				} else if d, ok := objs.Get("Deployment", s.svc).(*appsv1.Deployment); ok && d.Spec.Replicas != nil {
					replicas[s.where] = int(*d.Spec.Replicas)
				}
			}
			order := map[string]int{"persist": 0, "world": 1, "gateway": 2, "monitor": 3}
			sort.SliceStable(sources, func(i, j int) bool { return order[sources[i].svc] < order[sources[j].svc] })
			runStack(t, sources, replicas)
		})
	}
}

// startRedis runs a private redis-server, with a password when one is given.
func startRedis(t *testing.T, password string) string {
	t.Helper()
	port := opsPort(t)
	args := []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}
	if password != "" {
		args = append(args, "--requirepass", password)
	}
	startServer(t, "redis-server", args...)
	addr := "127.0.0.1:" + port
	waitPing(t, addr)
	return addr
}

// startSentinel runs a private Redis Sentinel watching primary as master.
// With a password the Sentinel is protected as the Bitnami chart protects
// its Sentinels (auth.sentinel: true, the default): requirepass with the
// Redis password, so a client that does not send it gets NOAUTH.
func startSentinel(t *testing.T, primary, master, password string) string {
	t.Helper()
	port := opsPort(t)
	dir := t.TempDir()
	host, pport, _ := net.SplitHostPort(primary)
	conf := fmt.Sprintf("port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 5000\n",
		port, dir, master, host, pport, master)
	if password != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\nrequirepass %s\n", master, password, password)
	}
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startServer(t, "redis-server", path, "--sentinel")
	addr := "127.0.0.1:" + port
	waitPing(t, addr)
	return addr
}

func startServer(t *testing.T, name string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: install it with: apt-get install -y redis-server", name)
	}
	cmd := exec.Command(name, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("--- %s %v:\n%s", name, args, tail(out.String(), 20))
		}
	})
}

// waitPing waits until a Redis or Sentinel server answers PING (+PONG, or
// -NOAUTH when it wants a password: it is up either way).
func waitPing(t *testing.T, addr string) {
	t.Helper()
	waitfor.True(t, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		b := make([]byte, 64)
		n, err := c.Read(b)
		if err != nil {
			return err
		}
		if r := string(b[:n]); !strings.HasPrefix(r, "+PONG") && !strings.HasPrefix(r, "-NOAUTH") {
			return fmt.Errorf("%s answers %q", addr, r)
		}
		return nil
	})
}

// checkUsed proves the configuration reached the real servers: the streams
// exist in NATS, world instances hold zone leases in Redis, and persist
// created its schema in both Postgres shards.
func (d *localDeps) checkUsed(t *testing.T, ran map[string]bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := d.connectNATS(t)
	for _, name := range []string{wire.StreamCommands, wire.StreamEvents} {
		if _, err := js.Stream(ctx, name); err != nil {
			t.Errorf("NATS: stream %s: %v", name, err)
		}
	}
	if ran["world"] {
		rc := redis.NewClient(&redis.Options{Addr: d.redis, Password: d.redisPassword})
		defer rc.Close()
		waitfor.True(t, 15*time.Second, func() error {
			n, err := rc.DBSize(ctx).Result()
			if err == nil && n == 0 {
				err = fmt.Errorf("no keys: no world instance holds a zone lease")
			}
			return err
		})
	}
	if ran["persist"] {
		for i, url := range d.pg {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatalf("shard %d: %v", i, err)
			}
			var n int
			err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").Scan(&n)
			conn.Close(ctx)
			if err != nil || n == 0 {
				t.Errorf("Postgres shard %d has no tables (%d, %v): persist did not use it", i, n, err)
			}
		}
	}
}

// botCount and botDuration size the bots profile for a test: the compose
// values (100 bots for 10 minutes) are for watching the stack, not for CI.
const (
	botCount    = "5"
	botDuration = "4s"
)

// runBots runs the bots profile's command with its environment (the gateway
// address rewritten to the local gateway) and expects every bot to connect,
// play and finish cleanly.
func (d *localDeps) runBots(t *testing.T, src configSource) {
	t.Helper()
	bin, _ := binary(t, src.svc)
	env := map[string]string{}
	for k, v := range src.env {
		env[k] = d.localize(t, src.name, k, standIn(k, v, src.svc))
	}
	env["REALM_COUNT"], env["REALM_DURATION"] = botCount, botDuration
	p := startProc(t, src.where, bin, env, src.args)
	select {
	case <-p.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("%s did not finish\n%s", src.where, tail(p.out.String(), 20))
	}
	out := p.out.String()
	if p.err != nil || !strings.Contains(out, "summary: "+botCount+"/"+botCount+" bots connected") {
		t.Fatalf("%s: %v\n%s", src.where, p.err, tail(out, 20))
	}
	t.Logf("%s: %s", src.where, firstLines(out[strings.Index(out, "summary:"):], 3))
}

// checkEventsStored: the bots' commands went gateway -> NATS -> world ->
// event log -> persist -> the Postgres shards.
func (d *localDeps) checkEventsStored(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var per [2]int
	waitfor.True(t, 45*time.Second, func() error {
		total := 0
		for i, url := range d.pg {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return err
			}
			err = conn.QueryRow(ctx, "SELECT count(*) FROM events").Scan(&per[i])
			conn.Close(ctx)
			if err != nil {
				return fmt.Errorf("shard %d: %w", i, err)
			}
			total += per[i]
		}
		if total == 0 {
			return fmt.Errorf("no events stored in either shard")
		}
		return nil
	})
	t.Logf("events stored: shard0 %d, shard1 %d", per[0], per[1])
}

var metricRE = regexp.MustCompile(`\b((?:realm|persist|process|go)_[a-zA-Z0-9_]+)`)

// checkDashboardMetrics: every metric the Grafana dashboards query is one a
// service of the running stack exports (after the bots played), so a renamed
// metric breaks this test instead of silently emptying a panel.
func checkDashboardMetrics(t *testing.T, procs []*proc) {
	t.Helper()
	have := map[string]bool{}
	for _, p := range procs {
		resp, err := http.Get("http://" + p.ops + "/metrics")
		if err != nil {
			t.Errorf("%s /metrics: %v", p.name, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
				have[f[2]] = true
			}
		}
	}
	dashboards, _ := filepath.Glob(filepath.Join(repoRoot, "deploy/grafana/dashboards/*.json"))
	var missing []string
	for _, f := range dashboards {
		d := readDashboard(t, f)
		for _, pn := range d.Panels {
			for _, tg := range pn.Targets {
				for _, m := range metricRE.FindAllString(tg.Expr, -1) {
					base := m
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						base = strings.TrimSuffix(base, suf)
					}
					if !have[m] && !have[base] {
						missing = append(missing, fmt.Sprintf("%s: panel %q: %s", filepath.Base(f), pn.Title, m))
					}
				}
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("dashboard metrics no service exports:\n%s", strings.Join(missing, "\n"))
	}
	t.Logf("dashboards checked against %d exported metric families", len(have))
}

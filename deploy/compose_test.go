package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := LoadCompose(ctx, repoRoot, devSecrets(t), profiles...)
	if err != nil {
		t.Fatalf("compose-go: %v", err)
	}
	return p
}

// composeRealm are the Realmstream containers of compose.yml and the service
// each one runs.
var composeRealm = map[string]string{
	"gateway": "gateway", "world-1": "world", "world-2": "world", "persist": "persist", "monitor": "monitor",
}

func TestComposeStack(t *testing.T) {
	p := loadCompose(t, "bots")
	want := []string{"alertmanager", "bots", "gateway", "grafana", "healthcheck-tools", "jaeger", "monitor", "nats", "nats-exporter", "otel-collector",
		"persist", "pg-shard0", "pg-shard1", "prometheus", "redis", "world-1", "world-2"}
	if got := SortedNames(p); !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	for _, m := range composeProblems(p) {
		t.Error(m)
	}
	// Without the profile there are no bots.
	if _, ok := loadCompose(t).Services["bots"]; ok {
		t.Error("bots start without --profile bots")
	}
}

// TestComposeChecksCatchFixtures proves the compose checks can fail: each
// fixture breaks one rule in the loaded project.
func TestComposeChecksCatchFixtures(t *testing.T) {
	edit := func(name string, f func(*types.ServiceConfig)) func(*types.Project) {
		return func(p *types.Project) {
			s := p.Services[name]
			f(&s)
			p.Services[name] = s
		}
	}
	for name, fx := range map[string]struct {
		break_ func(*types.Project)
		want   string
	}{
		"no healthcheck":       {edit("redis", func(s *types.ServiceConfig) { s.HealthCheck = nil }), "redis: no healthcheck"},
		"disabled healthcheck": {edit("jaeger", func(s *types.ServiceConfig) { s.HealthCheck.Disable = true }), "jaeger: no healthcheck"},
		"no restart":           {edit("persist", func(s *types.ServiceConfig) { s.Restart = "" }), "persist: no restart policy"},
		"latest image":         {edit("grafana", func(s *types.ServiceConfig) { s.Image = "grafana/grafana:latest" }), "grafana: image"},
		"started, not healthy": {edit("gateway", func(s *types.ServiceConfig) {
			s.DependsOn["nats"] = types.ServiceDependency{Condition: types.ServiceConditionStarted}
		}), "gateway depends on nats"},
		"no dependency":  {edit("persist", func(s *types.ServiceConfig) { delete(s.DependsOn, "pg-shard1") }), "persist does not wait for pg-shard1"},
		"bind mount":     {edit("nats", func(s *types.ServiceConfig) { s.Volumes[1].Type = types.VolumeTypeBind }), "nats: /data is not a named volume"},
		"root":           {edit("world-2", func(s *types.ServiceConfig) { s.User = "" }), "world-2: want user 65532:65532"},
		"short grace":    {edit("world-1", func(s *types.ServiceConfig) { d := types.Duration(10 * time.Second); s.StopGracePeriod = &d }), "world-1: stop_grace_period"},
		"no nats url":    {edit("monitor", func(s *types.ServiceConfig) { delete(s.Environment, "REALM_NATS_URL") }), "monitor: REALM_NATS_URL is not set"},
		"wrong port":     {edit("persist", func(s *types.ServiceConfig) { v := ":9999"; s.Environment["REALM_HTTP_ADDR"] = &v }), "persist: REALM_HTTP_ADDR"},
		"not in profile": {edit("bots", func(s *types.ServiceConfig) { s.Profiles = nil }), "bots is not in the bots profile"},
	} {
		t.Run(name, func(t *testing.T) {
			p := loadCompose(t, "bots")
			fx.break_(p)
			got := strings.Join(composeProblems(p), "\n")
			if !strings.Contains(got, fx.want) {
				t.Fatalf("not caught (want %q), got:\n%s", fx.want, got)
			}
		})
	}
}

// composeProblems checks a loaded compose project: healthchecks, restart
// policies, pinned images, health-gated dependencies, named volumes for
// state, the Realmstream containers' hardening and settings, the bots profile.
func composeProblems(p *types.Project) []string {
	var out []string
	add := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	for _, name := range SortedNames(p) {
		s := p.Services[name]
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 {
			add("%s: no healthcheck", name)
		}
		if s.Restart == "" || s.Restart == "no" {
			add("%s: no restart policy", name)
		}
		if pr := ImageRefProblem(s.Image); pr != "" {
			add("%s: image %q: %s", name, s.Image, pr)
		}
		for dep, d := range s.DependsOn {
			if dep == "otel-collector" {
				// Tracing is never a hard start dependency: a service starts
				// (and drops spans) without the collector.
				if d.Required {
					add("%s: otel-collector is a required dependency: a tracing outage would stop the service from starting", name)
				}
				continue
			}
			if d.Condition != types.ServiceConditionHealthy && d.Condition != types.ServiceConditionCompletedSuccessfully {
				add("%s depends on %s with condition %q: want service_healthy", name, dep, d.Condition)
			}
		}
		if svc := RealmServiceOf(s); svc != "" {
			out = append(out, realmContainerProblems(name, svc, s)...)
		}
	}
	// Every Realmstream container waits for NATS, and each for its own store.
	for name, needs := range map[string][]string{
		"gateway": {"nats"}, "world-1": {"nats", "redis"}, "world-2": {"nats", "redis"},
		"persist": {"nats", "pg-shard0", "pg-shard1"}, "monitor": {"nats"},
		"grafana": {"prometheus"}, "otel-collector": {"jaeger"},
	} {
		for _, n := range needs {
			if _, ok := p.Services[name].DependsOn[n]; !ok {
				add("%s does not wait for %s", name, n)
			}
		}
	}
	// State lives in named volumes.
	for name, target := range map[string]string{
		"nats": "/data", "redis": "/data", "pg-shard0": "/var/lib/postgresql/data", "pg-shard1": "/var/lib/postgresql/data",
		"prometheus": "/prometheus", "grafana": "/var/lib/grafana",
	} {
		ok := false
		for _, v := range p.Services[name].Volumes {
			if v.Type == types.VolumeTypeVolume && v.Target == target {
				if _, declared := p.Volumes[v.Source]; declared {
					ok = true
				}
			}
		}
		if !ok {
			add("%s: %s is not a named volume", name, target)
		}
	}
	if a, b := p.Services["pg-shard0"].Volumes[0].Source, p.Services["pg-shard1"].Volumes[0].Source; a == b {
		add("the two Postgres shards share volume %s", a)
	}
	if !slices.Contains(p.Services["bots"].Profiles, "bots") {
		add("bots is not in the bots profile")
	}
	return out
}

func realmContainerProblems(name, svc string, s types.ServiceConfig) []string {
	var out []string
	add := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	if s.Build == nil || filepath.Base(s.Build.Dockerfile) != "Dockerfile" || s.Build.Context != repoRoot {
		add("%s: not built from the root Dockerfile", name)
	}
	if !strings.Contains(s.Image, "/"+svc+":") {
		add("%s: image %s does not name service %s", name, s.Image, svc)
	}
	if s.User != "65532:65532" || !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
		add("%s: want user 65532:65532, read_only, cap_drop ALL, no-new-privileges; got %q %v %v %v", name, s.User, s.ReadOnly, s.CapDrop, s.SecurityOpt)
	}
	if name == "bots" {
		return out
	}
	env := ComposeEnv(s)
	for _, k := range []string{"REALM_NATS_URL", "REALM_HTTP_ADDR", "REALM_INSTANCE_ID", "REALM_LOG_FORMAT", "REALM_SHUTDOWN_TIMEOUT"} {
		if env[k] == "" {
			add("%s: %s is not set", name, k)
		}
	}
	if want := map[string]string{"gateway": ":8080", "world": ":8081", "persist": ":8082", "monitor": ":8083"}[svc]; env["REALM_HTTP_ADDR"] != want {
		add("%s: REALM_HTTP_ADDR=%q, want %q", name, env["REALM_HTTP_ADDR"], want)
	}
	st, err := time.ParseDuration(env["REALM_SHUTDOWN_TIMEOUT"])
	if err != nil {
		add("%s: REALM_SHUTDOWN_TIMEOUT: %v", name, err)
	} else if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) < st+5*time.Second {
		add("%s: stop_grace_period must exceed REALM_SHUTDOWN_TIMEOUT (%v) by 5s, or docker kills the drain", name, st)
	}
	return out
}

func TestComposeInstancesAreDistinct(t *testing.T) {
	p := loadCompose(t)
	ids := map[string]string{}
	for name := range composeRealm {
		id := ComposeEnv(p.Services[name])["REALM_INSTANCE_ID"]
		if other, dup := ids[id]; dup {
			t.Errorf("%s and %s share REALM_INSTANCE_ID %q (heartbeats and zone leases would collide)", name, other, id)
		}
		ids[id] = name
	}
}

// TestComposeObservability: Prometheus scrapes every Realmstream container on
// its ops port, the services export traces to the collector's OTLP/HTTP
// port, the collector exports to Jaeger, Grafana has its data sources and
// dashboards for the game and the databases.
func TestComposeObservability(t *testing.T) {
	p := loadCompose(t)
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	readYAML(t, "deploy/prometheus/prometheus.yml", &prom)
	targets := map[string]string{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = sc.JobName
			}
		}
	}
	for name, svc := range composeRealm {
		_, port := hostPort(ComposeEnv(p.Services[name])["REALM_HTTP_ADDR"])
		if job, ok := targets[name+":"+port]; !ok || job != svc {
			t.Errorf("prometheus does not scrape %s:%s as job %s (targets %v)", name, port, svc, targets)
		}
	}

	for target, job := range map[string]string{"nats-exporter:7777": "nats", "otel-collector:8888": "otel-collector"} {
		if targets[target] != job {
			t.Errorf("prometheus does not scrape %s as job %s", target, job)
		}
	}

	var col struct {
		Receivers struct {
			OTLP struct {
				Protocols struct {
					HTTP struct{ Endpoint string } `json:"http"`
					GRPC struct{ Endpoint string } `json:"grpc"`
				} `json:"protocols"`
			} `json:"otlp"`
		} `json:"receivers"`
		Exporters map[string]struct {
			Endpoint string `json:"endpoint"`
		} `json:"exporters"`
		Service struct {
			Pipelines map[string]struct {
				Receivers, Processors, Exporters []string
			} `json:"pipelines"`
		} `json:"service"`
	}
	readYAML(t, "deploy/otel/collector.yaml", &col)
	_, httpPort := hostPort(col.Receivers.OTLP.Protocols.HTTP.Endpoint)
	_, grpcPort := hostPort(col.Receivers.OTLP.Protocols.GRPC.Endpoint)
	for name := range composeRealm {
		ep := ComposeEnv(p.Services[name])["REALM_OTLP_ENDPOINT"]
		host, port := hostPort(ep)
		if host != "otel-collector" || (port != httpPort && port != grpcPort) {
			t.Errorf("%s: REALM_OTLP_ENDPOINT=%q is not an OTLP port of the collector (%s, %s)", name, ep, httpPort, grpcPort)
		}
	}
	tr, ok := col.Service.Pipelines["traces"]
	if !ok || !slices.Contains(tr.Receivers, "otlp") || len(tr.Exporters) == 0 {
		t.Fatalf("collector has no otlp traces pipeline: %+v", col.Service.Pipelines)
	}
	for _, e := range tr.Exporters {
		if host, _ := hostPort(col.Exporters[e].Endpoint); host != "jaeger" {
			t.Errorf("collector exporter %s goes to %q, want jaeger", e, col.Exporters[e].Endpoint)
		}
	}

	var ds struct {
		Datasources []struct{ Name, UID, Type, URL string } `json:"datasources"`
	}
	readYAML(t, "deploy/grafana/provisioning/datasources/datasources.yml", &ds)
	uids := map[string]string{}
	for _, d := range ds.Datasources {
		uids[d.UID] = d.Type
		if host, _ := hostPort(d.URL); p.Services[host].Name == "" {
			t.Errorf("grafana data source %s points at %s, not a compose service", d.Name, d.URL)
		}
	}
	if uids["prometheus"] != "prometheus" {
		t.Errorf("no prometheus data source with uid prometheus: %v", uids)
	}
	dashboards, _ := filepath.Glob(filepath.Join(repoRoot, "deploy/grafana/dashboards/*.json"))
	titles := map[string]bool{}
	for _, f := range dashboards {
		d := readDashboard(t, f)
		titles[d.Title] = true
		if len(d.Panels) == 0 {
			t.Errorf("%s: no panels", f)
		}
		for _, pn := range d.Panels {
			if pn.Type == "row" || pn.Type == "text" {
				continue
			}
			if uids[pn.Datasource.UID] == "" {
				t.Errorf("%s panel %q: data source uid %q is not provisioned", filepath.Base(f), pn.Title, pn.Datasource.UID)
			}
			if len(pn.Targets) == 0 {
				t.Errorf("%s panel %q: no queries", filepath.Base(f), pn.Title)
			}
			for _, tg := range pn.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s panel %q: empty query", filepath.Base(f), pn.Title)
				}
			}
		}
	}
	for _, want := range []string{"Realmstream / Game", "Realmstream / Databases"} {
		if !titles[want] {
			t.Errorf("no dashboard %q (have %v)", want, titles)
		}
	}
	conf, err := os.ReadFile(filepath.Join(repoRoot, "deploy/compose/nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"jetstream", "store_dir: /data", "sync_interval"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("nats.conf lacks %q", want)
		}
	}
}

// Dashboard is the part of a Grafana dashboard the tests read.
type Dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T, path string) Dashboard {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

func readYAML(t *testing.T, rel string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// TestComposeAdminPortsLoopback: the ports without authentication (NATS,
// Prometheus, Grafana, the monitor's dashboard, Jaeger, the gateway's ops
// port) are published on 127.0.0.1 only, never on every interface of the host.
func TestComposeAdminPortsLoopback(t *testing.T) {
	p := loadCompose(t, "bots")
	for _, name := range []string{"nats", "prometheus", "grafana", "monitor", "jaeger", "gateway"} {
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		for _, port := range s.Ports {
			if name == "gateway" && (port.Target == 7000 || port.Target == 7001) {
				continue // the game ports are public by design
			}
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %d on %q, want 127.0.0.1", name, port.Target, port.HostIP)
			}
		}
	}
	if args := p.Services["prometheus"].Command; strings.Contains(strings.Join(args, " "), "--web.enable-lifecycle") {
		t.Error("prometheus runs with --web.enable-lifecycle (anyone reaching it can shut it down)")
	}
}

package deploy

import (
	"context"
	"os/exec"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/realmstream/realmstream/libs/pgtest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestComposeOnlyGamePortsPublic: no container publishes anything beyond
// loopback except the gateway's game ports (issue 17 #11).
func TestComposeOnlyGamePortsPublic(t *testing.T) {
	p := loadCompose(t, "bots")
	for name, s := range p.Services {
		for _, port := range s.Ports {
			if name == "gateway" && (port.Target == 7000 || port.Target == 7001) {
				continue
			}
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %d on %q, want 127.0.0.1", name, port.Target, port.HostIP)
			}
		}
	}
}

// TestComposeAlertmanager: Prometheus sends its alerts to an Alertmanager
// service of the stack, which has a healthcheck and a config with a route.
func TestComposeAlertmanager(t *testing.T) {
	p := loadCompose(t)
	am, ok := p.Services["alertmanager"]
	if !ok {
		t.Fatal("no alertmanager service")
	}
	if am.HealthCheck == nil || len(am.HealthCheck.Test) == 0 {
		t.Error("alertmanager has no healthcheck")
	}
	var prom struct {
		Alerting struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `json:"targets"`
				} `json:"static_configs"`
			} `json:"alertmanagers"`
		} `json:"alerting"`
	}
	readYAML(t, "deploy/prometheus/prometheus.yml", &prom)
	found := false
	for _, a := range prom.Alerting.Alertmanagers {
		for _, sc := range a.StaticConfigs {
			for _, tg := range sc.Targets {
				found = found || tg == "alertmanager:9093"
			}
		}
	}
	if !found {
		t.Error("prometheus.yml sends alerts nowhere (want alertmanager:9093)")
	}
	var cfg struct {
		Route struct {
			Receiver string `json:"receiver"`
		} `json:"route"`
		Receivers []struct {
			Name string `json:"name"`
		} `json:"receivers"`
	}
	readYAML(t, "deploy/alertmanager/alertmanager.yml", &cfg)
	ok = false
	for _, r := range cfg.Receivers {
		ok = ok || r.Name == cfg.Route.Receiver
	}
	if cfg.Route.Receiver == "" || !ok {
		t.Errorf("alertmanager route receiver %q is not defined", cfg.Route.Receiver)
	}
}

// TestComposePgStatStatementsCreated: each Postgres shard that preloads
// pg_stat_statements also runs CREATE EXTENSION at initialisation (the
// preload alone leaves the view missing: the slow-query figures were empty).
func TestComposePgStatStatementsCreated(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"pg-shard0", "pg-shard1"} {
		s := p.Services[name]
		if !strings.Contains(strings.Join(s.Command, " "), "pg_stat_statements") {
			t.Errorf("%s does not preload pg_stat_statements", name)
		}
		ok := false
		for _, v := range s.Volumes {
			if strings.HasPrefix(v.Target, "/docker-entrypoint-initdb.d/") {
				b, err := os.ReadFile(v.Source)
				if err != nil {
					b, err = os.ReadFile(filepath.Join(repoRoot, v.Source))
				}
				if err == nil && strings.Contains(string(b), "CREATE EXTENSION IF NOT EXISTS pg_stat_statements") {
					ok = true
				}
			}
		}
		if !ok {
			t.Errorf("%s: no init script creates the pg_stat_statements extension", name)
		}
	}
}

// TestPgInitScriptRuns runs the init script on a real, fresh Postgres
// database: the extension is created and its view answers.
func TestPgInitScriptRuns(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/compose/pg-init.sql"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, string(b)); err != nil {
		t.Fatalf("pg-init.sql: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("pg_stat_statements not created: %d %v", n, err)
	}
}

// devSecrets runs scripts/dev-secrets.sh as a developer does and returns the
// file it wrote.
func devSecrets(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), ".env.secrets")
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts/dev-secrets.sh"), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dev-secrets.sh: %v\n%s", err, b)
	}
	return out
}

// TestNoCommittedDevPasswords: the committed .env holds no secret; compose
// refuses to start without the generated file, and the generated secrets are
// random and long enough (the token key at least 32 bytes).
func TestNoCommittedDevPasswords(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, ".env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if ok && !strings.HasPrefix(k, "#") && v != "" && regexp.MustCompile(`PASSWORD|TOKEN_KEY|SECRET`).MatchString(k) {
			t.Errorf(".env commits a secret: %s", k)
		}
	}
	ctx := context.Background()
	if _, err := LoadCompose(ctx, repoRoot, ""); err == nil || !strings.Contains(err.Error(), "dev-secrets.sh") {
		t.Errorf("compose loads without the secrets file (err %v)", err)
	}
	a, b2 := devSecrets(t), devSecrets(t)
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b2)
	if string(x) == string(y) {
		t.Error("dev-secrets.sh wrote the same secrets twice")
	}
	if m := regexp.MustCompile(`GATEWAY_TOKEN_KEY=([0-9a-f]+)`).FindSubmatch(x); m == nil || len(m[1]) < 64 {
		t.Errorf("token key shorter than 32 bytes: %q", m)
	}
	if fi, err := os.Stat(a); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets file mode %v, want 0600", fi.Mode().Perm())
	}
}

package monitor

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/libs/waitfor"

	"github.com/realmstream/realmstream/services/monitor/internal/dashboard"
)

// TestRestart: a restarted monitor reloads the window from the stream (the
// dashboard has history before any new event), resumes its durable consumer,
// does not announce an alert that is still firing a second time, and resolves
// it once when it clears.
func TestRestart(t *testing.T) {
	srv, nc, js := natstest.StartWithStreams(t)
	alerts := collectAlerts(t, nc)
	f := newFeeder(t, js, nc)
	f.set("pg0", func(s *schema.DBStats) { s.CacheHitRatio = 0.5 })
	cfg := testConfig(t, srv.URL)
	cfg.Zones = "none"

	m1 := start(t, cfg)
	waitfor.True(t, 10*time.Second, func() error { return alerts.has("cache_hit_ratio_low", "shard=pg0", "firing") })
	m1.stop(t)

	f.silence("pg0") // nothing new arrives while the second monitor starts
	m2 := start(t, cfg)
	body, err := httpGet(m2.svc.HTTPAddr(), "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	var v dashboard.View
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Shards) != 1 || len(v.Shards[0].Series["cache_hit_ratio"]) < 3 {
		t.Fatalf("window not restored: %s", body[:min(len(body), 400)])
	}
	f.set("pg0", func(s *schema.DBStats) { s.CacheHitRatio = 0.5 })
	// Still firing: several evaluations pass without a second announcement.
	waitfor.True(t, 10*time.Second, func() error {
		a := m2.svc.ActiveAlerts()
		if len(a) != 1 || a[0].State != "firing" {
			return fmt.Errorf("active alerts %+v, want the restored firing one", a)
		}
		return nil
	})
	f.set("pg0", nil)
	waitfor.True(t, 10*time.Second, func() error { return alerts.has("cache_hit_ratio_low", "shard=pg0", "resolved") })
	if n, _ := alerts.find("cache_hit_ratio_low", "shard=pg0", "firing"); len(n) != 1 {
		t.Errorf("fired %d times across the restart, want 1", len(n))
	}
	if n, _ := alerts.find("cache_hit_ratio_low", "shard=pg0", "resolved"); len(n) != 1 {
		t.Errorf("resolved %d times, want 1", len(n))
	}
}

// TestBadRulesFileRefusesToStart: New fails with every problem, each naming
// the rule and what is wrong, and nothing is started (no port is bound).
func TestBadRulesFileRefusesToStart(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.RulesPath = writeRules(t, `rules:
  - name: cache_hit_ratio_low
    expr: cache_hit_ratoi < 0.9
    severity: warning
    message: x
  - name: lag
    expr: consumer_lag > 10
    for: two minutes
    severity: urgent
    message: "{{.lagg}}"
`)
	svc, err := New(cfg, slog.Default())
	if err == nil || svc != nil {
		t.Fatal("bad rules accepted")
	}
	for _, want := range []string{
		`rule "cache_hit_ratio_low" (#1): expr: unknown name cache_hit_ratoi`,
		`rule "lag" (#2): for "two minutes": not a duration`,
		`rule "lag" (#2): severity "urgent": want info, warning or critical`,
		`rule "lag" (#2): message:`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	cfg.RulesPath = "/nonexistent/rules.yaml"
	if _, err := New(cfg, slog.Default()); err == nil || !strings.Contains(err.Error(), "/nonexistent/rules.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.WebhookURL = "ftp://x"
	c.EvalInterval = 0
	c.Zones = "z0_0,bad zone"
	err := c.Validate()
	for _, want := range []string{"--webhook-url", "--eval-interval", `"bad zone"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate lacks %s: %v", want, err)
		}
	}
}

package monitor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
)

// chromiumPath is Debian's chromium package (apt-get install -y chromium).
const chromiumPath = "/usr/bin/chromium"

// artifactsDir is where browser tests leave screenshots: $REALM_TEST_ARTIFACTS,
// or <tmp>/realmstream-test-artifacts.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("REALM_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "realmstream-test-artifacts")
	}
	dir = filepath.Join(dir, "monitor")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Chromium for the test. The first action runs
// without a deadline (chromedp ties the browser's life to that call's
// context); each step then gets its own timeout through step.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless Chromium not found at %s: install it with 'apt-get install -y chromium'", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// Without these Chromium waits on the network, which this machine does not have.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1100),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelB(); cancelA() })
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("chromium did not start within 60s")
	}
	return ctx
}

// step runs one action with a deadline.
func step[T any](t *testing.T, ctx context.Context, timeout time.Duration, what string, a chromedp.Action[T]) T {
	t.Helper()
	t0 := time.Now()
	defer func() { t.Logf("browser: %s took %v", what, time.Since(t0).Round(time.Millisecond)) }()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// TestDashboardInBrowser opens the dashboard of a running monitor in headless
// Chromium, waits for live data (shards, partitions, zones and owners,
// players), makes an alert fire and waits for it to appear without a page
// reload, and saves a screenshot.
func TestDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	srv, nc, js := natstest.StartWithStreams(t)
	f := newFeeder(t, js, nc)
	f.set("pg0", nil)
	f.set("pg1", func(s *schema.DBStats) { s.CommitsPerSec = 60 + float64(time.Now().UnixMilli()%20) })
	f.heartbeat(worldHB("world-a", "z0_0", "z1_0", "z2_0", "z0_1", "z1_1"))
	f.heartbeat(worldHB("world-b", "z2_1", "z0_2", "z1_2"))
	f.heartbeat(&schema.Heartbeat{Service: "gateway", InstanceId: "gateway-1", Ready: true, Connections: 42})
	f.heartbeat(&schema.Heartbeat{Service: "persist", InstanceId: "persist-1", Ready: true})
	cfg := testConfig(t, srv.URL)
	cfg.Zones = "" // the default 3x3 grid: z2_2 has no owner
	m := start(t, cfg)
	url := "http://" + m.svc.HTTPAddr() + "/"

	step(t, ctx, 20*time.Second, "open the dashboard", chromedp.Navigate(url))
	// Poll the page (the DOM is rebuilt on every update, so query afresh each time).
	// The zone grid is drawn before the first heartbeats name the owners, so
	// wait for an owner, not for the zone's element alone.
	step(t, ctx, 20*time.Second, "live data", chromedp.Poll[bool](`document.querySelector('.live.on') !== null &&
		document.querySelector('.shard[data-shard="pg0"]') !== null && document.querySelector('.shard[data-shard="pg1"]') !== null &&
		document.querySelector('.zone[data-zone="z1_2"]') !== null &&
		document.querySelector('.zone[data-zone="z1_2"]').textContent.includes('world-b') &&
		document.querySelector('.zone[data-zone="z0_0"]').textContent.includes('world-a')`))
	first := step(t, ctx, 5*time.Second, "timing", chromedp.Evaluate[float64](`window.__firstState || -1`))
	t.Logf("first live state rendered %.0fms after navigation start", first)
	step(t, ctx, 5*time.Second, "mark the document", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`))
	shardsText := step(t, ctx, 5*time.Second, "read shards", chromedp.Text(chromedp.CSS(`#shards`)))
	zonesText := step(t, ctx, 5*time.Second, "read zones", chromedp.Text(chromedp.CSS(`#zones`)))
	for _, want := range []string{"pg0", "pg1", "postgres", "events_default", "events_20261126", "cache hit", "consumer lag"} {
		if !strings.Contains(shardsText, want) {
			t.Errorf("shards section lacks %q:\n%s", want, shardsText)
		}
	}
	for _, want := range []string{"z0_0", "world-a", "z1_2", "world-b", "z2_2", "no owner"} {
		if !strings.Contains(zonesText, want) {
			t.Errorf("zones section lacks %q:\n%s", want, zonesText)
		}
	}
	// world-a: 5+6+7+8+9 players, world-b: 5+6+7 (see worldHB).
	step(t, ctx, 10*time.Second, "players online", chromedp.Poll[bool](`document.getElementById("players").textContent === "53"`))

	// Live: the page keeps updating from server-sent events and the charts draw lines.
	updates := step(t, ctx, 5*time.Second, "count updates", chromedp.Evaluate[int](`Number(document.body.dataset.updates)`))
	step(t, ctx, 10*time.Second, "live updates", chromedp.Poll[bool](fmt.Sprintf(
		`Number(document.body.dataset.updates) > %d + 3 && document.querySelectorAll(".shard svg polyline").length >= 12`, updates)))

	// An alert fires: it appears on the page, with no reload.
	f.set("pg1", func(s *schema.DBStats) { s.CacheHitRatio = 0.61 })
	step(t, ctx, 15*time.Second, "alerts shown", chromedp.Poll[bool](
		`document.querySelector('.alert[data-rule="cache_hit_ratio_low"][data-state="firing"]') !== null &&
		document.querySelector('.alert[data-rule="zone_without_owner"][data-state="firing"]') !== null`))
	alertText := step(t, ctx, 5*time.Second, "read alerts", chromedp.Text(chromedp.CSS(`#alerts`)))
	if !step(t, ctx, 5*time.Second, "same document", chromedp.Evaluate[bool](`window.__sameDocument === true`)) {
		t.Error("the page reloaded")
	}
	for _, want := range []string{"cache_hit_ratio_low", "shard pg1: cache hit ratio 61.0% is below 90%", "zone z2_2 has no owner"} {
		if !strings.Contains(alertText, want) {
			t.Errorf("alerts section lacks %q:\n%s", want, alertText)
		}
	}
	png := step(t, ctx, 20*time.Second, "screenshot", chromedp.FullScreenshot(100))
	out := filepath.Join(artifactsDir(t), "dashboard.png")
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
}

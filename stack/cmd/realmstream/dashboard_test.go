package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/realmstream/realmstream/libs/waitfor"
)

// TestDashboardTimelineInBrowser opens the monitor's dashboard of a real
// one-process stack (bots playing) in headless Chromium: the first paint
// already shows the current state, the traffic figures come from the
// services' heartbeats, and the zone timeline replays the busiest zone
// through the world's time travel while the slider moves. It saves
// docs-style screenshots into $REALM_TEST_ARTIFACTS (or a temp folder).
func TestDashboardTimelineInBrowser(t *testing.T) {
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("headless Chromium not found at %s: install it with 'apt-get install -y chromium' (bash .ci/run does)", chromium)
	}
	ports := freePorts(t, 2)
	base := freeBase(t)
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runStack(ctx, []string{"--data-dir", t.TempDir(), "--nats-port", "-1",
			"--tcp-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--ws-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]),
			"--http-base", strconv.Itoa(base), "--bots", "12", "--bots-duration", "40s", "--log-level", "warn"}, out, io.Discard)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("stack did not stop")
		}
	}()
	waitStack(t, 90*time.Second, done, out, func() error {
		if !strings.Contains(out.String(), "Realmstream is running") {
			return fmt.Errorf("no banner yet")
		}
		return nil
	})

	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(chromium), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 1600)}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", base+3)
	// The figures are windowed over heartbeat intervals: let the bots play a
	// few of them before looking (they play for 40s).
	time.Sleep(8 * time.Second)
	browse(t, bctx, 30*time.Second, "open the dashboard", chromedp.Navigate(url))
	if initial := browse(t, bctx, 5*time.Second, "first paint", chromedp.Evaluate[string](`document.body.dataset.initial || ""`)); initial != "1" {
		t.Fatal("the first paint did not render the inlined state")
	}
	waitfor.True(t, 30*time.Second, func() error {
		state := browse(t, bctx, 5*time.Second, "read traffic", chromedp.Evaluate[string](`document.getElementById("cps").textContent + " cps, lag shown: " +
			(document.querySelector('.zone .lag') !== null) + ", updates " + (document.body.dataset.updates || 0)`))
		if strings.HasPrefix(state, "–") || strings.HasPrefix(state, "0 ") || !strings.Contains(state, "lag shown: true") {
			return fmt.Errorf("dashboard: %s", state)
		}
		return nil
	})
	cps := browse(t, bctx, 5*time.Second, "read traffic", chromedp.Text(chromedp.CSS(`#cps`)))
	t.Logf("dashboard shows %s commands/s", cps)
	browse(t, bctx, 30*time.Second, "timeline drawn", chromedp.Poll[bool](`Number(document.body.dataset.timeline || 0) >= 1 &&
		Number(document.getElementById("tl-canvas").dataset.players) > 0`))
	maxSeq := browse(t, bctx, 5*time.Second, "timeline range", chromedp.Evaluate[int](`Number(document.getElementById("tl-seq").max)`))
	endPlayers := browse(t, bctx, 5*time.Second, "players at the end", chromedp.Evaluate[int](`Number(document.getElementById("tl-canvas").dataset.players)`))
	if maxSeq < 10 {
		t.Fatalf("timeline range up to seq %d only", maxSeq)
	}
	art := os.Getenv("REALM_TEST_ARTIFACTS")
	if art == "" {
		art = filepath.Join(os.TempDir(), "realmstream-test-artifacts")
	}
	art = filepath.Join(art, "stack")
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	png := browse(t, bctx, 20*time.Second, "screenshot", chromedp.FullScreenshot(90))
	_ = os.WriteFile(filepath.Join(art, "dashboard.png"), png, 0o644)

	// Scrub back to the zone's first message: the state there is the
	// claim's, with no players yet.
	browse(t, bctx, 5*time.Second, "scrub to the start", chromedp.Evaluate[bool](
		`(() => { const r = document.getElementById("tl-seq"); r.value = "1"; r.dispatchEvent(new Event("input")); return true })()`))
	browse(t, bctx, 30*time.Second, "state at the start", chromedp.Poll[bool](`Number(document.getElementById("tl-canvas").dataset.seq) <= 1`))
	if early := browse(t, bctx, 5*time.Second, "players at the start", chromedp.Evaluate[int](`Number(document.getElementById("tl-canvas").dataset.players)`)); early != 0 {
		t.Fatalf("at the zone's first message the timeline shows %d players (at the end %d): scrubbing did not travel back", early, endPlayers)
	}
	// Play: the slider advances and every position is drawn from time travel.
	browse(t, bctx, 10*time.Second, "press play", chromedp.Click(chromedp.CSS(`#tl-play`)))
	browse(t, bctx, 40*time.Second, "played forward", chromedp.Poll[bool](fmt.Sprintf(
		`Number(document.getElementById("tl-canvas").dataset.seq) >= %d && Number(document.getElementById("tl-canvas").dataset.players) > 0`, maxSeq/2)))
	label := browse(t, bctx, 5*time.Second, "timeline label", chromedp.Text(chromedp.CSS(`#tl-label`)))
	if !strings.Contains(label, "replayed") || !strings.Contains(label, "players") {
		t.Fatalf("timeline label %q", label)
	}
	png = browse(t, bctx, 20*time.Second, "timeline screenshot", chromedp.Screenshot(chromedp.CSS(`#timeline-section`)))
	_ = os.WriteFile(filepath.Join(art, "dashboard-timeline.png"), png, 0o644)
	t.Logf("screenshots in %s; timeline: %s", art, label)
}

// browse runs one browser action with a deadline.
func browse[T any](t *testing.T, ctx context.Context, timeout time.Duration, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

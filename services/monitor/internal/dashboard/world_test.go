package dashboard

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/realmstream/realmstream/services/monitor/internal/rules"
)

// TestFirstPaintHasState: the page itself carries the latest view, so the
// first paint is current; a hostile string in the view cannot end the script.
func TestFirstPaintHasState(t *testing.T) {
	h := NewHub()
	mux := http.NewServeMux()
	Register(mux, h, make(chan struct{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func() string {
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if page := get(); strings.Contains(page, `id="initial-state"`) {
		t.Fatal("state inlined before any view exists")
	}
	h.Publish(View{Monitor: "m-first", Alerts: []rules.Active{{Rule: "r", Message: "</script><script>alert(1)</script>"}}})
	page := get()
	if !strings.Contains(page, `<script id="initial-state" type="application/json">`) || !strings.Contains(page, `"monitor":"m-first"`) {
		t.Fatalf("page without the latest view:\n%s", page)
	}
	if strings.Count(page, "</script>") != 2 { // the state's own and app.js's
		t.Fatalf("the view's text closed a script element:\n%s", page)
	}
}

func TestTrafficSumsLiveInstances(t *testing.T) {
	v := View{}
	traffic(&v, map[string]map[string]float64{
		"gateway/g1": {"commands_per_sec": 100, "busy_per_sec": 2, "errors_per_sec.RATE_LIMITED": 3},
		"gateway/g2": {"commands_per_sec": 50, "errors_per_sec.RATE_LIMITED": 1, "errors_per_sec.BAD": 0},
		"world/w1":   {"events_per_sec": 140, "tick_p99_ms": 12},
		"world/w2":   {"events_per_sec": 10, "tick_p99_ms": 40},
	}, map[string]string{"gateway/g1": "gateway", "gateway/g2": "gateway", "world/w1": "world", "world/w2": "world"})
	tr := v.Traffic
	if tr.CommandsPerSec != 150 || tr.EventsPerSec != 150 || tr.TickP99Ms != 40 || tr.BusyPerSec != 2 ||
		tr.ErrorsPerSec["RATE_LIMITED"] != 4 || len(tr.ErrorsPerSec) != 1 {
		t.Fatalf("traffic %+v", tr)
	}
}

func TestZoneStateRequests(t *testing.T) {
	var asked []string
	mux := http.NewServeMux()
	RegisterTimeline(mux, func(_ context.Context, subj string, data []byte) ([]byte, error) {
		asked = append(asked, subj+" "+string(data))
		if strings.Contains(string(data), "z9_9") {
			return nil, errors.New("nats: no responders available for request")
		}
		return []byte(`{"zone":"z1_1","at_seq":5}`), nil
	}, time.Second)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for q, want := range map[string]int{
		"?zone=z1_1&at_seq=5":         200,
		"?zone=z1_1":                  200,
		"?zone=z1_1&at_ns=1700000000": 200,
		"?zone=":                      400,
		"?zone=a%20b":                 400,
		"?zone=z1_1&at_seq=-1":        400,
		"?zone=z1_1&at_seq=x":         400,
		"?zone=z9_9":                  503,
	} {
		resp, err := http.Get(srv.URL + "/api/zone_state" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", q, resp.StatusCode, want)
		}
	}
	if len(asked) != 4 || !strings.Contains(strings.Join(asked, "|"), `world.query.state {"at_seq":5,"zone":"z1_1"}`) {
		t.Fatalf("requests %q", asked)
	}
}

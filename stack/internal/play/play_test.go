package play

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result()
}

// TestServesEmbeddedDemo checks that the committed bundle is embedded and
// served with the right types, and that config.json names the gateway port.
func TestServesEmbeddedDemo(t *testing.T) {
	h := Handler(Config{WSPort: 7123})
	for path, want := range map[string]string{"/play/": "text/html", "/play/app.js": "javascript", "/play/app.css": "text/css"} {
		res := get(t, h, path)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), want) || len(body) == 0 {
			t.Errorf("GET %s: %d %q, %d bytes", path, res.StatusCode, res.Header.Get("Content-Type"), len(body))
		}
	}
	if body, _ := io.ReadAll(get(t, h, "/play/").Body); !strings.Contains(string(body), `src="app.js"`) {
		t.Errorf("index.html does not load app.js")
	}
	var cfg map[string]any
	if err := json.NewDecoder(get(t, h, "/play/config.json").Body).Decode(&cfg); err != nil || cfg["ws_port"] != float64(7123) {
		t.Errorf("config.json = %v, %v", cfg, err)
	}
	for _, p := range []string{"/", "/play"} {
		if res := get(t, h, p); res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/play/" {
			t.Errorf("GET %s: %d -> %q", p, res.StatusCode, res.Header.Get("Location"))
		}
	}
	if res := get(t, h, "/play/nope.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("missing file: %d", res.StatusCode)
	}
}

// Package play serves the browser demo (a canvas game client built on the
// TypeScript SDK in clients/ts) from files embedded in the binary, so
// `realmstream run` needs no Node.js at run time. The bundle in dist/ is
// built by `make demo` (clients/ts/scripts/build-demo.mjs) and committed;
// `make test-ts` fails when it is stale.
package play

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed dist
var dist embed.FS

// Config is what the page needs to find the gateway.
type Config struct {
	// WSPort is the gateway's WebSocket port; the page dials ws://<its own host>:<WSPort>/.
	WSPort int
	// WSURL, when set, is the WebSocket URL to use instead (e.g. behind a proxy).
	WSURL string
	// DefaultZone is the zone preselected on the login form (default z1_1).
	DefaultZone string
}

// Handler serves the demo at /play/ (index.html, app.js, app.css) and its
// configuration at /play/config.json; / redirects to /play/.
func Handler(cfg Config) http.Handler {
	if cfg.DefaultZone == "" {
		cfg.DefaultZone = "z1_1"
	}
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embedded tree always has dist/: a build without it does not compile
	}
	files := http.StripPrefix("/play/", http.FileServerFS(sub))
	conf, _ := json.Marshal(map[string]any{"ws_port": cfg.WSPort, "ws_url": cfg.WSURL, "ws_path": "/", "default_zone": cfg.DefaultZone})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /play/config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(conf)
	})
	mux.HandleFunc("GET /play/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".js") || strings.HasSuffix(r.URL.Path, ".css") || r.URL.Path == "/play/" {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /play", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/play/", http.StatusFound)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/play/", http.StatusFound)
	})
	return mux
}

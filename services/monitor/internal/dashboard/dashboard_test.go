package dashboard

import (
	"bufio"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestEventsStream: a page gets the latest view at once, then every new one,
// until the service stops.
func TestEventsStream(t *testing.T) {
	h := NewHub()
	mux := http.NewServeMux()
	stop := make(chan struct{})
	Register(mux, h, stop)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	h.Publish(View{Monitor: "m1", Rules: 1})

	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	next := func() View {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var v View
				if err := json.Unmarshal([]byte(data), &v); err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	if v := next(); v.Rules != 1 {
		t.Fatalf("first view %+v", v)
	}
	for i := 2; i <= 4; i++ {
		h.Publish(View{Monitor: "m1", Rules: i})
		if v := next(); v.Rules != i {
			t.Fatalf("view %d: %+v", i, v)
		}
	}
	if h.Subscribers() != 1 {
		t.Fatalf("%d subscribers", h.Subscribers())
	}
	close(stop)
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(r); done <- err }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream not closed on stop")
	}
}

// TestAssetsSelfContained: the page and its assets are served from the
// binary and load nothing from elsewhere (the machine may have no internet).
func TestAssetsSelfContained(t *testing.T) {
	h := NewHub()
	mux := http.NewServeMux()
	Register(mux, h, make(chan struct{}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, p := range []string{"/", "/assets/app.js", "/assets/app.css"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", p, err, resp.Status)
		}
		resp.Body.Close()
	}
	external := regexp.MustCompile(`(src|href)=["']https?://|url\(["']?https?://|import\s.*https?://`)
	_ = fs.WalkDir(assets, "assets", func(path string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			return nil
		}
		b, _ := assets.ReadFile(path)
		if loc := external.FindIndex(b); loc != nil {
			t.Errorf("%s loads from the network: %q", path, b[loc[0]:loc[1]])
		}
		return nil
	})
}

// TestHeaderLinks: links given to Register (the stack's browser demo) are in
// the page's header, escaped; without links the placeholder stays a comment.
func TestHeaderLinks(t *testing.T) {
	page := func(links ...Link) string {
		mux := http.NewServeMux()
		Register(mux, NewHub(), make(chan struct{}), links...)
		srv := httptest.NewServer(mux)
		defer srv.Close()
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	got := page(Link{Name: "▶ play", URL: "http://127.0.0.1:8084/play/?a=1&b=<2>"})
	if want := `<a class="hdr-link" href="http://127.0.0.1:8084/play/?a=1&amp;b=&lt;2&gt;">▶ play</a>`; !strings.Contains(got, want) {
		t.Errorf("page lacks %s", want)
	}
	if got := page(); strings.Contains(got, "hdr-link") || !strings.Contains(got, "<!--links-->") {
		t.Errorf("page without links has a link or lost the placeholder")
	}
}

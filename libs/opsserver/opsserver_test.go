package opsserver

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestEndpoints: the ops endpoints answer over a real listener, the pprof
// index lists the runtime profiles and a heap profile downloads.
func TestEndpoints(t *testing.T) {
	s := New()
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(t.Context()) })
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before SetReady: %d, want 503", code)
	}
	s.SetReady(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz after SetReady: %d", code)
	}
	if code, body := get("/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d %.100q", code, body)
	}
	if code, body := get("/debug/pprof/heap"); code != 200 || len(body) == 0 {
		t.Errorf("/debug/pprof/heap: %d, %d bytes", code, len(body))
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d", code)
	}
}

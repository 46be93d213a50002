package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestProbeStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"service":"draining"}`)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	}))
	defer srv.Close()
	var errb strings.Builder
	if code := run([]string{"-url", srv.URL + "/healthz"}, io.Discard, &errb); code != 0 {
		t.Fatalf("healthz: exit %d: %s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"-url", srv.URL + "/readyz"}, io.Discard, &errb); code != 1 {
		t.Fatalf("readyz 503: exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "503") {
		t.Fatalf("stderr %q does not name the status", errb.String())
	}
}

func TestProbeFromListenAddrEnv(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	t.Setenv("REALM_HTTP_ADDR", ":"+port)
	if code := run([]string{"-path", "/readyz"}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if code := run(nil, io.Discard, io.Discard); code != 1 {
		t.Fatalf("/healthz is 404 here: exit %d, want 1", code)
	}
}

func TestRefusesUnprobeableAddr(t *testing.T) {
	for _, addr := range []string{":0", "nonsense"} {
		if _, err := localURL(addr, "/healthz"); err == nil {
			t.Errorf("localURL(%q): want an error", addr)
		}
	}
	for addr, want := range map[string]string{
		":8081":        "http://127.0.0.1:8081/healthz",
		"0.0.0.0:8082": "http://127.0.0.1:8082/healthz",
		"[::]:8083":    "http://127.0.0.1:8083/healthz",
	} {
		got, err := localURL(addr, "healthz")
		if err != nil || got != want {
			t.Errorf("localURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}

func TestConnectionRefusedFails(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if code := run([]string{"-url", "http://" + addr + "/healthz"}, io.Discard, io.Discard); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
}

func TestInstallCopiesAnExecutable(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hc")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "tools")
	if out, err := exec.Command(bin, "-install", dir).CombinedOutput(); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(dir, "healthcheck"), "-version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "dev" {
		t.Fatalf("installed copy: %q %v", out, err)
	}
}

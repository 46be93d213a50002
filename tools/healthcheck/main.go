// Command healthcheck probes an HTTP health endpoint and exits 0 when it
// answers 2xx, 1 otherwise. Realmstream images are distroless (no shell, no
// curl), so the image's HEALTHCHECK and the compose healthchecks run this
// static binary instead.
//
// Without -url it probes http://127.0.0.1:<port><path>, where the port comes
// from the service's own REALM_HTTP_ADDR (the same variable the service
// reads), or from the default linked in at build time. With -install DIR it
// copies itself into DIR, so that compose can hand the probe to third-party
// images that have no shell either (the OpenTelemetry collector).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// defaultAddr is the ops address of the service this image runs; the
// Dockerfile links it in with -X main.defaultAddr=:8081.
var defaultAddr = ":8080"

// version is stamped from git by the Dockerfile.
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "URL to probe (default http://127.0.0.1:<port of $REALM_HTTP_ADDR or "+defaultAddr+"><path>)")
	path := fs.String("path", "/healthz", "path to probe when -url is empty")
	timeout := fs.Duration("timeout", 3*time.Second, "timeout of the whole probe")
	install := fs.String("install", "", "copy this binary into the given directory and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version)
		return 0
	}
	if *install != "" {
		if err := installTo(*install); err != nil {
			fmt.Fprintf(stderr, "healthcheck: install: %v\n", err)
			return 1
		}
		return 0
	}
	target := *url
	if target == "" {
		var err error
		if target, err = localURL(os.Getenv("REALM_HTTP_ADDR"), *path); err != nil {
			fmt.Fprintf(stderr, "healthcheck: %v\n", err)
			return 2
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := probe(ctx, target); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	return 0
}

// localURL turns a listen address (":8081", "0.0.0.0:8081", "[::]:8081") into
// a loopback URL of the same port.
func localURL(addr, path string) (string, error) {
	if addr == "" {
		addr = defaultAddr
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return "", fmt.Errorf("cannot probe listen address %q: want host:port with a fixed port", addr)
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port) + path, nil
}

func probe(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func installTo(dir string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	src, err := os.Open(self)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(dir, "healthcheck")
	tmp, err := os.CreateTemp(dir, ".healthcheck-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

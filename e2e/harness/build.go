// Package harness runs the Realmstream services as separate OS processes for
// end-to-end tests: it builds their binaries once per test run (go build into
// a temporary directory), starts them with flags and environment, waits for
// /readyz, captures their logs, and kills (-9), stops (SIGTERM) and restarts
// them on demand. It imports libs only, never the services: the binaries are
// black boxes driven through their command lines, exactly as users run them.
package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// RepoRoot finds the directory holding go.work, walking up from the working
// directory (go test runs in the package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("harness: go.work not found above the working directory")
		}
		dir = parent
	}
}

// Builder builds service binaries into one directory, each at most once.
type Builder struct {
	Root string // repository root (go.work)
	Dir  string // output directory

	mu    sync.Mutex
	built map[string]error
}

// NewBuilder returns a builder writing into dir.
func NewBuilder(root, dir string) *Builder {
	return &Builder{Root: root, Dir: dir, built: map[string]error{}}
}

// ServicePkg is the main package of a service, relative to the root.
func ServicePkg(svc string) string { return "./services/" + svc + "/cmd/" + svc }

// Build builds the binary of pkg (a path relative to Root, e.g.
// ./services/world/cmd/world) as Dir/<name> and returns its path.
func (b *Builder) Build(name, pkg string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := filepath.Join(b.Dir, name)
	if err, ok := b.built[name]; ok {
		return out, err
	}
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = b.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	msg, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("harness: go build %s: %w\n%s", pkg, err, strings.TrimSpace(string(msg)))
	}
	b.built[name] = err
	return out, err
}

// BuildServices builds several services in one go build invocation (shared
// packages compile once, links run in parallel) and returns name -> path.
func (b *Builder) BuildServices(svcs []string) (map[string]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]string{}
	args := []string{"build", "-o", b.Dir + string(filepath.Separator)}
	var todo []string
	for _, svc := range svcs {
		if _, err := os.Stat(filepath.Join(b.Root, "services", svc, "cmd", svc, "main.go")); err != nil {
			return nil, fmt.Errorf("harness: services/%s/cmd/%s/main.go does not exist in %s", svc, svc, b.Root)
		}
		out[svc] = filepath.Join(b.Dir, svc)
		if err, ok := b.built[svc]; ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		todo = append(todo, svc)
		args = append(args, ServicePkg(svc))
	}
	if len(todo) == 0 {
		return out, nil
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = b.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	msg, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("harness: go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(string(msg)))
	}
	for _, svc := range todo {
		b.built[svc] = err
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

var (
	sharedMu sync.Mutex
	shared   = map[string]*Builder{}
)

// SharedBuilder returns the process-wide builder of root, so that every
// stack of one test binary reuses the same binaries. Call RemoveBuilds from
// TestMain when the tests are done.
func SharedBuilder(root string) (*Builder, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if b := shared[root]; b != nil {
		return b, nil
	}
	dir, err := os.MkdirTemp("", "realm-e2e-bin-")
	if err != nil {
		return nil, err
	}
	b := NewBuilder(root, dir)
	shared[root] = b
	return b, nil
}

// RemoveBuilds deletes the binaries of every shared builder.
func RemoveBuilds() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for root, b := range shared {
		_ = os.RemoveAll(b.Dir)
		delete(shared, root)
	}
}

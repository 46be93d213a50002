package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/mod/modfile"
)

var (
	// Builder: the official Go image at an exact patch version (or a digest).
	builderRE = regexp.MustCompile(`^golang:(1\.\d+\.\d+)(-[a-z0-9.]+)?(@sha256:[0-9a-f]{64})?$`)
	// Runtime: distroless static (nonroot) pinned by digest, or scratch.
	runtimeRE = regexp.MustCompile(`^(gcr\.io/distroless/static(-debian\d+)?:nonroot@sha256:[0-9a-f]{64}|scratch)$`)
	secretRE  = regexp.MustCompile(`(?i)(pass|secret|token|key|credential)`)
)

func TestDockerfile(t *testing.T) {
	df, err := ParseDockerfile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	problems, goVersion := dockerfileProblems(df)
	for _, p := range problems {
		t.Error(p)
	}
	// The builder's Go must be new enough for every module it builds.
	for _, mod := range []string{"libs", "services/gateway", "services/world", "services/persist", "services/monitor", "stack", "tools/healthcheck"} {
		need := goDirective(t, filepath.Join(repoRoot, mod, "go.mod"))
		if need != "" && goVersion != "" && versionLess(goVersion, need) {
			t.Errorf("builder Go %s is older than %s's go %s", goVersion, mod, need)
		}
	}
}

// TestDockerfileChecksCatchFixtures proves the checks can fail: each fixture
// breaks one rule in a copy of the real Dockerfile.
func TestDockerfileChecksCatchFixtures(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	good := string(b)
	for name, f := range map[string]struct{ old, new, want string }{
		"moving builder":   {"FROM golang:1.26.8-bookworm AS build", "FROM golang:latest AS build", "golang:<exact version>"},
		"unpinned runtime": {"static-debian12:nonroot@sha256:", "static-debian12:nonroot-x@sha256:", "distroless static nonroot"},
		"named user":       {"USER 65532:65532", "USER nonroot", "numeric non-root"},
		"root user":        {"USER 65532:65532", "USER 0:0", "numeric non-root"},
		"shell entrypoint": {`ENTRYPOINT ["/usr/local/bin/service"]`, "ENTRYPOINT /usr/local/bin/service", "shell form"},
		"no healthcheck":   {"HEALTHCHECK --interval", "# HEALTHCHECK --interval", "no HEALTHCHECK"},
		"secret arg":       {"ARG VERSION=dev\nRUN", "ARG VERSION=dev\nARG DB_PASSWORD\nRUN", "looks like a secret"},
		"ADD":              {"COPY tools/healthcheck/ tools/healthcheck/", "ADD tools/healthcheck/ tools/healthcheck/", "use COPY"},
		"no build cache":   {"    --mount=type=cache,target=/root/.cache/go-build \\\n", "", "cache mounts"},
		"builder not Go":   {"FROM golang:1.26.8-bookworm AS build", "FROM scratch AS build", "FROM scratch"},
	} {
		t.Run(name, func(t *testing.T) {
			bad := strings.Replace(good, f.old, f.new, 1)
			if bad == good {
				t.Fatalf("fixture does not apply: %q not in the Dockerfile", f.old)
			}
			path := filepath.Join(t.TempDir(), "Dockerfile")
			if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			df, err := ParseDockerfile(path)
			if err != nil {
				t.Fatal(err)
			}
			problems, _ := dockerfileProblems(df)
			if !strings.Contains(strings.Join(problems, "\n"), f.want) {
				t.Fatalf("not caught (want a problem containing %q), got %v", f.want, problems)
			}
		})
	}
}

// dockerfileProblems checks a parsed Dockerfile against DEPLOY-1 and the
// hadolint-style rules; it returns the problems and the builder's Go version.
func dockerfileProblems(df *Dockerfile) (problems []string, goVersion string) {
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	for _, w := range df.Warnings {
		add("BuildKit lint: %s", w)
	}
	if len(df.Stages) < 2 {
		add("want a multi-stage build, got %d stage(s)", len(df.Stages))
	}
	names := map[string]bool{}
	for i, st := range df.Stages {
		final := i == len(df.Stages)-1
		if st.Name == "" {
			add("stage %d (FROM %s) has no name", i, st.BaseName)
		}
		switch {
		case names[st.BaseName]:
			// FROM an earlier stage
		case final:
			if !runtimeRE.MatchString(st.BaseName) {
				add("final stage FROM %s: want distroless static nonroot pinned by digest, or scratch", st.BaseName)
			}
		default:
			m := builderRE.FindStringSubmatch(st.BaseName)
			if m == nil {
				add("stage %s FROM %s: want golang:<exact version>[-variant][@digest]", st.Name, st.BaseName)
			} else {
				goVersion = m[1]
			}
		}
		if strings.Contains(st.BaseName, ":latest") || strings.Contains(st.BaseName, "$") {
			add("stage %s FROM %s: a moving or variable base", st.Name, st.BaseName)
		}
		names[st.Name] = true
		problems = append(problems, stageProblems(st, final)...)
	}
	return problems, goVersion
}

func stageProblems(st instructions.Stage, final bool) (problems []string) {
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	var user string
	var sawBuild, sawEntrypoint, sawHealth bool
	var prev string
	for _, c := range st.Commands {
		name := strings.ToUpper(c.Name())
		if name == "RUN" && prev == "RUN" {
			add("stage %s: consecutive RUN instructions (DL3059): merge them", st.Name)
		}
		prev = name
		switch c := c.(type) {
		case *instructions.AddCommand:
			add("stage %s: ADD %v: use COPY (DL3020)", st.Name, c.SourcePaths)
		case *instructions.WorkdirCommand:
			if !strings.HasPrefix(c.Path, "/") {
				add("stage %s: WORKDIR %s is relative (DL3000)", st.Name, c.Path)
			}
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				if secretRE.MatchString(a.Key) {
					add("stage %s: ARG %s looks like a secret (build args are stored in the image history)", st.Name, a.Key)
				}
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if secretRE.MatchString(kv.Key) {
					add("stage %s: ENV %s looks like a secret", st.Name, kv.Key)
				}
			}
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			sawEntrypoint = true
			if c.PrependShell {
				add("stage %s: ENTRYPOINT in shell form; use JSON (DL3025); distroless has no shell", st.Name)
			}
		case *instructions.CmdCommand:
			if c.PrependShell {
				add("stage %s: CMD in shell form", st.Name)
			}
		case *instructions.HealthCheckCommand:
			sawHealth = true
			if len(c.Health.Test) == 0 || c.Health.Test[0] != "CMD" {
				add("stage %s: HEALTHCHECK %v: want exec form (CMD [...]); distroless has no shell", st.Name, c.Health.Test)
			}
		case *instructions.RunCommand:
			line := strings.Join(c.CmdLine, " ")
			if !final && strings.Contains(line, "scripts/build.sh build") {
				sawBuild = true
				mounts := map[string]bool{}
				// Mount options are evaluated on expansion (build args are
				// not known at parse time): expand with words as written.
				if err := c.Expand(func(w string) (string, error) { return w, nil }); err != nil {
					add("stage %s: RUN flags: %v", st.Name, err)
				}
				for _, m := range instructions.GetMounts(c) {
					if m.Type == instructions.MountTypeCache {
						mounts[m.Target] = true
					}
				}
				if !mounts["/go/pkg/mod"] || !mounts["/root/.cache/go-build"] {
					add("stage %s: the build RUN needs cache mounts for /go/pkg/mod and /root/.cache/go-build, has %v", st.Name, mounts)
				}
				if !strings.Contains(line, "VERSION") {
					add("stage %s: the build does not pass VERSION: %s", st.Name, line)
				}
			}
		}
	}
	if !final {
		if !sawBuild {
			add("build stage %s does not run scripts/build.sh build", st.Name)
		}
		return problems
	}
	if !sawEntrypoint {
		add("final stage has no ENTRYPOINT")
	}
	if !sawHealth {
		add("final stage has no HEALTHCHECK")
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n < 10000 {
		add("final stage USER %q: want a numeric non-root uid >= 10000 (Kubernetes checks runAsNonRoot on numbers only)", user)
	}
	return problems
}

// TestBuildScriptFlags: the one build recipe (Dockerfile and tests) makes
// static, reproducible, version-stamped binaries of one module at a time.
func TestBuildScriptFlags(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "scripts", "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"GOWORK=off", "CGO_ENABLED=0", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-X main.version=", "set -eu"} {
		if !strings.Contains(s, want) {
			t.Errorf("scripts/build.sh lacks %q", want)
		}
	}
}

// TestDockerContext: every COPY source exists in the build context for every
// SERVICE and is not excluded by .dockerignore, which keeps secrets, .git and
// build outputs out of the context.
func TestDockerContext(t *testing.T) {
	pm, err := DockerIgnore(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".git", ".env", "deploy/.env", "bin/gateway", "data/x", "services/world/world.test"} {
		if ok, _ := pm.MatchesOrParentMatches(p); !ok {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
	// Nothing a build needs is excluded: every tracked file of the source
	// trees except tests and test data (embedded migrations, assets, rules...).
	files, err := exec.Command("git", "-C", repoRoot, "ls-files", "libs", "services", "stack", "tools/healthcheck").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, rel := range strings.Fields(string(files)) {
		if strings.HasSuffix(rel, "_test.go") || strings.Contains(rel, "/testdata/") || isExecutable(filepath.Join(repoRoot, rel)) {
			continue // tests, test data, and compiled binaries (never inputs of a build)
		}
		if ok, _ := pm.MatchesOrParentMatches(rel); ok {
			t.Errorf(".dockerignore excludes %s, which a build may need", rel)
		}
	}
	df, err := ParseDockerfile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range append(append([]string{}, Services...), "stack") {
		for _, st := range df.Stages {
			for _, c := range st.Commands {
				cp, ok := c.(*instructions.CopyCommand)
				if !ok || cp.From != "" {
					continue
				}
				for _, src := range cp.SourcePaths {
					src = strings.ReplaceAll(strings.ReplaceAll(src, "${SERVICE}", svc), "$SERVICE", svc)
					matches, _ := filepath.Glob(filepath.Join(repoRoot, src))
					if len(matches) == 0 {
						t.Errorf("SERVICE=%s: COPY %s: nothing in the context", svc, src)
						continue
					}
					for _, m := range matches {
						rel, _ := filepath.Rel(repoRoot, m)
						if ok, _ := pm.MatchesOrParentMatches(rel); ok {
							t.Errorf("SERVICE=%s: COPY %s: %s is excluded by .dockerignore", svc, src, rel)
						}
					}
				}
			}
		}
	}
}

func goDirective(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.ParseLax(path, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Go == nil {
		return ""
	}
	return f.Go.Version
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// isExecutable says whether path is a compiled (ELF) binary.
func isExecutable(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 4)
	n, _ := f.Read(b)
	return n == 4 && string(b) == "\x7fELF"
}

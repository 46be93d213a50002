package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// MainPackage is the main package directory of a service; "stack" is the
// all-in-one binary (stack/cmd/realmstream) whose bots command compose runs.
func MainPackage(root, svc string) string {
	if svc == "stack" {
		return filepath.Join(root, "stack", "cmd", "realmstream")
	}
	return filepath.Join(root, "services", svc, "cmd", svc)
}

// HasMain says whether the service's main package has been written.
func HasMain(root, svc string) bool {
	m, _ := filepath.Glob(filepath.Join(MainPackage(root, svc), "*.go"))
	return len(m) > 0
}

// BuildService builds svc with scripts/build.sh, the recipe the Dockerfile
// runs (GOWORK=off, CGO_ENABLED=0, -trimpath, -ldflags version), into
// outDir/service and outDir/healthcheck.
func BuildService(ctx context.Context, root, svc, outDir, version string) error {
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(root, "scripts", "build.sh"), "build", svc, outDir, version)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/build.sh build %s: %w\n%s", svc, err, out.String())
	}
	return nil
}

// Flag is one flag of a binary as its --help lists it.
type Flag struct {
	Name, Type, Env, Usage, Default string
}

// Required says whether the usage text declares the flag required.
func (f Flag) Required() bool { return strings.Contains(strings.ToLower(f.Usage), "required") }

// Help is the parsed --help of a binary.
type Help struct {
	Text  string
	Flags map[string]Flag // by flag name
	ByEnv map[string]Flag // by environment variable
}

var (
	flagLineRE = regexp.MustCompile(`^  -{1,2}([A-Za-z0-9][A-Za-z0-9._-]*)(?: (\S+))?\s*$`)
	envRE      = regexp.MustCompile(`\[env (REALM_[A-Z0-9_]+)\]`)
	defaultRE  = regexp.MustCompile(`\(default (.*)\)\s*$`)
)

// ParseHelp parses the output of a Go flag.FlagSet's PrintDefaults (the
// format every Realmstream binary uses through libs/envflag).
func ParseHelp(text string) Help {
	h := Help{Text: text, Flags: map[string]Flag{}, ByEnv: map[string]Flag{}}
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		m := flagLineRE.FindStringSubmatch(lines[i])
		if m == nil {
			// "  -x\tusage" (a one-letter flag without a type) stays on one line
			continue
		}
		f := Flag{Name: m[1], Type: m[2]}
		var usage []string
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    \t") {
			i++
			usage = append(usage, strings.TrimSpace(lines[i]))
		}
		f.Usage = strings.Join(usage, " ")
		if e := envRE.FindStringSubmatch(f.Usage); e != nil {
			f.Env = e[1]
		}
		if d := defaultRE.FindStringSubmatch(f.Usage); d != nil {
			f.Default = d[1]
		}
		h.Flags[f.Name] = f
		if f.Env != "" {
			h.ByEnv[f.Env] = f
		}
	}
	return h
}

// RunHelp runs bin [sub...] --help with exactly the environment env (plus
// PATH) and returns its output and exit code. Through libs/envflag a
// malformed REALM_* value is reported before the help, so a zero exit also
// proves every value of env parses as its flag's type.
func RunHelp(ctx context.Context, bin string, env map[string]string, sub ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(sub, "--help")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode(), nil
	}
	if err != nil {
		return string(out), -1, err
	}
	return string(out), 0, nil
}

// ArgFlags returns the --flag names used in a command line.
func ArgFlags(args []string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			continue
		}
		name := strings.TrimLeft(a, "-")
		name, _, _ = strings.Cut(name, "=")
		out = append(out, name)
	}
	return out
}

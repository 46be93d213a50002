package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// stubPath makes a PATH whose kubectl and docker are this test binary.
func stubPath(t *testing.T) (dir, log string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for _, n := range []string{"kubectl", "docker"} {
		if err := os.Symlink(self, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, filepath.Join(dir, "calls.log")
}

type scriptRun struct {
	out, err, log string
	code          int
}

func runDeploy(t *testing.T, env []string, args ...string) scriptRun {
	t.Helper()
	dir, log := stubPath(t)
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot, "scripts", "deploy.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "STUB_LOG="+log, "DEPLOY_ENV=", "REALM_REGISTRY=")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	calls, _ := os.ReadFile(log)
	return scriptRun{out: stdout.String(), err: stderr.String(), log: string(calls), code: code}
}

var overlayNS = map[string]string{"dev": "realmstream-dev", "staging": "realmstream-staging", "prod": "realmstream"}

// TestDeployDryRun: --dry-run prints the whole plan (builds, pushes, the
// kustomization pinning the images, the rendered manifests, apply and the
// rollout waits) for each overlay and runs nothing but the local render.
func TestDeployDryRun(t *testing.T) {
	for _, env := range Overlays {
		t.Run(env, func(t *testing.T) {
			r := runDeploy(t, nil, "--env", env, "--dry-run", "--registry", "reg.test/acme", "--tag", "v1.2.3", "--allow-dirty")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
			}
			ns := overlayNS[env]
			for _, s := range Services {
				img := "reg.test/acme/realmstream/" + s + ":v1.2.3"
				for _, want := range []string{
					"+ docker build --file " + filepath.Join(repoRoot, "Dockerfile") + " --build-arg SERVICE=" + s,
					"--tag " + img,
					"+ docker push " + img,
					"+ kubectl --namespace " + ns + " rollout status deployment/" + s + " --timeout 10m",
					"image: " + img,
				} {
					if !strings.Contains(r.out, want) {
						t.Errorf("plan lacks %q", want)
					}
				}
			}
			if !regexp.MustCompile(`\+ kubectl --namespace ` + ns + ` apply --server-side .* -k `).MatchString(r.out) {
				t.Errorf("plan lacks the kubectl apply -k")
			}
			_, rendered, ok := strings.Cut(r.out, "== rendered manifests")
			if !ok || !strings.Contains(rendered, "kind: Deployment") {
				t.Fatalf("plan has no rendered manifests:\n%s", r.out)
			}
			if strings.Contains(rendered, "registry.example.com") || regexp.MustCompile(`image: realmstream/`).MatchString(rendered) {
				t.Errorf("rendered manifests keep an unpinned image")
			}
			// Nothing ran but the render.
			for _, l := range strings.Split(strings.TrimSpace(r.log), "\n") {
				if !strings.HasPrefix(l, "kubectl kustomize ") {
					t.Errorf("dry run executed %q", l)
				}
			}
			t.Logf("plan: %d lines", strings.Count(r.out, "\n"))
		})
	}
}

// TestDeployRollsBack: when a rollout fails, every Deployment rolled so far
// is undone and the script exits non-zero; later ones are not touched.
func TestDeployRollsBack(t *testing.T) {
	r := runDeploy(t, []string{"STUB_FAIL_ROLLOUT=world"}, "--env", "staging", "--registry", "reg.test/acme", "--tag", "v9.9.9", "--allow-dirty")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.out, r.err)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(r.log), "\n") {
		f := strings.Fields(l)
		switch {
		case f[0] == "docker":
			got = append(got, f[0]+" "+f[1])
		case len(f) > 4 && f[3] == "rollout":
			got = append(got, "rollout "+f[4]+" "+f[5])
		case len(f) > 3:
			got = append(got, "kubectl "+f[3])
		}
	}
	want := []string{
		"docker build", "docker push", "docker build", "docker push", "docker build", "docker push", "docker build", "docker push",
		"kubectl apply",
		"rollout status deployment/gateway", "rollout status deployment/world",
		"rollout undo deployment/gateway", "rollout undo deployment/world",
		"rollout status deployment/gateway", "rollout status deployment/world",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(r.err, "rollout of world failed") {
		t.Errorf("stderr does not say what failed: %s", r.err)
	}
}

// TestDeployRefuses: no environment, an unknown overlay, a moving tag, no
// registry, a dirty tree for prod, an unknown service: refused before any
// command runs.
func TestDeployRefuses(t *testing.T) {
	for name, args := range map[string][]string{
		"no env":          {"--registry", "r", "--tag", "v1"},
		"unknown overlay": {"--env", "qa", "--registry", "r", "--tag", "v1"},
		"latest":          {"--env", "dev", "--registry", "r", "--tag", "latest"},
		"no registry":     {"--env", "dev", "--tag", "v1"},
		"dirty prod":      {"--env", "prod", "--registry", "r", "--tag", "abc123-dirty"},
		"unknown service": {"--env", "dev", "--registry", "r", "--tag", "v1", "--services", "gateway,chat"},
		"bad flag":        {"--env", "dev", "--frobnicate"},
	} {
		t.Run(name, func(t *testing.T) {
			r := runDeploy(t, nil, args...)
			if r.code != 2 || !strings.HasPrefix(r.err, "deploy.sh: ") {
				t.Fatalf("exit %d, stderr %q; want 2 with a reason", r.code, r.err)
			}
			if r.log != "" {
				t.Fatalf("ran commands before refusing: %s", r.log)
			}
		})
	}
	r := runDeploy(t, nil, "--help")
	if r.code != 0 || !strings.Contains(r.out, "--dry-run") || !strings.Contains(r.out, "Usage:") {
		t.Fatalf("--help: exit %d\n%s", r.code, r.out)
	}
}

// TestShellcheck: the scripts are clean under shellcheck.
func TestShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Fatal("shellcheck is not installed: apt-get install -y shellcheck")
	}
	out, err := exec.Command("shellcheck", "--severity=style",
		filepath.Join(repoRoot, "scripts", "deploy.sh"), filepath.Join(repoRoot, "scripts", "build.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

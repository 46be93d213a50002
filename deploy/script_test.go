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
	logPath       string
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
	return scriptRun{out: stdout.String(), err: stderr.String(), log: string(calls), logPath: log, code: code}
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
			if !regexp.MustCompile(`\+ kubectl --namespace ` + ns + ` apply --server-side .* -f .*apply.yaml`).MatchString(r.out) {
				t.Errorf("plan lacks the kubectl apply -f")
			}
			_, rendered, ok := strings.Cut(r.out, "== rendered manifests")
			if !ok || !strings.Contains(rendered, "kind: Deployment") {
				t.Fatalf("plan has no rendered manifests:\n%s", r.out)
			}
			if strings.Contains(rendered, "registry.example.com") || regexp.MustCompile(`image: realmstream/`).MatchString(rendered) {
				t.Errorf("rendered manifests keep an unpinned image")
			}
			if !strings.Contains(r.out, "== dry run: nothing was built, pushed or applied") || strings.Contains(r.out, "== deployed") {
				t.Errorf("a dry run does not say it was one:\n%s", tail(r.out, 3))
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

// calls reduces the stub log to the steps: docker build/push, kubectl
// verbs, rollout status/undo per Deployment, delete per object.
func calls(log string) []string {
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) < 2:
		case f[0] == "docker":
			got = append(got, f[0]+" "+f[1])
		case len(f) > 5 && f[3] == "rollout":
			got = append(got, "rollout "+f[4]+" "+f[5])
		case len(f) > 5 && f[3] == "delete":
			got = append(got, "delete "+f[5])
		case len(f) > 3 && f[3] == "apply":
			got = append(got, "apply "+filepath.Base(f[len(f)-1]))
		case len(f) > 4 && f[3] == "get" && strings.HasPrefix(f[4], "secret/"):
			got = append(got, "get "+f[4])
		case len(f) > 3:
			got = append(got, "kubectl "+f[3])
		}
	}
	return got
}

// TestDeployRollsBack: when a rollout fails, everything the apply changed is
// rolled back, not only the Deployments: every object that existed is
// re-applied as it was (without resourceVersion, which would make the apply
// a conflict), the objects the deploy created are deleted (not the
// Namespace), the restored Deployments are waited for, and the script exits 1.
func TestDeployRollsBack(t *testing.T) {
	r := runDeploy(t, []string{"STUB_FAIL_ROLLOUT=world",
		"STUB_EXISTING=deployment.apps/gateway,deployment.apps/world,configmap/realm-common-old",
		"STUB_CREATED=configmap/realm-common-new,namespace/realmstream-staging,networkpolicy.networking.k8s.io/extra"},
		"--env", "staging", "--registry", "reg.test/acme", "--tag", "v9.9.9", "--allow-dirty")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.out, r.err)
	}
	want := []string{
		"get secret/gateway-secrets", "get secret/nats-auth", "get secret/nats-ca", "get secret/redis-auth", "get secret/redis-ca",
		"docker build", "docker push", "docker build", "docker push", "docker build", "docker push", "docker build", "docker push",
		"kubectl get", "kubectl get",
		"apply apply.yaml",
		"rollout status deployment/gateway", "rollout status deployment/world",
		"apply previous.yaml",
		"kubectl get",
		"delete configmap/realm-common-new", "delete networkpolicy.networking.k8s.io/extra",
		"rollout status deployment/gateway", "rollout status deployment/world",
	}
	if got := calls(r.log); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(r.err, "deployment/world failed") {
		t.Errorf("stderr does not say what failed: %s", r.err)
	}
	prev, err := os.ReadFile(filepath.Join(filepath.Dir(r.logPath), "calls.log.apply1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: gateway", "name: world", "name: realm-common-old"} {
		if !strings.Contains(string(prev), want) {
			t.Errorf("the rollback does not re-apply %s:\n%s", want, prev)
		}
	}
	if strings.Contains(string(prev), "resourceVersion: \"4711\"") || strings.Contains(string(prev), "uid:") {
		t.Errorf("the rollback re-applies resourceVersion/uid (a conflict on a real server):\n%s", prev)
	}
	// A failed apply (an admission webhook, a quota) is rolled back the same way.
	r = runDeploy(t, []string{"STUB_FAIL_APPLY=1", "STUB_EXISTING=deployment.apps/gateway"},
		"--env", "staging", "--registry", "reg.test/acme", "--tag", "v9.9.9", "--allow-dirty", "--no-build", "--no-push")
	if r.code != 1 || !strings.Contains(strings.Join(calls(r.log), ","), "apply apply.yaml,apply previous.yaml") {
		t.Fatalf("failed apply: exit %d, calls %v\n%s", r.code, calls(r.log), r.err)
	}
}

// TestDeployServices: --services gateway applies the gateway's objects and
// the shared ones only, pins the gateway image, and waits for the gateway
// only: the other Deployments are neither applied (so never pointed at an
// unpinned placeholder image) nor touched.
func TestDeployServices(t *testing.T) {
	for _, env := range Overlays {
		t.Run(env, func(t *testing.T) {
			r := runDeploy(t, []string{"STUB_EXISTING=deployment.apps/gateway"}, "--env", env, "--registry", "reg.test/acme",
				"--tag", "v2.0.0", "--allow-dirty", "--services", "gateway")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
			}
			applied, err := os.ReadFile(filepath.Join(filepath.Dir(r.logPath), "calls.log.apply0"))
			if err != nil {
				t.Fatal(err)
			}
			var objs Objects
			for _, doc := range strings.Split(string(applied), "\n---\n") {
				o, err := DecodeObject([]byte(doc))
				if err != nil {
					t.Fatalf("applied manifest: %v\n%s", err, doc)
				}
				objs = append(objs, o)
			}
			var deps []string
			for _, d := range objs.Deployments() {
				deps = append(deps, d.Name)
				for _, c := range d.Spec.Template.Spec.Containers {
					if c.Image != "reg.test/acme/realmstream/gateway:v2.0.0" {
						t.Errorf("Deployment/%s applied with image %s", d.Name, c.Image)
					}
				}
			}
			if strings.Join(deps, ",") != "gateway" {
				t.Errorf("applied Deployments %v, want only gateway", deps)
			}
			for _, o := range objs {
				if o.Kind == "ConfigMap" && strings.HasPrefix(o.Name, "realm-common-") {
					goto shared
				}
			}
			t.Error("the shared realm-common ConfigMap the gateway reads is not applied")
		shared:
			for _, o := range objs {
				if strings.HasPrefix(o.Name, "world") || strings.HasPrefix(o.Name, "persist") || strings.HasPrefix(o.Name, "monitor") {
					t.Errorf("%s applied by a gateway-only deploy", o.ID())
				}
			}
			got := strings.Join(calls(r.log), ",")
			if strings.Count(got, "rollout status") != 1 || !strings.Contains(got, "rollout status deployment/gateway") {
				t.Errorf("rollouts waited for: %s", got)
			}
			if strings.Count(got, "docker build") != 1 {
				t.Errorf("images built: %s", got)
			}
		})
	}
}

// TestDeployFreshNamespace: a first deploy into a namespace that does not
// exist yet applies the Namespace (with Pod Security labels) before anything
// else; a missing required Secret is refused before anything is built or
// applied, naming every missing one (pods would otherwise hang in
// CreateContainerConfigError for the whole timeout).
func TestDeployFreshNamespace(t *testing.T) {
	r := runDeploy(t, nil, "--env", "prod", "--registry", "reg.test/acme", "--tag", "v1.0.0", "--no-build", "--no-push", "--allow-dirty")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	applied, err := os.ReadFile(filepath.Join(filepath.Dir(r.logPath), "calls.log.apply0"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(applied), "\n---\n")
	o, err := DecodeObject([]byte(first))
	if err != nil || o.Kind != "Namespace" || o.Name != "realmstream" {
		t.Fatalf("first object applied: %s %s (%v), want Namespace/realmstream", o.Kind, o.Name, err)
	}
	if !strings.Contains(first, "pod-security.kubernetes.io/enforce: restricted") {
		t.Errorf("the Namespace has no Pod Security enforcement:\n%s", first)
	}
	if !strings.Contains(r.out, "== deployed v1.0.0 to prod") {
		t.Errorf("no deployed line:\n%s", r.out)
	}

	r = runDeploy(t, []string{"STUB_MISSING_SECRETS=gateway-secrets,redis-auth"}, "--env", "prod", "--registry", "reg.test/acme", "--tag", "v1.0.0", "--allow-dirty")
	if r.code != 2 || !strings.Contains(r.err, "missing Secrets in namespace realmstream: gateway-secrets redis-auth") {
		t.Fatalf("exit %d, stderr %q: want a refusal naming both Secrets", r.code, r.err)
	}
	for _, c := range calls(r.log) {
		if !strings.HasPrefix(c, "get secret/") && c != "kubectl kustomize" {
			t.Errorf("ran %q before refusing", c)
		}
	}
	// The optional webhook Secret of monitor is not required.
	if strings.Contains(r.log, "monitor-secrets") {
		t.Error("the optional monitor-secrets is checked as required")
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
		"no-push, no reg": {"--env", "dev", "--tag", "v1", "--no-push"},
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

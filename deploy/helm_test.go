package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Durability is the JetStream sync_interval chosen per environment
// (docs/deploy.md "Durability", measured by TestMeasureSyncInterval): dev
// (compose, the dev overlay's nats.conf) 2s, staging and prod 1s with R3.
var Durability = map[string]time.Duration{"dev": 2 * time.Second, "staging": time.Second, "prod": time.Second}

type helmVersions struct {
	NATS  struct{ Chart, Image string } `json:"nats"`
	Redis struct{ Chart, Image string } `json:"redis"`
}

func readValues(t *testing.T, rel string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.UnmarshalStrict(b, &v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return v
}

// at walks a values map: at(v, "config", "cluster", "replicas").
func at(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

var semverRE = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)(-[a-z0-9.]+)?$`)

// versionAtLeast: "2.15.2-alpine" >= 2.12.
func versionAtLeast(tag string, major, minor int) bool {
	m := semverRE.FindStringSubmatch(tag)
	if m == nil {
		return false
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	return a > major || a == major && b >= minor
}

// helmProblems checks the NATS and Redis values of one environment against
// the overlay the services run with.
func helmProblems(env string, nats, redis map[string]any, ver helmVersions, objs Objects) []string {
	var out []string
	bad := func(f string, a ...any) { out = append(out, fmt.Sprintf(env+": "+f, a...)) }
	common := map[string]string{}
	users := map[string]bool{}
	for _, cm := range OfKind[*corev1.ConfigMap](objs) {
		for k, v := range cm.Data {
			if k == "REALM_NATS_USER" {
				users[v] = true
			}
			if strings.HasPrefix(cm.Name, "realm-common") || strings.HasPrefix(cm.Name, "world-config") {
				common[k] = v
			}
		}
	}
	// NATS
	tag, _ := at(nats, "container", "image", "tag").(string)
	if !versionAtLeast(tag, 2, 12) {
		bad("NATS image tag %q: want a pinned version >= 2.12 (atomic batch publish)", tag)
	}
	if tag != ver.NATS.Image {
		bad("NATS image %q differs from versions.yaml %q", tag, ver.NATS.Image)
	}
	if at(nats, "config", "cluster", "enabled") != true {
		bad("NATS cluster not enabled")
	}
	replicas := fmt.Sprint(at(nats, "config", "cluster", "replicas"))
	if want := common["REALM_STREAM_REPLICAS"]; replicas != "3" || want != "3" {
		bad("NATS nodes %s, stream replicas %q: want a 3-node cluster for R3", replicas, want)
	}
	si, _ := at(nats, "config", "jetstream", "merge", "sync_interval").(string)
	if d, err := time.ParseDuration(si); err != nil || d != Durability[env] {
		bad("NATS sync_interval %q: want %v (docs/deploy.md Durability)", si, Durability[env])
	}
	if at(nats, "config", "nats", "tls", "enabled") != true || at(nats, "config", "cluster", "tls", "enabled") != true {
		bad("NATS client or route TLS not enabled")
	}
	if !strings.HasPrefix(common["REALM_NATS_URL"], "tls://") || common["REALM_NATS_TLS_CA"] == "" {
		bad("the services do not connect with TLS (REALM_NATS_URL %q, REALM_NATS_TLS_CA %q)", common["REALM_NATS_URL"], common["REALM_NATS_TLS_CA"])
	}
	env0, _ := at(nats, "container", "env").(map[string]any)
	list, _ := at(nats, "config", "merge", "authorization", "users").([]any)
	have := map[string]bool{}
	for _, u := range list {
		name, _ := at(u, "user").(string)
		pw, _ := at(u, "password").(string)
		have[name] = true
		m := regexp.MustCompile(`^<< \$([A-Z_]+) >>$`).FindStringSubmatch(pw)
		if m == nil {
			bad("NATS user %s: password %q is not an environment reference << $VAR >>", name, pw)
			continue
		}
		ref := at(env0[m[1]], "valueFrom", "secretKeyRef")
		if at(ref, "name") != "nats-auth" || at(ref, "key") != name {
			bad("NATS user %s: $%s is not the nats-auth key %s the service reads (%v)", name, m[1], name, ref)
		}
	}
	for u := range users {
		if !have[u] {
			bad("service NATS user %s has no NATS account in the values", u)
		}
	}
	if len(users) != len(Services) {
		bad("NATS users of the services: %v, want one per service", users)
	}
	// Redis
	if at(redis, "image", "tag") != ver.Redis.Image || at(redis, "sentinel", "image", "tag") != ver.Redis.Image {
		bad("Redis images %v/%v, want versions.yaml %s", at(redis, "image", "tag"), at(redis, "sentinel", "image", "tag"), ver.Redis.Image)
	}
	if at(redis, "sentinel", "enabled") != true || at(redis, "sentinel", "masterSet") != common["REALM_REDIS_SENTINEL_MASTER"] {
		bad("Redis Sentinel master set %v, world asks for %q", at(redis, "sentinel", "masterSet"), common["REALM_REDIS_SENTINEL_MASTER"])
	}
	if at(redis, "auth", "sentinel") != true || at(redis, "auth", "existingSecret") != "redis-auth" {
		bad("Redis auth: want the Sentinels protected and the password from redis-auth")
	}
	if at(redis, "tls", "enabled") != true || common["REALM_REDIS_TLS_CA"] == "" {
		bad("Redis TLS: chart %v, world REALM_REDIS_TLS_CA %q", at(redis, "tls", "enabled"), common["REALM_REDIS_TLS_CA"])
	}
	if at(redis, "networkPolicy", "ingressNSMatchLabels", "kubernetes.io/metadata.name") != OverlayNamespaces[env] {
		bad("Redis network policy does not admit namespace %s", OverlayNamespaces[env])
	}
	return out
}

// TestHelmValues: the pinned NATS and Redis values of staging and prod agree
// with the overlays (issue 17 #8).
func TestHelmValues(t *testing.T) {
	var ver helmVersions
	readYAML(t, "deploy/helm/versions.yaml", &ver)
	for _, c := range []string{ver.NATS.Chart, ver.Redis.Chart} {
		if !semverRE.MatchString(c) {
			t.Errorf("chart version %q is not pinned (want x.y.z)", c)
		}
	}
	for _, env := range []string{"staging", "prod"} {
		objs := buildOverlay(t, env)
		nats := readValues(t, "deploy/helm/nats/values-"+env+".yaml")
		redis := readValues(t, "deploy/helm/redis/values-"+env+".yaml")
		for _, p := range helmProblems(env, nats, redis, ver, objs) {
			t.Error(p)
		}
		// Each check must catch its breakage.
		for name, breakIt := range map[string]func(n, r map[string]any){
			"old NATS": func(n, _ map[string]any) { at(n, "container", "image").(map[string]any)["tag"] = "2.11.4" },
			"2m sync": func(n, _ map[string]any) {
				at(n, "config", "jetstream", "merge").(map[string]any)["sync_interval"] = "2m"
			},
			"1 node": func(n, _ map[string]any) { at(n, "config", "cluster").(map[string]any)["replicas"] = 1 },
			"user missing": func(n, _ map[string]any) {
				at(n, "config", "merge", "authorization").(map[string]any)["users"] = []any{}
			},
			"wrong secret key": func(n, _ map[string]any) {
				at(n, "container", "env", "WORLD_PASSWORD", "valueFrom", "secretKeyRef").(map[string]any)["key"] = "gateway"
			},
			"sentinel renamed": func(_, r map[string]any) { at(r, "sentinel").(map[string]any)["masterSet"] = "primary" },
			"redis TLS off":    func(_, r map[string]any) { at(r, "tls").(map[string]any)["enabled"] = false },
		} {
			n := readValues(t, "deploy/helm/nats/values-"+env+".yaml")
			r := readValues(t, "deploy/helm/redis/values-"+env+".yaml")
			breakIt(n, r)
			if len(helmProblems(env, n, r, ver, objs)) == 0 {
				t.Errorf("%s: %s not caught", env, name)
			}
		}
	}
	// dev's NATS (overlay config and compose) uses the same durability.
	for _, f := range []string{"deploy/compose/nats.conf", "deploy/k8s/overlays/dev/infra/nats.conf"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`sync_interval:\s*"?([0-9a-z]+)"?`).FindStringSubmatch(string(b))
		if m == nil || m[1] != "2s" {
			t.Errorf("%s: sync_interval %v, want 2s (Durability[dev])", f, m)
		}
	}
}

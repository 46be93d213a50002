package deploy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestMonitoringObjects: every overlay has a PodMonitor that selects each
// service's pods on their ops port with the service name as job, and a
// PrometheusRule with exactly the rules of deploy/prometheus/rules.yml (the
// compose Prometheus loads), whose job selectors then match (issue 17 #9).
func TestMonitoringObjects(t *testing.T) {
	var want map[string]any
	readYAML(t, "deploy/prometheus/rules.yml", &want)
	for _, env := range Overlays {
		objs := buildOverlay(t, env)
		var pm, pr map[string]any
		for _, o := range objs {
			switch o.Kind {
			case "PodMonitor":
				pm = o.Custom
			case "PrometheusRule":
				pr = o.Custom
			}
		}
		if pm == nil || pr == nil {
			t.Fatalf("%s: PodMonitor %v, PrometheusRule %v", env, pm != nil, pr != nil)
		}
		spec := pr["spec"].(map[string]any)
		if !reflect.DeepEqual(normalize(t, spec["groups"]), normalize(t, want["groups"])) {
			t.Errorf("%s: PrometheusRule groups differ from deploy/prometheus/rules.yml", env)
		}
		ps := pm["spec"].(map[string]any)
		if ps["jobLabel"] != "app.kubernetes.io/name" {
			t.Errorf("%s: PodMonitor jobLabel %v: the rules select job=~gateway|world|persist|monitor", env, ps["jobLabel"])
		}
		sel := ps["selector"].(map[string]any)
		b, _ := yaml.Marshal(sel)
		for _, d := range objs.Deployments() {
			if !isRealm(d.Spec.Template.Labels) {
				continue
			}
			if !selectsYAML(t, b, d.Spec.Template.Labels) {
				t.Errorf("%s: PodMonitor does not select Deployment/%s", env, d.Name)
			}
			ok := false
			for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
				ok = ok || p.Name == "ops"
			}
			if !ok {
				t.Errorf("%s: Deployment/%s has no port named ops to scrape", env, d.Name)
			}
		}
		eps := ps["podMetricsEndpoints"].([]any)
		if len(eps) != 1 || eps[0].(map[string]any)["port"] != "ops" || eps[0].(map[string]any)["path"] != "/metrics" {
			t.Errorf("%s: PodMonitor endpoints %v", env, eps)
		}
	}
}

func normalize(t *testing.T, v any) any {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := yaml.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func selectsYAML(t *testing.T, sel []byte, l map[string]string) bool {
	var s metav1.LabelSelector
	if err := yaml.UnmarshalStrict(sel, &s); err != nil {
		t.Fatal(err)
	}
	return selects(&s, l)
}

// TestMonitoringDecodeRejectsTypos: the operator's types catch a misspelt field.
func TestMonitoringDecodeRejectsTypos(t *testing.T) {
	for _, y := range []string{
		"apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: x}\nspec:\n  podMetricEndpoints: [{port: ops}]\n  selector: {}\n",
		"apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: x}\nspec:\n  groups: [{name: g, rules: [{alert: A, expresion: up == 0}]}]\n",
	} {
		if _, err := DecodeObject([]byte(y)); err == nil {
			t.Errorf("accepted a misspelt field:\n%s", y)
		}
	}
}

// TestCNPGDecodeRejectsTypos: the two CNPG misspellings the static tests
// once let through (and a misplaced field) fail the overlay's decoding.
func TestCNPGDecodeRejectsTypos(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/k8s/overlays/prod/postgres.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(b), "\n---\n")
	if _, err := DecodeObject([]byte(docs[0])); err != nil {
		t.Fatalf("the real Cluster does not decode: %v", err)
	}
	for from, to := range map[string]string{
		"enablePodMonitor:": "enablePodMonitoring:",
		"retentionPolicy:":  "retentionPolicies:",
		"destinationPath:":  "destinationPth:",
		"  instances: 3":    "  instance: 3",
	} {
		y := strings.Replace(docs[0], from, to, 1)
		if y == docs[0] {
			t.Fatalf("fixture %q not in postgres.yaml", from)
		}
		if _, err := DecodeObject([]byte(y)); err == nil {
			t.Errorf("misspelt CNPG field %q accepted", to)
		}
	}
	sb := docs[len(docs)-1]
	if _, err := DecodeObject([]byte(strings.Replace(sb, "schedule:", "schedul:", 1))); err == nil {
		t.Error("misspelt ScheduledBackup field accepted")
	}
}

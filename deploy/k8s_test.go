package deploy

import (
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

func overlayDir(env string) string { return filepath.Join(repoRoot, "deploy", "k8s", "overlays", env) }

// buildOverlay builds one overlay and fails the test on any error.
func buildOverlay(t *testing.T, env string) Objects {
	t.Helper()
	objs, err := BuildOverlay(overlayDir(env))
	if err != nil {
		t.Fatalf("overlay %s: %v", env, err)
	}
	return objs
}

func TestOverlaysPassPolicies(t *testing.T) {
	for _, env := range Overlays {
		t.Run(env, func(t *testing.T) {
			objs := buildOverlay(t, env)
			for _, m := range RunChecks(objs) {
				t.Error(m)
			}
			// Every service has its full set of objects.
			for _, s := range Services {
				for _, kind := range []string{"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "NetworkPolicy"} {
					if objs.Get(kind, s) == nil {
						t.Errorf("%s/%s missing", kind, s)
					}
				}
				d := objs.Get("Deployment", s).(*appsv1.Deployment)
				if len(d.Spec.Template.Spec.Containers) != 1 {
					t.Errorf("Deployment/%s: want one container", s)
				}
				if Autoscaled[s] && objs.Get("HorizontalPodAutoscaler", s) == nil {
					t.Errorf("HorizontalPodAutoscaler/%s missing", s)
				}
			}
			t.Logf("%s: %d objects, %d checks passed", env, len(objs), len(Checks))
		})
	}
}

// TestOverlaysDiffer: the overlays are not copies: namespaces, image tags or
// names, replicas and resources and endpoints differ; dev alone brings NATS,
// Redis and Postgres, staging and prod rely on operator-run ones.
func TestOverlaysDiffer(t *testing.T) {
	type summary struct {
		ns, image, nats, redis string
		minGateway             int32
		gatewayCPU             string
		infra                  int
		clusters               int
	}
	sum := map[string]summary{}
	for _, env := range Overlays {
		objs := buildOverlay(t, env)
		d := objs.Get("Deployment", "gateway").(*appsv1.Deployment)
		w := objs.Get("Deployment", "world").(*appsv1.Deployment)
		genv, err := ContainerEnv(objs, d.Spec.Template.Spec.Containers[0])
		if err != nil {
			t.Fatal(err)
		}
		wenv, err := ContainerEnv(objs, w.Spec.Template.Spec.Containers[0])
		if err != nil {
			t.Fatal(err)
		}
		h := objs.Get("HorizontalPodAutoscaler", "gateway").(*autoscalingv2.HorizontalPodAutoscaler)
		cpu := d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]
		n := 0
		for _, o := range objs {
			if o.Kind == "Cluster" {
				n++
			}
		}
		sum[env] = summary{ns: d.Namespace, image: d.Spec.Template.Spec.Containers[0].Image, nats: genv["REALM_NATS_URL"].Value,
			redis: wenv["REALM_REDIS_ADDR"].Value + wenv["REALM_REDIS_SENTINEL_ADDRS"].Value, minGateway: *h.Spec.MinReplicas, gatewayCPU: cpu.String(),
			infra: len(objs.StatefulSets()), clusters: n}
	}
	seen := map[string]string{}
	for env, s := range sum {
		t.Logf("%-8s %+v", env, s)
		for _, v := range []string{"ns:" + s.ns, "image:" + s.image, "nats:" + s.nats, "redis:" + s.redis} {
			if other, dup := seen[v]; dup {
				t.Errorf("%s and %s share %s", env, other, v)
			}
			seen[v] = env
		}
	}
	if sum["dev"].infra != 4 || sum["staging"].infra != 0 || sum["prod"].infra != 0 {
		t.Errorf("dev must bring NATS, Redis and two Postgres shards, the others none: %d %d %d",
			sum["dev"].infra, sum["staging"].infra, sum["prod"].infra)
	}
	if sum["prod"].clusters != 2 || sum["staging"].clusters != 2 || sum["dev"].clusters != 0 {
		t.Errorf("staging and prod need a CloudNativePG Cluster per shard")
	}
	if sum["prod"].minGateway <= sum["dev"].minGateway || sum["prod"].gatewayCPU == sum["dev"].gatewayCPU {
		t.Errorf("prod must be larger than dev: %+v vs %+v", sum["prod"], sum["dev"])
	}
}

// TestStrictDecodeRejectsTypos: the decoder refuses what the API server would
// silently drop or refuse.
func TestStrictDecodeRejectsTypos(t *testing.T) {
	for name, y := range map[string]string{
		"unknown field":  "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n",
		"wrong type":     "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: {port: 80}\n",
		"duplicate key":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n",
		"unknown kind":   "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n",
		"old apiVersion": "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: x}\n",
	} {
		if _, err := DecodeObject([]byte(y)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, err := DecodeObject([]byte("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {maxUnavailable: 1}\n")); err != nil {
		t.Errorf("valid PDB: %v", err)
	}
}

// TestChecksCatchBrokenFixtures proves every check can fail: each fixture
// breaks one rule in a copy of the dev overlay and the check must say so.
func TestChecksCatchBrokenFixtures(t *testing.T) {
	fixtures := map[string]func(Objects) Objects{
		"probes": func(o Objects) Objects {
			c := &dep(o, "world").Spec.Template.Spec.Containers[0]
			c.ReadinessProbe = c.LivenessProbe.DeepCopy()
			return o
		},
		"resources": func(o Objects) Objects {
			delete(dep(o, "persist").Spec.Template.Spec.Containers[0].Resources.Limits, corev1.ResourceMemory)
			return o
		},
		"security": func(o Objects) Objects {
			f := false
			dep(o, "gateway").Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &f
			return o
		},
		"writable-tmp": func(o Objects) Objects {
			dep(o, "monitor").Spec.Template.Spec.Containers[0].VolumeMounts = nil
			return o
		},
		"image-tags": func(o Objects) Objects {
			dep(o, "world").Spec.Template.Spec.Containers[0].Image = "realmstream/world:latest"
			return o
		},
		"pdb": func(o Objects) Objects {
			get[*policyv1.PodDisruptionBudget](o, "PodDisruptionBudget", "persist").Spec.Selector.MatchLabels["app.kubernetes.io/name"] = "persit"
			return o
		},
		"hpa": func(o Objects) Objects {
			n := int32(3)
			dep(o, "gateway").Spec.Replicas = &n
			return o
		},
		"graceful-shutdown": func(o Objects) Objects {
			g := int64(20)
			dep(o, "world").Spec.Template.Spec.TerminationGracePeriodSeconds = &g
			return o
		},
		"services": func(o Objects) Objects {
			s := get[*corev1.Service](o, "Service", "gateway")
			s.Spec.Ports[0].TargetPort.StrVal = "metrics"
			return o
		},
		"network-policy": func(o Objects) Objects {
			var out Objects
			for _, x := range o {
				if !(x.Kind == "NetworkPolicy" && x.Name == "persist") {
					out = append(out, x)
				}
			}
			return out
		},
		"service-account": func(o Objects) Objects {
			dep(o, "monitor").Spec.Template.Spec.ServiceAccountName = ""
			return o
		},
		"config-refs": func(o Objects) Objects {
			dep(o, "gateway").Spec.Template.Spec.Containers[0].EnvFrom[1].ConfigMapRef.Name = "gateway-config"
			return o
		},
		"spread": func(o Objects) Objects {
			spec := &dep(o, "world").Spec.Template.Spec
			spec.TopologySpreadConstraints, spec.Affinity = nil, nil
			return o
		},
		"secret-rotation": func(o Objects) Objects {
			delete(dep(o, "gateway").Annotations, "reloader.stakater.com/auto")
			return o
		},
		"ports-match-config": func(o Objects) Objects {
			dep(o, "persist").Spec.Template.Spec.Containers[0].Ports[0].ContainerPort = 8080
			return o
		},
		"namespace": func(o Objects) Objects {
			for i := range o {
				if o[i].Kind == "Service" && o[i].Name == "redis" {
					o[i].Namespace = ""
				}
			}
			return o
		},
	}
	good := buildOverlay(t, "dev")
	for _, c := range Checks {
		t.Run(c.ID, func(t *testing.T) {
			if msgs := c.Run(good); len(msgs) != 0 {
				t.Fatalf("fails on the good overlay: %v", msgs)
			}
			broken, ok := fixtures[c.ID]
			if !ok {
				t.Fatalf("check %s has no failing fixture", c.ID)
			}
			msgs := c.Run(broken(fresh(t, good)))
			if len(msgs) == 0 {
				t.Fatalf("did not catch its fixture")
			}
			t.Logf("caught: %s", strings.Join(msgs, "; "))
		})
	}
}

// fresh decodes a deep copy of objs from their YAML.
func fresh(t *testing.T, objs Objects) Objects {
	t.Helper()
	out := make(Objects, 0, len(objs))
	for _, o := range objs {
		c, err := DecodeObject(o.YAML)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func dep(o Objects, name string) *appsv1.Deployment {
	return get[*appsv1.Deployment](o, "Deployment", name)
}

func get[T any](o Objects, kind, name string) T {
	v, ok := o.Get(kind, name).(T)
	if !ok {
		panic(kind + "/" + name + " not found")
	}
	return v
}

// TestStreamReplicasAgree: every service creates or updates the JetStream
// streams at start (wire.EnsureStreams), so they must ask for the same replica
// count, or each restart flips it (and moves stream data between servers).
func TestStreamReplicasAgree(t *testing.T) {
	for _, env := range Overlays {
		objs := buildOverlay(t, env)
		got := map[string]string{}
		for _, d := range objs.Deployments() {
			if !isRealm(d.Spec.Template.Labels) {
				continue
			}
			e, err := ContainerEnv(objs, d.Spec.Template.Spec.Containers[0])
			if err != nil {
				t.Fatal(err)
			}
			v := e["REALM_STREAM_REPLICAS"].Value
			if v == "" {
				v = "1 (default)"
			}
			got[d.Name] = v
		}
		var first string
		for _, s := range Services {
			if first == "" {
				first = got[s]
			} else if got[s] != first {
				t.Errorf("%s: stream replicas disagree: %v", env, got)
				break
			}
		}
		if env == "prod" && first != "3" {
			t.Logf("NOTE: prod streams have %s replica(s) on a 3-node NATS: every service needs --stream-replicas before it can be 3", first)
		}
	}
}

// TestNamespaceCheckCatchesFreshClusterGaps: an overlay without its Namespace
// object (a first deploy to a fresh cluster fails: namespace not found), or
// one whose Pod Security admission is weaker than restricted, fails the
// namespace check in every overlay.
func TestNamespaceCheckCatchesFreshClusterGaps(t *testing.T) {
	for _, overlay := range Overlays {
		t.Run(overlay, func(t *testing.T) {
			good := buildOverlay(t, overlay)
			if msgs := checkNamespace(good); len(msgs) != 0 {
				t.Fatalf("fails on the overlay: %v", msgs)
			}
			var noNS Objects
			for _, o := range fresh(t, good) {
				if o.Kind != "Namespace" {
					noNS = append(noNS, o)
				}
			}
			if len(checkNamespace(noNS)) == 0 {
				t.Error("an overlay without a Namespace object passes")
			}
			weak := fresh(t, good)
			get[*corev1.Namespace](weak, "Namespace", get[*appsv1.Deployment](weak, "Deployment", "world").Namespace).Labels["pod-security.kubernetes.io/enforce"] = "baseline"
			if len(checkNamespace(weak)) == 0 {
				t.Error("a Namespace enforcing baseline passes")
			}
		})
	}
}

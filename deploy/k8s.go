package deploy

import (
	"fmt"
	"sort"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Object is one rendered Kubernetes object, decoded strictly into its
// k8s.io/api type (Typed), or kept as a map for the custom resources of the
// operators an overlay relies on (Custom).
type Object struct {
	APIVersion, Kind, Name, Namespace string
	Typed                             any
	Custom                            map[string]any
	YAML                              []byte
}

// ID names an object for messages: "Deployment/gateway".
func (o Object) ID() string { return o.Kind + "/" + o.Name }

// CustomKinds are the custom resources an overlay may contain: they are
// decoded into maps (k8s.io/api has no type for them) and checked by name.
var CustomKinds = map[string]bool{
	"postgresql.cnpg.io/v1/Cluster":           true, // CloudNativePG (staging, prod)
	"postgresql.cnpg.io/v1/ScheduledBackup":   true, // CloudNativePG nightly base backups
	"monitoring.coreos.com/v1/PodMonitor":     true, // kube-prometheus-stack scrape config
	"monitoring.coreos.com/v1/PrometheusRule": true, // kube-prometheus-stack alerting rules
}

// newTyped returns an empty typed object for a group/version/kind, or nil.
func newTyped(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}
	case "v1/Service":
		return &corev1.Service{}
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/Namespace":
		return &corev1.Namespace{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	}
	return nil
}

// BuildOverlay runs kustomize (krusty, the library kubectl embeds) on dir and
// decodes every object strictly: an unknown or misspelt field, a wrong type or
// a duplicate key is an error, as is a kind with no k8s.io/api type that is
// not in CustomKinds.
func BuildOverlay(dir string) ([]Object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var out []Object
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		o, err := DecodeObject(y)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		out = append(out, o)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out, nil
}

// DecodeObject decodes one YAML document strictly into its typed object.
func DecodeObject(y []byte) (Object, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(y, &meta); err != nil {
		return Object{}, err
	}
	o := Object{APIVersion: meta.APIVersion, Kind: meta.Kind, Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace, YAML: y}
	if typed := newTyped(meta.APIVersion, meta.Kind); typed != nil {
		if err := yaml.UnmarshalStrict(y, typed); err != nil {
			return Object{}, fmt.Errorf("strict decode of %s %s: %w", meta.APIVersion, meta.Kind, err)
		}
		o.Typed = typed
		return o, nil
	}
	if CustomKinds[meta.APIVersion+"/"+meta.Kind] {
		if err := yaml.UnmarshalStrict(y, &o.Custom); err != nil {
			return Object{}, err
		}
		// The Prometheus operator's Go types are served by the module proxy:
		// its custom resources are decoded strictly as well (a misspelt field
		// fails). CloudNativePG's module is refused (403): its resources are
		// decoded into the transcribed types of cnpg.go.
		var typed any
		switch meta.Kind {
		case "PodMonitor":
			typed = &monitoringv1.PodMonitor{}
		case "PrometheusRule":
			typed = &monitoringv1.PrometheusRule{}
		case "Cluster":
			typed = &cnpgCluster{}
		case "ScheduledBackup":
			typed = &cnpgScheduledBackup{}
		}
		if typed != nil {
			if err := yaml.UnmarshalStrict(y, typed); err != nil {
				return Object{}, fmt.Errorf("strict decode of %s %s: %w", meta.APIVersion, meta.Kind, err)
			}
			o.Typed = typed
		}
		return o, nil
	}
	return Object{}, fmt.Errorf("%s %s has no k8s.io/api type and is not a known custom resource", meta.APIVersion, meta.Kind)
}

// Objects indexes a rendered overlay.
type Objects []Object

// Deployments returns the Deployments in order.
func (os Objects) Deployments() []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, o := range os {
		if d, ok := o.Typed.(*appsv1.Deployment); ok {
			out = append(out, d)
		}
	}
	return out
}

// StatefulSets returns the StatefulSets in order.
func (os Objects) StatefulSets() []*appsv1.StatefulSet {
	var out []*appsv1.StatefulSet
	for _, o := range os {
		if d, ok := o.Typed.(*appsv1.StatefulSet); ok {
			out = append(out, d)
		}
	}
	return out
}

// Get returns the typed object of kind/name, or nil.
func (os Objects) Get(kind, name string) any {
	for _, o := range os {
		if o.Kind == kind && o.Name == name {
			if o.Typed != nil {
				return o.Typed
			}
			return o.Custom
		}
	}
	return nil
}

// OfKind returns the typed objects of one kind.
func OfKind[T any](os Objects) []T {
	var out []T
	for _, o := range os {
		if t, ok := o.Typed.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

package deploy

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// EnvValue is the value of one environment variable of a container as the
// kubelet would compute it, or a placeholder where it comes from outside the
// rendered manifests (a secret made by an operator, the pod name).
type EnvValue struct {
	Value string
	// External names where the value comes from when the manifests do not
	// hold it ("secret realm-shard0-app/uri", "field metadata.name").
	External string
}

// ContainerEnv resolves the environment of c in the rendered objects: envFrom
// ConfigMaps and Secrets, then env entries (later wins, as in the kubelet),
// with $(VAR) references expanded.
func ContainerEnv(objs Objects, c corev1.Container) (map[string]EnvValue, error) {
	env := map[string]EnvValue{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, _ := objs.Get("ConfigMap", ef.ConfigMapRef.Name).(*corev1.ConfigMap)
			if cm == nil {
				if ef.ConfigMapRef.Optional != nil && *ef.ConfigMapRef.Optional {
					continue
				}
				return nil, fmt.Errorf("container %s: envFrom ConfigMap %q is not in the manifests", c.Name, ef.ConfigMapRef.Name)
			}
			for k, v := range cm.Data {
				env[ef.Prefix+k] = EnvValue{Value: v}
			}
		case ef.SecretRef != nil:
			s, _ := objs.Get("Secret", ef.SecretRef.Name).(*corev1.Secret)
			if s == nil {
				return nil, fmt.Errorf("container %s: envFrom Secret %q: whole-secret env cannot be checked; use secretKeyRef", c.Name, ef.SecretRef.Name)
			}
			for k, v := range s.Data {
				env[ef.Prefix+k] = EnvValue{Value: string(v)}
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			v, ext := expandRefs(e.Value, env)
			env[e.Name] = EnvValue{Value: v, External: ext}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			cm, _ := objs.Get("ConfigMap", r.Name).(*corev1.ConfigMap)
			if cm == nil {
				return nil, fmt.Errorf("container %s: env %s: ConfigMap %q is not in the manifests", c.Name, e.Name, r.Name)
			}
			v, ok := cm.Data[r.Key]
			if !ok && (r.Optional == nil || !*r.Optional) {
				return nil, fmt.Errorf("container %s: env %s: ConfigMap %q has no key %q", c.Name, e.Name, r.Name, r.Key)
			}
			env[e.Name] = EnvValue{Value: v}
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			if s, _ := objs.Get("Secret", r.Name).(*corev1.Secret); s != nil {
				v, ok := s.Data[r.Key]
				if !ok {
					if sv, ok2 := s.StringData[r.Key]; ok2 {
						v, ok = []byte(sv), true
					}
				}
				if !ok && (r.Optional == nil || !*r.Optional) {
					return nil, fmt.Errorf("container %s: env %s: Secret %q has no key %q", c.Name, e.Name, r.Name, r.Key)
				}
				env[e.Name] = EnvValue{Value: string(v)}
			} else {
				env[e.Name] = EnvValue{External: "secret " + r.Name + "/" + r.Key}
			}
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = EnvValue{External: "field " + e.ValueFrom.FieldRef.FieldPath}
		default:
			env[e.Name] = EnvValue{External: "resource"}
		}
	}
	return env, nil
}

var refRE = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandRefs expands $(VAR) from the variables defined before, as the kubelet
// does; an undefined reference stays as written. ext lists the external
// sources the result depends on.
func expandRefs(s string, env map[string]EnvValue) (out, ext string) {
	var exts []string
	out = refRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := env[name]
		if !ok {
			return m
		}
		if v.External != "" {
			exts = append(exts, v.External)
			return "<" + v.External + ">"
		}
		return v.Value
	})
	return out, strings.Join(exts, ", ")
}

// RealmEnv keeps the REALM_* variables of env.
func RealmEnv(env map[string]EnvValue) map[string]EnvValue {
	out := map[string]EnvValue{}
	for k, v := range env {
		if strings.HasPrefix(k, "REALM_") {
			out[k] = v
		}
	}
	return out
}

package deploy

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Services are the Realmstream services, each one Deployment.
var Services = []string{"gateway", "world", "persist", "monitor"}

// Autoscaled are the services whose replica count an HPA owns.
var Autoscaled = map[string]bool{"gateway": true} // world: fixed replicas (zone moves are costly; issue 17 #6)

// ExternalSecrets are the secrets staging and prod expect to be made outside
// git (docs/deploy.md); a reference to any other absent secret is an error.
// <cluster>-app secrets of CloudNativePG clusters in the overlay are allowed too.
var ExternalSecrets = map[string]bool{"gateway-secrets": true, "monitor-secrets": true, "redis-auth": true, "nats-auth": true, "nats-ca": true, "redis-ca": true, "pg-backup-s3": true}

// Check is one policy over a rendered overlay (a small kube-score): Run
// returns one message per violation.
type Check struct {
	ID   string
	Desc string
	Run  func(Objects) []string
}

// Checks are the policies every overlay must pass (DEPLOY-3..6 of the
// checklist in the reference components document).
var Checks = []Check{
	{"probes", "each container has startup, liveness (/healthz) and readiness (/readyz) probes on a declared port; readiness differs from liveness", checkProbes},
	{"resources", "each container requests and limits CPU and memory", checkResources},
	{"security", "non-root (uid >= 10000 for Realmstream), read-only root fs, no privilege escalation, all capabilities dropped, seccomp RuntimeDefault", checkSecurity},
	{"writable-tmp", "a read-only root fs comes with an emptyDir at /tmp", checkTmp},
	{"image-tags", "images carry an explicit tag or digest, never latest", checkImages},
	{"pdb", "a policy/v1 PodDisruptionBudget with maxUnavailable 1 selects each Deployment's pods", checkPDB},
	{"hpa", "gateway has an autoscaling/v2 HPA (min >= 2, slow scale-down) and no replicas field of its own; world has fixed replicas >= 2 and no HPA", checkHPA},
	{"graceful-shutdown", "preStop sleep >= 5s and a grace period >= preStop + REALM_SHUTDOWN_TIMEOUT + 10s", checkShutdown},
	{"services", "each Service selects pods and targets ports they declare", checkServices},
	{"network-policy", "a default-deny policy plus a policy of its own for each Deployment", checkNetworkPolicies},
	{"service-account", "each Deployment runs as its own ServiceAccount without an API token", checkServiceAccounts},
	{"config-refs", "referenced ConfigMaps exist and are generated (hash suffix); referenced Secrets exist or are documented external ones", checkConfigRefs},
	{"spread", "gateway and world pods spread over nodes", checkSpread},
	{"namespace", "every namespaced object has the overlay's namespace, which the overlay creates with Pod Security restricted enforced", checkNamespace},
	{"secret-rotation", "a Deployment that reads a Secret carries reloader.stakater.com/auto, so rotating the Secret restarts its pods", checkSecretRotation},
	{"ports-match-config", "the container ports (and the Prometheus annotation) are the ports the service is configured to listen on", checkPortsMatchConfig},
}

// listenPorts maps a container port name to the variable that sets the
// address the service listens on there.
var listenPorts = map[string]string{"ops": "REALM_HTTP_ADDR", "tcp": "REALM_TCP_ADDR", "ws": "REALM_WS_ADDR"}

func checkPortsMatchConfig(objs Objects) []string {
	var out []string
	for _, d := range objs.Deployments() {
		if !isRealm(d.Spec.Template.Labels) {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			where := "Deployment/" + d.Name + " container " + c.Name
			env, err := ContainerEnv(objs, c)
			if err != nil {
				out = append(out, where+": "+err.Error())
				continue
			}
			for _, p := range c.Ports {
				key, ok := listenPorts[p.Name]
				if !ok {
					out = append(out, fmt.Sprintf("%s: port %s is not one the service listens on (%v)", where, p.Name, listenPorts))
					continue
				}
				v := env[key].Value
				if _, port := hostPort(v); port != fmt.Sprint(p.ContainerPort) {
					out = append(out, fmt.Sprintf("%s: port %s is %d but %s=%q", where, p.Name, p.ContainerPort, key, v))
				}
				if p.Name == "ops" && d.Spec.Template.Annotations["prometheus.io/port"] != fmt.Sprint(p.ContainerPort) {
					out = append(out, fmt.Sprintf("%s: prometheus.io/port %q is not the ops port %d", where, d.Spec.Template.Annotations["prometheus.io/port"], p.ContainerPort))
				}
			}
		}
	}
	return out
}

// RunChecks runs all checks and returns "check: message" lines.
func RunChecks(objs Objects) []string {
	var out []string
	for _, c := range Checks {
		for _, m := range c.Run(objs) {
			out = append(out, c.ID+": "+m)
		}
	}
	return out
}

type workload struct {
	id       string
	name     string
	realm    bool // a Realmstream service (stricter rules) vs a dev backing service
	labels   map[string]string
	spec     corev1.PodSpec
	replicas *int32
}

func workloads(objs Objects) []workload {
	var out []workload
	for _, d := range objs.Deployments() {
		out = append(out, workload{id: "Deployment/" + d.Name, name: d.Name, realm: isRealm(d.Spec.Template.Labels),
			labels: d.Spec.Template.Labels, spec: d.Spec.Template.Spec, replicas: d.Spec.Replicas})
	}
	for _, s := range objs.StatefulSets() {
		out = append(out, workload{id: "StatefulSet/" + s.Name, name: s.Name, realm: isRealm(s.Spec.Template.Labels),
			labels: s.Spec.Template.Labels, spec: s.Spec.Template.Spec, replicas: s.Spec.Replicas})
	}
	return out
}

func isRealm(l map[string]string) bool { return l["app.kubernetes.io/part-of"] == "realmstream" }

func checkProbes(objs Objects) []string {
	var out []string
	for _, w := range workloads(objs) {
		for _, c := range w.spec.Containers {
			where := w.id + " container " + c.Name
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				out = append(out, where+": needs readiness and liveness probes")
				continue
			}
			if w.realm {
				if c.StartupProbe == nil {
					out = append(out, where+": needs a startup probe")
				}
				if p := httpPath(c.ReadinessProbe); p != "/readyz" {
					out = append(out, fmt.Sprintf("%s: readiness probe path %q, want /readyz", where, p))
				}
				if p := httpPath(c.LivenessProbe); p != "/healthz" {
					out = append(out, fmt.Sprintf("%s: liveness probe path %q, want /healthz", where, p))
				}
			}
			if probeTarget(c.ReadinessProbe) == probeTarget(c.LivenessProbe) {
				out = append(out, where+": readiness probe equals liveness probe (a busy pod would be restarted)")
			}
			for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
				if port, ok := probePort(p); ok && !hasPort(c, port) {
					out = append(out, fmt.Sprintf("%s: probe port %s is not a container port", where, port.String()))
				}
			}
		}
	}
	return out
}

func httpPath(p *corev1.Probe) string {
	if p == nil || p.HTTPGet == nil {
		return ""
	}
	return p.HTTPGet.Path
}

func probeTarget(p *corev1.Probe) string {
	switch {
	case p.HTTPGet != nil:
		return "http " + p.HTTPGet.Path + " " + p.HTTPGet.Port.String()
	case p.TCPSocket != nil:
		return "tcp " + p.TCPSocket.Port.String()
	case p.Exec != nil:
		return "exec " + strings.Join(p.Exec.Command, " ")
	case p.GRPC != nil:
		return fmt.Sprintf("grpc %d", p.GRPC.Port)
	}
	return ""
}

func probePort(p *corev1.Probe) (intstr.IntOrString, bool) {
	switch {
	case p == nil:
	case p.HTTPGet != nil:
		return p.HTTPGet.Port, true
	case p.TCPSocket != nil:
		return p.TCPSocket.Port, true
	}
	return intstr.IntOrString{}, false
}

func hasPort(c corev1.Container, port intstr.IntOrString) bool {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return true
		}
	}
	return false
}

func checkResources(objs Objects) []string {
	var out []string
	for _, w := range workloads(objs) {
		for _, c := range append(append([]corev1.Container{}, w.spec.InitContainers...), w.spec.Containers...) {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[r]; !ok {
					out = append(out, fmt.Sprintf("%s container %s: no %s request", w.id, c.Name, r))
				}
				if _, ok := c.Resources.Limits[r]; !ok {
					out = append(out, fmt.Sprintf("%s container %s: no %s limit", w.id, c.Name, r))
				}
			}
			req, lim := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory]
			if !req.IsZero() && !lim.IsZero() && req.Cmp(lim) > 0 {
				out = append(out, fmt.Sprintf("%s container %s: memory request above its limit", w.id, c.Name))
			}
		}
	}
	return out
}

func checkSecurity(objs Objects) []string {
	var out []string
	for _, w := range workloads(objs) {
		psc := w.spec.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		if w.spec.HostNetwork || w.spec.HostPID || w.spec.HostIPC {
			out = append(out, w.id+": uses host namespaces")
		}
		for _, c := range append(append([]corev1.Container{}, w.spec.InitContainers...), w.spec.Containers...) {
			where := w.id + " container " + c.Name
			sc := c.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			nonRoot := firstBool(sc.RunAsNonRoot, psc.RunAsNonRoot)
			uid := firstInt(sc.RunAsUser, psc.RunAsUser)
			if !nonRoot {
				out = append(out, where+": runAsNonRoot is not true")
			}
			switch {
			case uid == nil:
				out = append(out, where+": no runAsUser (the image's user is not checked by the kubelet before start)")
			case *uid == 0:
				out = append(out, where+": runs as uid 0")
			case w.realm && *uid < 10000:
				out = append(out, fmt.Sprintf("%s: uid %d < 10000 (may collide with a host user)", where, *uid))
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				out = append(out, where+": root file system is writable")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				out = append(out, where+": allowPrivilegeEscalation is not false")
			}
			if sc.Privileged != nil && *sc.Privileged {
				out = append(out, where+": privileged")
			}
			if sc.Capabilities == nil || !containsCap(sc.Capabilities.Drop, "ALL") {
				out = append(out, where+": capabilities not dropped (drop: [ALL])")
			} else if len(sc.Capabilities.Add) > 0 {
				out = append(out, fmt.Sprintf("%s: adds capabilities %v", where, sc.Capabilities.Add))
			}
			seccomp := sc.SeccompProfile
			if seccomp == nil {
				seccomp = psc.SeccompProfile
			}
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				out = append(out, where+": seccomp profile is not RuntimeDefault")
			}
		}
	}
	return out
}

func firstBool(ps ...*bool) bool {
	for _, p := range ps {
		if p != nil {
			return *p
		}
	}
	return false
}

func firstInt(ps ...*int64) *int64 {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

func containsCap(cs []corev1.Capability, want corev1.Capability) bool {
	for _, c := range cs {
		if c == want {
			return true
		}
	}
	return false
}

func checkTmp(objs Objects) []string {
	var out []string
	for _, w := range workloads(objs) {
		if !w.realm {
			continue
		}
		empty := map[string]bool{}
		for _, v := range w.spec.Volumes {
			if v.EmptyDir != nil {
				empty[v.Name] = true
			}
		}
		for _, c := range w.spec.Containers {
			ok := false
			for _, m := range c.VolumeMounts {
				if m.MountPath == "/tmp" && empty[m.Name] {
					ok = true
				}
			}
			if !ok {
				out = append(out, fmt.Sprintf("%s container %s: no emptyDir at /tmp", w.id, c.Name))
			}
		}
	}
	return out
}

// ImageRefProblem says what is wrong with an image reference, or "".
func ImageRefProblem(img string) string {
	if img == "" {
		return "no image"
	}
	if strings.Contains(img, "@sha256:") {
		return ""
	}
	slash := strings.LastIndex(img, "/")
	colon := strings.LastIndex(img, ":")
	if colon <= slash {
		return "no tag (means latest)"
	}
	if tag := img[colon+1:]; tag == "latest" || tag == "" {
		return "tag " + tag + " moves"
	}
	return ""
}

func checkImages(objs Objects) []string {
	var out []string
	for _, w := range workloads(objs) {
		for _, c := range append(append([]corev1.Container{}, w.spec.InitContainers...), w.spec.Containers...) {
			if p := ImageRefProblem(c.Image); p != "" {
				out = append(out, fmt.Sprintf("%s container %s: image %q: %s", w.id, c.Name, c.Image, p))
			}
		}
	}
	return out
}

func selects(sel *metav1.LabelSelector, l map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	return s.Matches(labels.Set(l))
}

func checkPDB(objs Objects) []string {
	var out []string
	pdbs := OfKind[*policyv1.PodDisruptionBudget](objs)
	for _, d := range objs.Deployments() {
		var found *policyv1.PodDisruptionBudget
		for _, p := range pdbs {
			if selects(p.Spec.Selector, d.Spec.Template.Labels) {
				if found != nil {
					out = append(out, fmt.Sprintf("Deployment/%s: selected by two PDBs (%s, %s)", d.Name, found.Name, p.Name))
				}
				found = p
			}
		}
		switch {
		case found == nil:
			out = append(out, fmt.Sprintf("Deployment/%s: no PodDisruptionBudget selects its pods", d.Name))
		case found.Spec.MaxUnavailable == nil || found.Spec.MaxUnavailable.String() != "1":
			out = append(out, fmt.Sprintf("Deployment/%s: PDB %s should allow exactly one pod down (maxUnavailable: 1)", d.Name, found.Name))
		}
	}
	for _, p := range pdbs {
		any := false
		for _, w := range workloads(objs) {
			any = any || selects(p.Spec.Selector, w.labels)
		}
		if !any {
			out = append(out, fmt.Sprintf("PodDisruptionBudget/%s selects no pods", p.Name))
		}
	}
	return out
}

func checkHPA(objs Objects) []string {
	var out []string
	// world: fixed replicas, no HPA: each scale event moves zones, and CPU is
	// not relieved by moving them (issue 17 #6).
	if objs.Get("HorizontalPodAutoscaler", "world") != nil {
		out = append(out, "HorizontalPodAutoscaler/world: world runs fixed replicas (zone moves on every scale event)")
	}
	if d, _ := objs.Get("Deployment", "world").(*appsv1.Deployment); d != nil && (d.Spec.Replicas == nil || *d.Spec.Replicas < 2) {
		out = append(out, "Deployment/world: want fixed replicas >= 2")
	}
	hpas := OfKind[*autoscalingv2.HorizontalPodAutoscaler](objs)
	target := map[string]*autoscalingv2.HorizontalPodAutoscaler{}
	for _, h := range hpas {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || objs.Get("Deployment", ref.Name) == nil {
			out = append(out, fmt.Sprintf("HorizontalPodAutoscaler/%s targets %s %s %s, which is not a Deployment here", h.Name, ref.APIVersion, ref.Kind, ref.Name))
			continue
		}
		target[ref.Name] = h
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 {
			out = append(out, fmt.Sprintf("HorizontalPodAutoscaler/%s: minReplicas < 2 (one pod is a single point of failure)", h.Name))
		}
		if h.Spec.MinReplicas != nil && h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			out = append(out, fmt.Sprintf("HorizontalPodAutoscaler/%s: maxReplicas < minReplicas", h.Name))
		}
		if len(h.Spec.Metrics) == 0 {
			out = append(out, fmt.Sprintf("HorizontalPodAutoscaler/%s: no metrics", h.Name))
		}
		if b := h.Spec.Behavior; b == nil || b.ScaleDown == nil || b.ScaleDown.StabilizationWindowSeconds == nil || *b.ScaleDown.StabilizationWindowSeconds < 300 {
			out = append(out, fmt.Sprintf("HorizontalPodAutoscaler/%s: scale-down stabilization window < 300s (sessions and zones would flap)", h.Name))
		}
	}
	for name := range Autoscaled {
		if objs.Get("Deployment", name) != nil && target[name] == nil {
			out = append(out, fmt.Sprintf("Deployment/%s: no HorizontalPodAutoscaler", name))
		}
	}
	for _, d := range objs.Deployments() {
		if target[d.Name] != nil && d.Spec.Replicas != nil {
			out = append(out, fmt.Sprintf("Deployment/%s: sets replicas although an HPA owns the count (they fight on every apply)", d.Name))
		}
	}
	return out
}

func checkShutdown(objs Objects) []string {
	var out []string
	for _, d := range objs.Deployments() {
		if !isRealm(d.Spec.Template.Labels) {
			continue
		}
		spec := d.Spec.Template.Spec
		grace := int64(30)
		if spec.TerminationGracePeriodSeconds != nil {
			grace = *spec.TerminationGracePeriodSeconds
		}
		for _, c := range spec.Containers {
			where := "Deployment/" + d.Name + " container " + c.Name
			var pre int64
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
				out = append(out, where+": no preStop sleep (SIGTERM would race the endpoint removal)")
			} else {
				pre = c.Lifecycle.PreStop.Sleep.Seconds
				if pre < 5 {
					out = append(out, fmt.Sprintf("%s: preStop sleep %ds < 5s", where, pre))
				}
			}
			env, err := ContainerEnv(objs, c)
			if err != nil {
				out = append(out, where+": "+err.Error())
				continue
			}
			st, ok := env["REALM_SHUTDOWN_TIMEOUT"]
			if !ok {
				out = append(out, where+": REALM_SHUTDOWN_TIMEOUT is not set")
				continue
			}
			dur, err := time.ParseDuration(st.Value)
			if err != nil {
				out = append(out, fmt.Sprintf("%s: REALM_SHUTDOWN_TIMEOUT=%q: %v", where, st.Value, err))
				continue
			}
			if need := pre + int64(dur.Seconds()) + 10; grace < need {
				out = append(out, fmt.Sprintf("%s: terminationGracePeriodSeconds %d < preStop %ds + shutdown %v + 10s", where, grace, pre, dur))
			}
		}
	}
	return out
}

func podLabelsAndContainers(objs Objects) []workload { return workloads(objs) }

func checkServices(objs Objects) []string {
	var out []string
	for _, s := range OfKind[*corev1.Service](objs) {
		if len(s.Spec.Selector) == 0 {
			out = append(out, fmt.Sprintf("Service/%s: no selector", s.Name))
			continue
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		var matched []workload
		for _, w := range podLabelsAndContainers(objs) {
			if sel.Matches(labels.Set(w.labels)) {
				matched = append(matched, w)
			}
		}
		if len(matched) == 0 {
			out = append(out, fmt.Sprintf("Service/%s: selects no pods", s.Name))
			continue
		}
		for _, p := range s.Spec.Ports {
			tp := p.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(p.Port)
			}
			for _, w := range matched {
				found := false
				for _, c := range w.spec.Containers {
					found = found || hasPort(c, tp)
				}
				if !found {
					out = append(out, fmt.Sprintf("Service/%s port %s: target %s is not a port of %s", s.Name, p.Name, tp.String(), w.id))
				}
			}
		}
	}
	return out
}

func checkNetworkPolicies(objs Objects) []string {
	var out []string
	nps := OfKind[*networkingv1.NetworkPolicy](objs)
	deny := false
	for _, n := range nps {
		if len(n.Spec.PodSelector.MatchLabels) == 0 && len(n.Spec.PodSelector.MatchExpressions) == 0 &&
			len(n.Spec.Ingress) == 0 && len(n.Spec.Egress) == 0 && len(n.Spec.PolicyTypes) == 2 {
			deny = true
		}
	}
	if !deny {
		out = append(out, "no default-deny NetworkPolicy (empty pod selector, Ingress and Egress, no rules)")
	}
	type podSet struct {
		id     string
		labels map[string]string
	}
	var pods []podSet
	for _, w := range workloads(objs) {
		pods = append(pods, podSet{w.id, w.labels})
	}
	// Pods an operator makes from a custom resource (CloudNativePG labels
	// its instances cnpg.io/cluster=<name>) are denied like any other.
	for _, o := range objs {
		if o.Kind == "Cluster" && o.Custom != nil {
			pods = append(pods, podSet{"Cluster/" + o.Name, map[string]string{"cnpg.io/cluster": o.Name}})
		}
	}
	for _, p := range pods {
		own := false
		for _, n := range nps {
			sel := n.Spec.PodSelector
			if len(sel.MatchLabels)+len(sel.MatchExpressions) > 0 && selects(&sel, p.labels) {
				own = true
			}
		}
		if !own {
			out = append(out, p.id+": no NetworkPolicy of its own selects its pods")
		}
	}
	return out
}

func checkServiceAccounts(objs Objects) []string {
	var out []string
	for _, d := range objs.Deployments() {
		spec := d.Spec.Template.Spec
		if spec.ServiceAccountName == "" || spec.ServiceAccountName == "default" {
			out = append(out, fmt.Sprintf("Deployment/%s: runs as the default ServiceAccount", d.Name))
		} else if objs.Get("ServiceAccount", spec.ServiceAccountName) == nil {
			out = append(out, fmt.Sprintf("Deployment/%s: ServiceAccount %s is not in the manifests", d.Name, spec.ServiceAccountName))
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			out = append(out, fmt.Sprintf("Deployment/%s: mounts an API token it does not need", d.Name))
		}
	}
	return out
}

func checkConfigRefs(objs Objects) []string {
	var out []string
	clusters := map[string]bool{}
	for _, o := range objs {
		if o.Kind == "Cluster" && o.Custom != nil {
			clusters[o.Name+"-app"] = true
			clusters[o.Name+"-ca"] = true // the cluster's CA (ca.crt), for sslmode=verify-full
		}
	}
	secretOK := func(name string) bool {
		return objs.Get("Secret", name) != nil || ExternalSecrets[name] || clusters[name]
	}
	for _, w := range workloads(objs) {
		for _, c := range w.spec.Containers {
			where := w.id + " container " + c.Name
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					out = append(out, cmRef(objs, where, ef.ConfigMapRef.Name)...)
				}
				if ef.SecretRef != nil && !secretOK(ef.SecretRef.Name) {
					out = append(out, fmt.Sprintf("%s: Secret %s is neither in the manifests nor a documented external secret", where, ef.SecretRef.Name))
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					out = append(out, cmRef(objs, where, r.Name)...)
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil && !secretOK(r.Name) {
					out = append(out, fmt.Sprintf("%s: env %s: Secret %s is neither in the manifests nor a documented external secret", where, e.Name, r.Name))
				}
			}
			if _, err := ContainerEnv(objs, c); err != nil {
				out = append(out, where+": "+err.Error())
			}
		}
		for _, v := range w.spec.Volumes {
			if v.ConfigMap != nil {
				out = append(out, cmRef(objs, w.id, v.ConfigMap.Name)...)
			}
			if v.Secret != nil && !secretOK(v.Secret.SecretName) {
				out = append(out, fmt.Sprintf("%s: volume %s: Secret %s is neither in the manifests nor a documented external secret", w.id, v.Name, v.Secret.SecretName))
			}
		}
	}
	return out
}

func cmRef(objs Objects, where, name string) []string {
	cm, _ := objs.Get("ConfigMap", name).(*corev1.ConfigMap)
	if cm == nil {
		return []string{fmt.Sprintf("%s: ConfigMap %s is not in the manifests", where, name)}
	}
	// configMapGenerator names end in -<10-char hash>: a change rolls the pods.
	if i := strings.LastIndex(name, "-"); i < 0 || len(name)-i-1 != 10 {
		return []string{fmt.Sprintf("%s: ConfigMap %s has no content hash suffix (use configMapGenerator)", where, name)}
	}
	return nil
}

func checkSpread(objs Objects) []string {
	var out []string
	for _, name := range []string{"gateway", "world"} {
		d, _ := objs.Get("Deployment", name).(*appsv1.Deployment)
		if d == nil {
			continue
		}
		spec := d.Spec.Template.Spec
		spread := false
		for _, t := range spec.TopologySpreadConstraints {
			spread = spread || (t.TopologyKey == "kubernetes.io/hostname" && selects(t.LabelSelector, d.Spec.Template.Labels))
		}
		if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
			for _, t := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
				spread = spread || (t.PodAffinityTerm.TopologyKey == "kubernetes.io/hostname" && selects(t.PodAffinityTerm.LabelSelector, d.Spec.Template.Labels))
			}
		}
		if !spread {
			out = append(out, fmt.Sprintf("Deployment/%s: no topology spread or anti-affinity over nodes", name))
		}
	}
	return out
}

func checkNamespace(objs Objects) []string {
	var out []string
	ns := ""
	var nsObj *corev1.Namespace
	for _, o := range objs {
		if n, ok := o.Typed.(*corev1.Namespace); ok {
			nsObj = n
			continue
		}
		if o.Namespace == "" {
			out = append(out, o.ID()+": no namespace")
			continue
		}
		if ns == "" {
			ns = o.Namespace
		} else if o.Namespace != ns {
			out = append(out, fmt.Sprintf("%s: namespace %s, others %s", o.ID(), o.Namespace, ns))
		}
	}
	// A first deploy to a fresh cluster needs the Namespace object, and Pod
	// Security admission must enforce the profile the pods are written for.
	switch {
	case nsObj == nil:
		out = append(out, fmt.Sprintf("no Namespace object for %s: a first deploy to a fresh cluster fails", ns))
	case nsObj.Name != ns:
		out = append(out, fmt.Sprintf("Namespace/%s, objects are in %s", nsObj.Name, ns))
	default:
		for _, k := range []string{"enforce", "audit", "warn"} {
			if v := nsObj.Labels["pod-security.kubernetes.io/"+k]; v != "restricted" {
				out = append(out, fmt.Sprintf("Namespace/%s: pod-security.kubernetes.io/%s is %q, want restricted", ns, k, v))
			}
		}
	}
	return out
}

func checkSecretRotation(objs Objects) []string {
	var out []string
	for _, d := range objs.Deployments() {
		spec := d.Spec.Template.Spec
		reads := false
		for _, v := range spec.Volumes {
			reads = reads || v.Secret != nil
		}
		for _, c := range spec.Containers {
			for _, ef := range c.EnvFrom {
				reads = reads || ef.SecretRef != nil
			}
			for _, e := range c.Env {
				reads = reads || (e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil)
			}
		}
		if reads && d.Annotations["reloader.stakater.com/auto"] != "true" {
			out = append(out, fmt.Sprintf("Deployment/%s reads Secrets but has no reloader.stakater.com/auto: a rotated Secret would not restart it", d.Name))
		}
	}
	return out
}

package deploy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestNetworkConnectivity evaluates the rendered NetworkPolicies of each
// overlay: every connection a service needs is allowed, every other listed
// one refused (issue 17 #10).
func TestNetworkConnectivity(t *testing.T) {
	for _, env := range Overlays {
		t.Run(env, func(t *testing.T) {
			objs := buildOverlay(t, env)
			for _, p := range CheckConnectivity(objs, OverlayNamespaces[env], WantConnectivity(env)) {
				t.Error(p)
			}
		})
	}
}

// TestConnectivityCatchesBrokenPolicies: edits that broke production while
// the static checks passed must fail the connectivity check.
func TestConnectivityCatchesBrokenPolicies(t *testing.T) {
	np := func(objs Objects, name string) *networkingv1.NetworkPolicy {
		return get[*networkingv1.NetworkPolicy](objs, "NetworkPolicy", name)
	}
	cases := []struct {
		name, env, want string
		breakIt         func(Objects)
	}{
		{"world egress without 6379/26379", "prod", "world -> redis:6379", func(o Objects) {
			p := np(o, "world")
			for i := range p.Spec.Egress {
				var keep []networkingv1.NetworkPolicyPort
				for _, pt := range p.Spec.Egress[i].Ports {
					if pt.Port.IntVal != 6379 && pt.Port.IntVal != 26379 {
						keep = append(keep, pt)
					}
				}
				p.Spec.Egress[i].Ports = keep
			}
			p.Spec.Egress = dropPortless(p.Spec.Egress)
		}},
		{"dev Postgres ingress from the gateway instead of persist", "dev", "persist -> pg-shard0:5432", func(o Objects) {
			np(o, "postgres").Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/name"] = "gateway"
		}},
		{"world egress by ports only (no to:)", "staging", "allowed that must be refused: world -> internet:6379", func(o Objects) {
			for i := range np(o, "world").Spec.Egress {
				np(o, "world").Spec.Egress[i].To = nil
			}
		}},
		{"NATS patch aimed at the wrong namespace", "prod", "gateway -> nats:4222", func(o Objects) {
			np(o, "gateway").Spec.Egress[1].To[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] = "nats-staging"
		}},
		{"no DNS", "staging", "monitor -> dns:53/UDP", func(o Objects) {
			np(o, "monitor").Spec.Egress = np(o, "monitor").Spec.Egress[1:]
		}},
		{"webhook rule opened to the private network", "prod", "monitor -> private-host:443", func(o Objects) {
			for i, r := range np(o, "monitor").Spec.Egress {
				for j := range r.To {
					if r.To[j].IPBlock != nil {
						np(o, "monitor").Spec.Egress[i].To[j].IPBlock.Except = nil
					}
				}
			}
		}},
		{"gateway ops port public", "dev", "internet -> gateway:8080", func(o Objects) {
			np(o, "gateway").Spec.Ingress[0].Ports = append(np(o, "gateway").Spec.Ingress[0].Ports, networkingv1.NetworkPolicyPort{Port: ptrPort("ops")})
		}},
		{"default deny gone and world policy ingress-only", "prod", "stranger -> world:8081", func(o Objects) {
			var keep Objects
			for _, x := range o {
				if x.Name != "default-deny" {
					keep = append(keep, x)
				}
			}
			copy(o, keep)
			for i := len(keep); i < len(o); i++ {
				o[i] = Object{Kind: "Removed"}
			}
			p := np(o, "world")
			p.Spec.Ingress = append(p.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
		}},
		{"CNPG pods lose the label persist selects", "staging", "persist -> realm-shard1:5432", func(o Objects) {
			for _, x := range o {
				if x.Kind == "Cluster" && x.Name == "realm-shard1" {
					delete(x.Custom["spec"].(map[string]any), "inheritedMetadata")
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs := fresh(t, buildOverlay(t, c.env))
			if p := CheckConnectivity(objs, OverlayNamespaces[c.env], WantConnectivity(c.env)); len(p) > 0 {
				t.Fatalf("the unbroken overlay fails already: %v", p)
			}
			c.breakIt(objs)
			probs := CheckConnectivity(objs, OverlayNamespaces[c.env], WantConnectivity(c.env))
			for _, p := range probs {
				if strings.Contains(p, c.want) {
					return
				}
			}
			t.Fatalf("not caught (want %q); problems: %v", c.want, probs)
		})
	}
}

func dropPortless(rs []networkingv1.NetworkPolicyEgressRule) []networkingv1.NetworkPolicyEgressRule {
	var out []networkingv1.NetworkPolicyEgressRule
	for _, r := range rs {
		if len(r.Ports) > 0 {
			out = append(out, r)
		}
	}
	return out
}

func ptrPort(name string) *intstr.IntOrString { v := intstr.FromString(name); return &v }

// TestNetworkSemantics pins the evaluator to the NetworkPolicy rules it
// implements: no policy = open; a selecting policy isolates; an empty peer
// list is everyone; ipBlock except; named ports are the destination's.
func TestNetworkSemantics(t *testing.T) {
	tcp := corev1.ProtocolTCP
	pod := func(name string, l map[string]string) Peer {
		return Peer{Name: name, Namespace: "ns", NSLabels: map[string]string{"kubernetes.io/metadata.name": "ns"}, Labels: l, Governed: true, Ports: map[string]int32{"ops": 8081}}
	}
	n := &Network{Namespace: "ns", Peers: map[string]Peer{
		"a": pod("a", map[string]string{"app": "a"}), "b": pod("b", map[string]string{"app": "b"}),
		"out": {Name: "out", IP: "8.8.8.8"}, "lan": {Name: "lan", IP: "10.0.0.1"},
	}}
	if ok, _ := n.Allowed(Conn{From: "a", To: "b", Port: 1}); !ok {
		t.Fatal("no policy: must be open")
	}
	n.Policies = []*networkingv1.NetworkPolicy{{Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "b"}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: ptrPort("ops")}},
		}},
	}}, {Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress: []networkingv1.NetworkPolicyEgressRule{
			{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}},
			{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8"}}}}},
		},
	}}}
	for _, c := range []struct {
		conn Conn
		want bool
	}{
		{Conn{From: "a", To: "b", Port: 8081}, true},
		{Conn{From: "a", To: "b", Port: 8082}, false},
		{Conn{From: "b", To: "b", Port: 8081}, false},
		{Conn{From: "a", To: "out", Port: 443}, true},
		{Conn{From: "a", To: "lan", Port: 443}, false},
		{Conn{From: "a", To: "b", Port: 8081, Protocol: corev1.ProtocolUDP}, false},
		{Conn{From: "b", To: "out", Port: 443}, true}, // b has no egress policy
	} {
		if ok, why := n.Allowed(c.conn); ok != c.want {
			t.Errorf("%s: allowed=%v (%s), want %v", c.conn, ok, why, c.want)
		}
	}
}

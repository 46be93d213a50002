package deploy

import (
	"fmt"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Peer is one end of a connection: a pod (namespace, its labels and the
// labels of its namespace, its named container ports) or an address outside
// the cluster (IP).
type Peer struct {
	Name      string
	Namespace string
	NSLabels  map[string]string
	Labels    map[string]string
	Ports     map[string]int32 // named container ports (a policy may name a port)
	IP        string           // set for an address outside the cluster
	// Governed: the pod's ingress is decided by the NetworkPolicies of the
	// rendered overlay (pods of the overlay's namespace). Pods of other
	// namespaces (the operators' NATS, Redis, the collector) have policies
	// we do not render: only the source's egress is checked for them.
	Governed bool
}

// Conn is one connection from a peer to a peer's port.
type Conn struct {
	From, To string
	Port     int32
	Protocol corev1.Protocol // "" = TCP
}

func (c Conn) String() string {
	p := c.Protocol
	if p == "" {
		p = corev1.ProtocolTCP
	}
	return fmt.Sprintf("%s -> %s:%d/%s", c.From, c.To, c.Port, p)
}

// Network evaluates the NetworkPolicies of one rendered overlay as the
// Kubernetes NetworkPolicy semantics define them: a connection is allowed
// when the source may send it (no policy with Egress selects the source, or
// a rule of one that does matches the destination and port) and the
// destination may receive it (likewise with Ingress).
type Network struct {
	Namespace string
	Policies  []*networkingv1.NetworkPolicy
	Peers     map[string]Peer
}

// NewNetwork takes the NetworkPolicies and the pods (Deployments,
// StatefulSets, CloudNativePG clusters) of objs in namespace ns, plus the
// outside peers.
func NewNetwork(objs Objects, ns string, outside ...Peer) *Network {
	n := &Network{Namespace: ns, Peers: map[string]Peer{}}
	for _, p := range OfKind[*networkingv1.NetworkPolicy](objs) {
		if p.Namespace == "" || p.Namespace == ns {
			n.Policies = append(n.Policies, p)
		}
	}
	nsl := map[string]string{"kubernetes.io/metadata.name": ns}
	for _, w := range workloads(objs) {
		ports := map[string]int32{}
		for _, c := range w.spec.Containers {
			for _, p := range c.Ports {
				if p.Name != "" {
					ports[p.Name] = p.ContainerPort
				}
			}
		}
		n.Peers[w.name] = Peer{Name: w.name, Namespace: ns, NSLabels: nsl, Labels: w.labels, Ports: ports, Governed: true}
	}
	for _, o := range objs {
		if o.Kind == "Cluster" && o.Custom != nil {
			l := map[string]string{"cnpg.io/cluster": o.Name, "cnpg.io/podRole": "instance"}
			// spec.inheritedMetadata.labels: CloudNativePG puts them on every instance pod.
			if spec, ok := o.Custom["spec"].(map[string]any); ok {
				if im, ok := spec["inheritedMetadata"].(map[string]any); ok {
					if ls, ok := im["labels"].(map[string]any); ok {
						for k, v := range ls {
							l[k] = fmt.Sprint(v)
						}
					}
				}
			}
			n.Peers[o.Name] = Peer{Name: o.Name, Namespace: ns, NSLabels: nsl, Governed: true, Labels: l,
				Ports: map[string]int32{"postgresql": 5432, "metrics": 9187}}
		}
	}
	for _, p := range outside {
		if p.Namespace != "" && p.NSLabels == nil {
			p.NSLabels = map[string]string{"kubernetes.io/metadata.name": p.Namespace}
		}
		n.Peers[p.Name] = p
	}
	return n
}

// Allowed reports whether c is allowed, and if not which side refuses it.
func (n *Network) Allowed(c Conn) (bool, string) {
	src, ok := n.Peers[c.From]
	if !ok {
		return false, "unknown source " + c.From
	}
	dst, ok := n.Peers[c.To]
	if !ok {
		return false, "unknown destination " + c.To
	}
	proto := c.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	if src.IP == "" && src.Namespace == n.Namespace {
		if !n.admits(src, networkingv1.PolicyTypeEgress, dst, c.Port, proto) {
			return false, "egress of " + src.Name
		}
	}
	if dst.Governed {
		if !n.admits(dst, networkingv1.PolicyTypeIngress, src, c.Port, proto) {
			return false, "ingress of " + dst.Name
		}
	}
	return true, ""
}

// admits: the policies selecting pod for direction dir allow peer on port.
func (n *Network) admits(pod Peer, dir networkingv1.PolicyType, peer Peer, port int32, proto corev1.Protocol) bool {
	isolated := false
	for _, p := range n.Policies {
		if !selectsAll(&p.Spec.PodSelector, pod.Labels) || !hasType(p, dir) {
			continue
		}
		isolated = true
		if dir == networkingv1.PolicyTypeEgress {
			for _, r := range p.Spec.Egress {
				// A named port in an egress rule is the destination's.
				if n.peersMatch(r.To, peer) && portsMatch(r.Ports, port, proto, peer.Ports) {
					return true
				}
			}
		} else {
			for _, r := range p.Spec.Ingress {
				if n.peersMatch(r.From, peer) && portsMatch(r.Ports, port, proto, pod.Ports) {
					return true
				}
			}
		}
	}
	return !isolated
}

func hasType(p *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	if len(p.Spec.PolicyTypes) == 0 { // the API server's default
		return t == networkingv1.PolicyTypeIngress || len(p.Spec.Egress) > 0
	}
	for _, x := range p.Spec.PolicyTypes {
		if x == t {
			return true
		}
	}
	return false
}

// peersMatch: an empty list is every peer; otherwise one must match.
func (n *Network) peersMatch(ps []networkingv1.NetworkPolicyPeer, peer Peer) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		switch {
		case p.IPBlock != nil:
			if peer.IP != "" && inBlock(p.IPBlock, peer.IP) {
				return true
			}
		case peer.IP != "":
			// pod and namespace selectors never match an outside address
		case p.NamespaceSelector == nil:
			if peer.Namespace == n.Namespace && p.PodSelector != nil && selectsAll(p.PodSelector, peer.Labels) {
				return true
			}
		default:
			if selectsAll(p.NamespaceSelector, peer.NSLabels) && (p.PodSelector == nil || selectsAll(p.PodSelector, peer.Labels)) {
				return true
			}
		}
	}
	return false
}

// selectsAll is selects where an empty selector matches everything.
func selectsAll(sel *metav1.LabelSelector, l map[string]string) bool {
	if sel == nil {
		return false
	}
	if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		return true
	}
	return selects(sel, l)
}

func inBlock(b *networkingv1.IPBlock, ip string) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	pfx, err := netip.ParsePrefix(b.CIDR)
	if err != nil || !pfx.Contains(addr) {
		return false
	}
	for _, e := range b.Except {
		if x, err := netip.ParsePrefix(e); err == nil && x.Contains(addr) {
			return false
		}
	}
	return true
}

func portsMatch(ps []networkingv1.NetworkPolicyPort, port int32, proto corev1.Protocol, named map[string]int32) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		var lo int32
		if p.Port.Type == intstr.String {
			v, ok := named[p.Port.StrVal]
			if !ok {
				continue
			}
			lo = v
		} else {
			lo = p.Port.IntVal
		}
		hi := lo
		if p.EndPort != nil {
			hi = *p.EndPort
		}
		if port >= lo && port <= hi {
			return true
		}
	}
	return false
}

// Connectivity is what an overlay's network must allow and must refuse.
type Connectivity struct {
	Outside []Peer
	Allow   []Conn
	Deny    []Conn
}

// CheckConnectivity returns one message per required connection the rendered
// policies refuse and per forbidden one they allow.
func CheckConnectivity(objs Objects, ns string, want Connectivity) []string {
	n := NewNetwork(objs, ns, want.Outside...)
	var out []string
	for _, c := range want.Allow {
		if ok, why := n.Allowed(c); !ok {
			out = append(out, fmt.Sprintf("needed connection refused: %s (by the %s)", c, why))
		}
	}
	for _, c := range want.Deny {
		if ok, _ := n.Allowed(c); ok {
			out = append(out, fmt.Sprintf("connection allowed that must be refused: %s", c))
		}
	}
	sort.Strings(out)
	return out
}

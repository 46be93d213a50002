package deploy

import corev1 "k8s.io/api/core/v1"

// OverlayNamespaces are the namespaces the overlays deploy into.
var OverlayNamespaces = map[string]string{"dev": "realmstream-dev", "staging": "realmstream-staging", "prod": "realmstream"}

// opsPorts are the services' ops ports (REALM_HTTP_ADDR; the
// ports-match-config check holds the manifests to them).
var opsPorts = map[string]int32{"gateway": 8080, "world": 8081, "persist": 8082, "monitor": 8083}

// Addresses outside the cluster used as connection ends.
const (
	internetIP = "203.0.113.10" // a game client, a webhook receiver
	privateIP  = "10.20.30.40"  // some host of the cluster's private network
)

// WantConnectivity is every connection the services of overlay need (each
// must be allowed by the rendered NetworkPolicies) and a list of connections
// they must not be able to make or receive.
func WantConnectivity(overlay string) Connectivity {
	natsNS, redisNS := OverlayNamespaces[overlay], OverlayNamespaces[overlay] // dev runs them in its namespace
	shards := []string{"pg-shard0", "pg-shard1"}
	switch overlay {
	case "staging":
		natsNS, redisNS = "nats-staging", "redis-staging"
		shards = []string{"realm-shard0", "realm-shard1"}
	case "prod":
		natsNS, redisNS = "nats", "redis"
		shards = []string{"realm-shard0", "realm-shard1"}
	}
	w := Connectivity{Outside: []Peer{
		{Name: "dns", Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns"}},
		{Name: "prometheus", Namespace: "monitoring", Labels: map[string]string{"app.kubernetes.io/name": "prometheus"}},
		{Name: "collector", Namespace: "observability", Labels: map[string]string{"app.kubernetes.io/name": "opentelemetry-collector"}},
		{Name: "internet", IP: internetIP},
		{Name: "private-host", IP: privateIP},
		{Name: "stranger", Namespace: "other-team", Labels: map[string]string{"app.kubernetes.io/name": "stranger"}},
		// A Redis and a NATS that are not ours (another team's namespace).
		{Name: "other-redis", Namespace: "other-team", Labels: map[string]string{"app.kubernetes.io/name": "redis"}},
		{Name: "other-nats", Namespace: "other-team", Labels: map[string]string{"app.kubernetes.io/name": "nats"}},
	}}
	if overlay != "dev" {
		w.Outside = append(w.Outside,
			Peer{Name: "nats", Namespace: natsNS, Labels: map[string]string{"app.kubernetes.io/name": "nats"}},
			Peer{Name: "redis", Namespace: redisNS, Labels: map[string]string{"app.kubernetes.io/name": "redis"}},
			Peer{Name: "cnpg-operator", Namespace: "cnpg-system", Labels: map[string]string{"app.kubernetes.io/name": "cloudnative-pg"}})
	}
	allow := func(from, to string, port int32) { w.Allow = append(w.Allow, Conn{From: from, To: to, Port: port}) }
	deny := func(from, to string, port int32) { w.Deny = append(w.Deny, Conn{From: from, To: to, Port: port}) }
	for _, svc := range Services {
		w.Allow = append(w.Allow, Conn{From: svc, To: "dns", Port: 53, Protocol: corev1.ProtocolUDP})
		allow(svc, "dns", 53)
		allow(svc, "nats", 4222)
		allow(svc, "collector", 4318)
		allow("prometheus", svc, opsPorts[svc])
		deny(svc, "other-nats", 4222)
		deny(svc, "stranger", 8080)
		deny("stranger", svc, opsPorts[svc])
		deny(svc, "internet", 5432)
		deny(svc, "private-host", 443)
		if svc != "gateway" {
			deny("internet", svc, opsPorts[svc])
		}
		if svc != "world" {
			deny(svc, "redis", 6379)
			deny(svc, "redis", 26379)
		}
		if svc != "persist" {
			for _, sh := range shards {
				deny(svc, sh, 5432)
			}
		}
		if svc != "monitor" {
			deny(svc, "internet", 443)
		}
	}
	allow("internet", "gateway", 7000)
	allow("internet", "gateway", 7001)
	deny("internet", "gateway", 8080) // the ops port is not public
	allow("world", "redis", 6379)
	if overlay != "dev" {
		allow("world", "redis", 26379) // the Sentinels
	}
	deny("world", "internet", 6379)
	deny("world", "other-redis", 6379)
	deny("world", "private-host", 6379)
	for _, sh := range shards {
		allow("persist", sh, 5432)
		deny("internet", sh, 5432)
		deny("stranger", sh, 5432)
		if overlay != "dev" {
			allow(shards[0], sh, 5432) // replication between the instances
			allow("cnpg-operator", sh, 8000)
			allow("prometheus", sh, 9187)
		}
	}
	allow("monitor", "internet", 443) // the alert webhook
	if overlay == "dev" {
		allow("prometheus", "nats", 8222)
		deny("internet", "nats", 4222)
		deny("internet", "redis", 6379)
		deny("gateway", "nats", 8222)
	}
	return w
}

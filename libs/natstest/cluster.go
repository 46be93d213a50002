package natstest

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/realmstream/realmstream/libs/freeport"
)

// Cluster is n embedded JetStream servers routed to each other in one
// cluster: enough for stream and bucket replicas (R3) to be placed for real.
type Cluster struct {
	Servers []*server.Server
	// URL lists every server's client URL, comma-separated (nats.Connect
	// accepts the list and fails over between them).
	URL string
}

// StartCluster runs an n-node JetStream cluster in-process, each node with
// its own store dir, and waits until it has elected a meta leader. The
// servers are shut down when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	c := &Cluster{}
	var urls []string
	for i := 0; i < n; i++ {
		o := &server.Options{
			ServerName: fmt.Sprintf("natstest-%d", i),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: "natstest",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: routes,
		}
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatalf("natstest: cluster node %d: %v", i, err)
		}
		go s.Start()
		if !s.ReadyForConnections(30 * time.Second) { // generous: CI runs every package at once (load 10)
			t.Fatalf("natstest: cluster node %d not ready within 30s (its client port or route port %d could not be bound?)", i, ports[i])
		}
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		c.Servers = append(c.Servers, s)
		urls = append(urls, s.ClientURL())
	}
	c.URL = strings.Join(urls, ",")
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := true
		for _, s := range c.Servers {
			if !s.JetStreamIsCurrent() || !hasMetaLeader(c.Servers) {
				ready = false
			}
		}
		if ready {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal("natstest: the cluster did not elect a JetStream meta leader that sees every node within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hasMetaLeader: a meta leader that sees every node online with JetStream
// (elected before it heard from all peers, it refuses an R3 stream: "no
// suitable peers for placement, peer offline"; CI's TestR3Commits once).
func hasMetaLeader(ss []*server.Server) bool {
	for _, s := range ss {
		if s.JetStreamIsLeader() {
			return len(s.JetStreamClusterPeers()) >= len(ss)
		}
	}
	return false
}

// freePort is a port below the ephemeral range (libs/freeport): a route
// port picked with :0 was taken by another package's outgoing connection
// before the node bound it (CI, 2 Dec: "cluster node 1 not ready").
func freePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Package natsembed runs a NATS server with JetStream inside the current
// process: the backbone of the one-machine stack and of the tests.
package natsembed

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/realmstream/realmstream/libs/freeport"
)

// SyncPolicy says when JetStream fsyncs its files.
//
// JetStream acknowledges a publish once the message is in the OS page cache and
// fsyncs on an interval (2 minutes by default): a power loss or kernel crash of
// a single server can lose acknowledged messages. "always" fsyncs before each
// ack: nothing acknowledged is lost even on one machine, at a cost measured in
// docs/benchmarks.md. In a replicated cluster (R3) the interval is usually
// enough: an ack means a quorum holds the message.
type SyncPolicy string

// Sync policies.
const (
	SyncDefault SyncPolicy = ""       // the server's default interval (2m)
	SyncAlways  SyncPolicy = "always" // fsync before every ack
)

// ParseSync parses "", "default", "always" or a Go duration ("1s").
func ParseSync(s string) (SyncPolicy, error) {
	switch s {
	case "", "default":
		return SyncDefault, nil
	case "always":
		return SyncAlways, nil
	}
	if _, err := time.ParseDuration(s); err != nil {
		return "", fmt.Errorf("natsembed: sync %q: want default, always or a duration such as 1s", s)
	}
	return SyncPolicy(s), nil
}

// Config configures an embedded server.
type Config struct {
	// Host to listen on; default 127.0.0.1.
	Host string
	// Port to listen on; -1 picks a free port; 0 means 4222.
	Port int
	// StoreDir is the JetStream data directory (required).
	StoreDir string
	// Sync is the fsync policy (see SyncPolicy).
	Sync SyncPolicy
	// ServerName names the server (default "realmstream-embedded").
	ServerName string
	// MaxPayload bounds a message (default 1 MiB).
	MaxPayload int32
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.StoreDir == "" {
		return errors.New("natsembed: StoreDir is required (a directory for JetStream data)")
	}
	if _, err := ParseSync(string(c.Sync)); err != nil {
		return err
	}
	return nil
}

// Start starts the server and waits until it accepts connections.
func Start(c Config) (*server.Server, error) {
	opts, err := c.options()
	if err != nil {
		return nil, err
	}
	return start(opts)
}

func (c Config) options() (*server.Options, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: c.ServerName,
		Host:       c.Host,
		Port:       c.Port,
		JetStream:  true,
		StoreDir:   c.StoreDir,
		MaxPayload: c.MaxPayload,
		NoSigs:     true,
		NoLog:      true,
	}
	if opts.ServerName == "" {
		opts.ServerName = "realmstream-embedded"
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = 4222
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 1 << 20
	}
	switch c.Sync {
	case SyncDefault:
	case SyncAlways:
		opts.SyncAlways = true
	default:
		d, _ := time.ParseDuration(string(c.Sync))
		opts.SyncInterval = d
	}
	return opts, nil
}

func start(opts *server.Options) (*server.Server, error) {
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("natsembed: server on %s:%d not ready within 10s (port in use?)", opts.Host, opts.Port)
	}
	return s, nil
}

// StartCluster starts n servers routed to each other in one JetStream
// cluster inside this process (n = 3 gives replicated R3 streams on one
// machine: every append goes through a Raft quorum, as in production). Node
// i listens for clients on c.Port+i (free ports when c.Port is -1), for
// routes on a free loopback port, and keeps its store in c.StoreDir/node-i.
// It returns once the cluster has a JetStream meta leader; Shutdown stops it.
func StartCluster(c Config, n int) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("natsembed: a cluster of %d servers: want >= 1", n)
	}
	if n == 1 {
		s, err := Start(c)
		if err != nil {
			return nil, err
		}
		return &Cluster{Servers: []*server.Server{s}}, nil
	}
	routePorts := make([]int, n)
	var routes []*url.URL
	for i := range routePorts {
		p, err := freeport.Port() // below the ephemeral range: not taken by an outgoing connection before the node binds it
		if err != nil {
			return nil, fmt.Errorf("natsembed: a route port: %w", err)
		}
		routePorts[i] = p
		routes = append(routes, &url.URL{Scheme: "nats", Host: "127.0.0.1:" + strconv.Itoa(routePorts[i])})
	}
	cl := &Cluster{}
	for i := 0; i < n; i++ {
		nc := c
		nc.StoreDir = filepath.Join(c.StoreDir, "node-"+strconv.Itoa(i))
		nc.ServerName = fmt.Sprintf("%s-%d", cmp.Or(c.ServerName, "realmstream-embedded"), i)
		if c.Port > 0 {
			nc.Port = c.Port + i
		} else if c.Port == 0 {
			nc.Port = 4222 + i
		}
		opts, err := nc.options()
		if err != nil {
			cl.Shutdown()
			return nil, err
		}
		opts.Cluster = server.ClusterOpts{Name: cmp.Or(c.ServerName, "realmstream-embedded"), Host: "127.0.0.1", Port: routePorts[i]}
		opts.Routes = routes
		s, err := start(opts)
		if err != nil {
			cl.Shutdown()
			return nil, fmt.Errorf("natsembed: cluster node %d: %w", i, err)
		}
		cl.Servers = append(cl.Servers, s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !cl.ready() {
		if time.Now().After(deadline) {
			cl.Shutdown()
			return nil, errors.New("natsembed: the cluster did not elect a JetStream meta leader that sees every node within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cl, nil
}

// Cluster is the servers of StartCluster.
type Cluster struct {
	Servers []*server.Server
}

// URL lists every server's client URL, comma-separated (nats.Connect takes
// the list and fails over between them).
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// Shutdown stops every server and waits for them.
func (c *Cluster) Shutdown() {
	for _, s := range c.Servers {
		s.Shutdown()
	}
	for _, s := range c.Servers {
		s.WaitForShutdown()
	}
}

// ready: every node is current with the meta leader, and the leader sees
// every node online with JetStream (a leader elected before it has heard
// from all peers refuses an R3 stream: "no suitable peers for placement").
func (c *Cluster) ready() bool {
	leader := false
	for _, s := range c.Servers {
		if !s.JetStreamIsCurrent() {
			return false
		}
		if s.JetStreamIsLeader() {
			leader = len(s.JetStreamClusterPeers()) >= len(c.Servers)
		}
	}
	return leader
}

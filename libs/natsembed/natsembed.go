// Package natsembed runs a NATS server with JetStream inside the current
// process: the backbone of the one-machine stack and of the tests.
package natsembed

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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

// Package natstest starts real NATS servers with JetStream in-process for
// tests (nats-server v2.15, not the older system server). Only tests import it.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/natsembed"
	"github.com/realmstream/realmstream/libs/wire"
)

// Server is a running embedded JetStream server.
type Server struct {
	*server.Server
	URL      string
	StoreDir string
}

// Start runs a JetStream server on a free port with its own data directory;
// it is shut down when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartDir(t, t.TempDir(), -1)
}

// StartDir runs a server on the given store dir and port (-1 for a free one).
// Restarting with the same dir and port simulates a server restart.
func StartDir(t testing.TB, dir string, port int) *Server {
	t.Helper()
	s, err := natsembed.Start(natsembed.Config{Port: port, StoreDir: dir, ServerName: "natstest"})
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return &Server{Server: s, URL: s.ClientURL(), StoreDir: dir}
}

// Connect opens a client connection closed at the end of the test.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("natstest: connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// StartWithStreams starts a server, connects, and creates the contract's streams.
func StartWithStreams(t testing.TB) (*Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	s := Start(t)
	nc, js := Connect(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return s, nc, js
}

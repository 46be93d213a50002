package svcmain

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/wire"
)

// ReconnectWait is the pause between reconnect attempts of every service.
const ReconnectWait = 250 * time.Millisecond

// Connect opens the NATS connection of one service instance with the options
// every service uses: named <service>-<instance>, reconnecting forever every
// ReconnectWait, disconnects and reconnects logged. extra options come last and
// win (a bigger reconnect buffer, a drain timeout, handlers of the service's
// own). Credentials and TLS come from c.NATS (libs/natsconn).
func Connect(service string, c *Common, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{
		nats.Name(service + "-" + c.InstanceID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(ReconnectWait),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrl()) }),
	}, extra...)
	nc, err := c.NATS.Connect(c.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: connect %s: %w (is NATS running?)", service, c.NATSURL, err)
	}
	return nc, nil
}

// EnsureStreams creates or updates the contract's streams when
// c.CreateStreams (wire.EnsureStreams), and otherwise checks that they exist
// (wire.CheckStreams), so a service pointed at the wrong server says so
// instead of setting up streams there.
func (c *Common) EnsureStreams(ctx context.Context, js jetstream.JetStream) error {
	if c.CreateStreams {
		return wire.EnsureStreams(ctx, js, c.Streams)
	}
	if err := wire.CheckStreams(ctx, js); err != nil {
		return fmt.Errorf("%w on %s; this service does not create streams (no --nats-url given, or --create-streams=false): "+
			"start one with --create-streams, or point --nats-url at the right server", err, c.NATSURL)
	}
	return nil
}

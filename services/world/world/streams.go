package world

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/wire"
)

// ensureStreams creates the contract's streams (wire.EnsureStreams leaves
// unchanged streams alone, see there).
func ensureStreams(ctx context.Context, js jetstream.JetStream, o wire.StreamOptions) error {
	return wire.EnsureStreams(ctx, js, o)
}

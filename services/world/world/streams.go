package world

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/wire"
)

// ensureStreams is wire.EnsureStreams without needless updates: a stream
// that exists with the contract's settings is left alone. Updating an
// unchanged stream while another instance creates a consumer on it trips a
// data race inside nats-server 2.15.2 (fileStore.UpdateConfig vs
// ConsumerStore), which the race detector reports in our tests.
func ensureStreams(ctx context.Context, js jetstream.JetStream, o wire.StreamOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	for _, want := range wire.StreamConfigs(o) {
		st, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			if _, err := js.CreateStream(ctx, want); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return fmt.Errorf("world: create stream %s: %w", want.Name, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("world: stream %s: %w (is JetStream enabled on the server?)", want.Name, err)
		}
		have := st.CachedInfo().Config
		if slices.Equal(have.Subjects, want.Subjects) && have.MaxAge == want.MaxAge && have.Duplicates == want.Duplicates &&
			have.Replicas == want.Replicas && have.Storage == want.Storage && have.Discard == want.Discard && have.Retention == want.Retention {
			continue
		}
		if _, err := js.UpdateStream(ctx, want); err != nil {
			return fmt.Errorf("world: update stream %s: %w", want.Name, err)
		}
	}
	return nil
}

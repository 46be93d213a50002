package bad

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

func bad(ctx context.Context, js jetstream.JetStream) {
	_, _ = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b"})
	_, _ = js.UpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b"})
	_, _ = js.UpdateStream(ctx, jetstream.StreamConfig{Name: "S"})
	_, _ = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "S"})
	_, _ = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "o"})
	_, _ = js.UpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "o"})
}

package good

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

func good(ctx context.Context, js jetstream.JetStream) {
	_, _ = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b"})
	_, _ = js.CreateStream(ctx, jetstream.StreamConfig{Name: "S"})
	_, _ = js.CreateOrUpdateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "c"})
	_, _ = js.Stream(ctx, "S")
}

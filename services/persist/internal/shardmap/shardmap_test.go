package shardmap_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/services/persist/internal/shardmap"
)

// TestOpenFollowsStreamReplicas: on a 3-node cluster the shard map bucket
// that an older release created with one replica is scaled to
// --stream-replicas (3) when persist opens it, and the admin command
// (replicas 0) does not scale it back.
func TestOpenFollowsStreamReplicas(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	_, js := natstest.Connect(t, c.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	waitfor.True(t, 20*time.Second, func() error {
		_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: shardmap.DefaultBucket, History: 32})
		return err
	})
	for _, replicas := range []int{3, 0} {
		waitfor.True(t, 20*time.Second, func() error {
			_, err := shardmap.Open(ctx, js, shardmap.DefaultBucket, replicas)
			return err
		})
		waitfor.True(t, 20*time.Second, func() error {
			st, err := js.Stream(ctx, "KV_"+shardmap.DefaultBucket)
			if err != nil {
				return err
			}
			if n := st.CachedInfo().Config.Replicas; n != 3 {
				return fmt.Errorf("after Open(replicas %d): shard map bucket has %d replicas, want 3", replicas, n)
			}
			return nil
		})
	}
}

package wire_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/waitfor"
	"github.com/realmstream/realmstream/libs/wire"
)

// TestReplicasFollowOptions runs on a 3-node JetStream cluster: every stream
// and a KV bucket created with one replica reach 3 when the options say 3
// (an existing stream or bucket is updated, not left as it was), a bucket
// opened with Replicas 0 keeps its replicas, and scaling back down works.
func TestReplicasFollowOptions(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	_, js := natstest.Connect(t, c.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Streams and bucket as a first deploy with the default (1) made them.
	ensure := func(o wire.StreamOptions) {
		t.Helper()
		waitfor.True(t, 20*time.Second, func() error { return wire.EnsureStreams(ctx, js, o) })
	}
	ensure(wire.StreamOptions{Replicas: 1})
	kvCfg := jetstream.KeyValueConfig{Bucket: "replicas_test", History: 4}
	bucket := func(cfg jetstream.KeyValueConfig) {
		t.Helper()
		waitfor.True(t, 20*time.Second, func() error { _, err := wire.EnsureKeyValue(ctx, js, cfg); return err })
	}
	kvCfg.Replicas = 1
	bucket(kvCfg)
	checkReplicas(t, ctx, js, kvCfg.Bucket, 1)

	// The environment now says 3: everything is updated to 3.
	ensure(wire.StreamOptions{Replicas: 3})
	for _, sc := range wire.StreamConfigs(wire.StreamOptions{}) {
		checkStreamReplicas(t, ctx, js, sc.Name, 3)
	}
	kvCfg.Replicas = 3
	bucket(kvCfg)
	checkReplicas(t, ctx, js, kvCfg.Bucket, 3)

	// A tool that opens the bucket without owning it leaves it at 3.
	kvCfg.Replicas = 0
	bucket(kvCfg)
	checkReplicas(t, ctx, js, kvCfg.Bucket, 3)

	// A new bucket created with Replicas 0 gets one replica.
	bucket(jetstream.KeyValueConfig{Bucket: "replicas_test_new"})
	checkReplicas(t, ctx, js, "replicas_test_new", 1)
}

func checkStreamReplicas(t *testing.T, ctx context.Context, js jetstream.JetStream, name string, want int) {
	t.Helper()
	waitfor.True(t, 20*time.Second, func() error {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return err
		}
		info := st.CachedInfo()
		if info.Config.Replicas != want {
			return errorf("stream %s: %d replicas configured, want %d", name, info.Config.Replicas, want)
		}
		if info.Cluster == nil || len(info.Cluster.Replicas)+1 != want {
			return errorf("stream %s: %d peers placed, want %d", name, peers(info.Cluster), want)
		}
		return nil
	})
}

func checkReplicas(t *testing.T, ctx context.Context, js jetstream.JetStream, bucket string, want int) {
	t.Helper()
	checkStreamReplicas(t, ctx, js, "KV_"+bucket, want)
}

func peers(c *jetstream.ClusterInfo) int {
	if c == nil {
		return 0
	}
	return len(c.Replicas) + 1
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }

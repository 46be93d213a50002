package wire

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureKeyValue creates the KV bucket of cfg, or brings an existing one to
// cfg's replicas, TTL, history and storage, and returns it. Every bucket of
// the system goes through here so that it follows --stream-replicas like the
// streams do: a bucket created once with one replica, or scaled by hand,
// reaches cfg.Replicas at the next start of any service that owns it.
//
// cfg.Replicas 0 leaves the replicas of an existing bucket as they are (and
// creates a new one with 1): for tools such as `persist shards` that open a
// bucket without owning its settings. Like EnsureStreams it updates only when
// a setting differs, so starts of many replicas do not rewrite the stream
// under each other's watchers.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if cfg.Replicas < 0 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("wire: bucket %s: replicas %d: want 1..5", cfg.Bucket, cfg.Replicas)
	}
	// One creation at a time in this process: when two creates of one bucket
	// race, nats.go's CreateKeyValue answers the loser with an UpdateStream
	// of the (identical) config, and a stream update while another instance
	// creates a consumer on it is nats-server 2.15.2's UpdateConfig /
	// ConsumerStore data race (CI's -race run: two world instances starting
	// together in TestExactlyOnce). Instances in separate processes can
	// still race; that happens only at their first start on a new server.
	createMu.Lock()
	defer createMu.Unlock()
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		create := cfg
		create.Replicas = max(cfg.Replicas, 1)
		kv, err = js.CreateKeyValue(ctx, create)
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another instance created it first (with the same settings).
			return js.KeyValue(ctx, cfg.Bucket)
		}
		if err != nil {
			return nil, fmt.Errorf("wire: create bucket %s: %w", cfg.Bucket, err)
		}
		return kv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("wire: bucket %s: %w (is JetStream enabled on the server?)", cfg.Bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("wire: bucket %s status: %w", cfg.Bucket, err)
	}
	have := st.Config()
	want := cfg
	if want.Replicas == 0 {
		want.Replicas = have.Replicas
	}
	if sameKVSettings(have, want) {
		return kv, nil
	}
	if kv, err = js.UpdateKeyValue(ctx, want); err != nil {
		return nil, fmt.Errorf("wire: update bucket %s (replicas %d -> %d): %w", cfg.Bucket, have.Replicas, want.Replicas, err)
	}
	return kv, nil
}

// createMu serializes EnsureKeyValue within the process.
var createMu sync.Mutex

func sameKVSettings(have, want jetstream.KeyValueConfig) bool {
	history := max(want.History, 1)
	return have.Replicas == want.Replicas && have.TTL == want.TTL && have.History == history &&
		have.Storage == want.Storage && (want.MaxValueSize == 0 || have.MaxValueSize == want.MaxValueSize)
}

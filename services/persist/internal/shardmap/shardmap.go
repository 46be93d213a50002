// Package shardmap keeps the versioned shard map in a NATS KV bucket, so that
// every persist replica and the admin command see the same version. Updates
// are compare-and-set on the KV revision; the map's own Version grows by one
// with every change.
package shardmap

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/shard"
	"github.com/realmstream/realmstream/libs/wire"
)

// DefaultBucket is the KV bucket of the shard map.
const DefaultBucket = "persist_shardmap"

const key = "map"

// KV is the shard map stored in NATS KV.
type KV struct{ kv jetstream.KeyValue }

// Open creates (or opens) the bucket with the given replicas (--stream-replicas;
// an existing bucket is scaled to it). replicas 0 leaves an existing bucket's
// replicas alone: the admin command opens the map without owning its settings.
func Open(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*KV, error) {
	kv, err := wire.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "persist shard map (logical shard -> physical database)",
		History:     32,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("shardmap: open bucket %s: %w", bucket, err)
	}
	return &KV{kv: kv}, nil
}

// ErrNoMap means the bucket holds no map yet.
var ErrNoMap = errors.New("shardmap: no shard map stored")

// Load returns the current map and its KV revision.
func (k *KV) Load(ctx context.Context) (shard.Map, uint64, error) {
	e, err := k.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return shard.Map{}, 0, ErrNoMap
	}
	if err != nil {
		return shard.Map{}, 0, fmt.Errorf("shardmap: load: %w", err)
	}
	m, err := shard.Decode(e.Value())
	if err != nil {
		return shard.Map{}, 0, err
	}
	return m, e.Revision(), nil
}

// Bootstrap stores m if no map exists and returns the map in force (m, or the
// one another replica stored first).
func (k *KV) Bootstrap(ctx context.Context, m shard.Map) (shard.Map, uint64, error) {
	b, err := m.Encode()
	if err != nil {
		return shard.Map{}, 0, err
	}
	if rev, err := k.kv.Create(ctx, key, b); err == nil {
		return m, rev, nil
	}
	return k.Load(ctx)
}

// Update stores next if the stored revision is still rev and next.Version is
// the stored version plus one.
func (k *KV) Update(ctx context.Context, next shard.Map, rev uint64) (uint64, error) {
	b, err := next.Encode()
	if err != nil {
		return 0, err
	}
	nrev, err := k.kv.Update(ctx, key, b, rev)
	if err != nil {
		return 0, fmt.Errorf("shardmap: update to version %d: %w (changed concurrently?)", next.Version, err)
	}
	return nrev, nil
}

// Watch calls fn with every new version of the map until ctx ends (the
// current one first). Replicas use it so that reads follow a move even when
// no write hits the moved shard.
func (k *KV) Watch(ctx context.Context, fn func(shard.Map)) error {
	w, err := k.kv.Watch(ctx, key, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("shardmap: watch: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				continue // end of the initial values
			}
			m, err := shard.Decode(e.Value())
			if err != nil {
				continue
			}
			fn(m)
		}
	}
}

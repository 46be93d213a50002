package snapstore

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
)

// TestCollectOnlyWhileObjectsAreLeft: the listings that collect objects run
// after a put only while the zone may have objects in the store: not for a
// zone that only ever had inline snapshots (each of its puts would otherwise
// list the bucket's history and the object store), again after a chunked put,
// and no more once its objects are gone.
func TestCollectOnlyWhileObjectsAreLeft(t *testing.T) {
	_, _, js := natstest.StartWithStreams(t)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "world_snapshots", History: 2})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, js, kv, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.Inline = 64 // a snapshot of more than 64 bytes is chunked
	put := func(seq uint64, big bool) {
		t.Helper()
		snap := &schema.ZoneSnapshot{Zone: "z", LastSeq: seq, Fence: 1}
		if big {
			snap.Players = map[string]*schema.PlayerState{"p": {PlayerId: "a-player-with-a-name-long-enough-to-be-chunked", Name: "a long name too"}}
		}
		if _, err := s.Put(ctx, snap); err != nil {
			t.Fatal(err)
		}
	}
	pending := func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.left["z"] }
	put(1, false)
	if pending() {
		t.Fatal("a zone with inline snapshots only is marked as having objects")
	}
	put(2, true)
	if !pending() {
		t.Fatal("after a chunked put the zone is not marked")
	}
	put(3, false) // the history (2) still names the chunked one
	if !pending() {
		t.Fatal("an object still named by the history is not marked as left")
	}
	put(4, false) // the history forgot it: collected
	if pending() {
		t.Fatal("the zone is still marked after its objects were collected")
	}
	if l, err := s.Obj.List(ctx); err == nil && len(l) > 0 {
		t.Fatalf("%d objects left", len(l))
	}
}

package snapstore_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
	"github.com/realmstream/realmstream/services/world/internal/snapstore"
)

func bigZone(players int, seq uint64) *schema.ZoneSnapshot {
	st := &schema.ZoneSnapshot{Zone: "z1_1", LastSeq: seq, Fence: 3, Tick: 99, Events: seq * 10,
		Players: map[string]*schema.PlayerState{}, Sessions: map[string]uint64{}}
	for i := 0; i < players; i++ {
		id := "player-with-a-long-id-" + strconv.Itoa(i)
		st.Players[id] = &schema.PlayerState{PlayerId: id, Name: "name-" + id, X: float32(i % 1000), Y: float32(i / 1000), Hp: 100, MaxHp: 100,
			SessionId: "session-" + id, LastInputSeq: uint64(i)}
		st.Sessions["session-"+id] = uint64(i)
	}
	return st
}

// TestSnapshotLargerThanTheCap: a zone whose state is larger than the server's
// max payload (1 MiB) fails to snapshot as one KV value and is stored chunked;
// every reader gets it back whole; old chunks are collected.
func TestSnapshotLargerThanTheCap(t *testing.T) {
	_, _, js := natstest.StartWithStreams(t)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "world_snapshots", History: 2, MaxValueSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	big := bigZone(12000, 500)
	if b, _ := proto.Marshal(big); len(b) <= 1<<20 {
		t.Fatalf("test zone is only %d bytes: not above the cap", len(b))
	}
	inlineOnly := &snapstore.Store{KV: kv}
	if _, err := inlineOnly.Put(ctx, big); err == nil {
		t.Fatal("a snapshot above the max payload went into one KV value: the cap this test is about is gone")
	}
	s, err := snapstore.Open(ctx, js, kv, 1)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Put(ctx, big)
	if err != nil {
		t.Fatalf("chunked snapshot of %d bytes: %v", n, err)
	}
	got, err := s.Latest(ctx, "z1_1")
	if err != nil || !proto.Equal(got, big) {
		t.Fatalf("read back: equal %v, err %v", proto.Equal(got, big), err)
	}
	// A small one is inline again; the large one's chunks stay while the
	// bucket's history (2) still names them, then go.
	small := bigZone(10, 600)
	if _, err := s.Put(ctx, small); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Latest(ctx, "z1_1"); !proto.Equal(got, small) {
		t.Fatal("inline snapshot not read back")
	}
	objs := func() int {
		l, err := s.Obj.List(ctx)
		if err != nil {
			return 0
		}
		return len(l)
	}
	if objs() != 1 {
		t.Fatalf("%d objects while the history still names the chunked snapshot", objs())
	}
	if _, err := s.Put(ctx, bigZone(10, 700)); err != nil {
		t.Fatal(err)
	}
	if objs() != 0 {
		t.Fatalf("%d objects left after the history forgot them", objs())
	}
}

package query

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/realmstream/realmstream/libs/wire"
	"github.com/realmstream/realmstream/services/persist/internal/pebblestore"
	"github.com/realmstream/realmstream/services/persist/internal/store"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

func FuzzHandle(f *testing.F) {
	s, err := pebblestore.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	s.Write(context.Background(), []store.Record{storetest.Rec(1, storetest.Joined("a", "z0_0", "alice", storetest.Base, 10))})
	subjects := []string{wire.QueryZoneEvents, wire.QueryPlayer, wire.QueryZone, wire.QueryZoneRange, wire.QueryAckFloor, "nope"}
	floor := func(context.Context) (AckFloorReply, error) { return AckFloorReply{AckFloor: 1}, nil }
	f.Add(uint8(0), []byte(`{"zone":"z0_0","limit":5}`))
	f.Add(uint8(1), []byte(`{"player_id":"alice"}`))
	f.Add(uint8(2), []byte(`{"zone":"z0_0"}`))
	f.Add(uint8(2), []byte(`{"zone":"a.b"}`))
	f.Add(uint8(3), []byte(`{"zone":"z0_0","from_seq":1,"to_seq":9,"limit":2}`))
	f.Add(uint8(3), []byte(`{"zone":"z0_0","from_seq":9,"to_seq":1}`))
	f.Add(uint8(4), []byte(`{}`))
	f.Add(uint8(5), []byte(`{}`))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		out := Handle(context.Background(), s, floor, subjects[int(which)%len(subjects)], data)
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("reply is not JSON: %q", out)
		}
	})
}

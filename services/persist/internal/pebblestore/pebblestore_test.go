package pebblestore

import (
	"bytes"
	"testing"

	"github.com/realmstream/realmstream/services/persist/internal/store"
	"github.com/realmstream/realmstream/services/persist/internal/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopenKeepsHighWaterMark(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	recs := []store.Record{storetest.Rec(7, storetest.Moved("a", "z0_0", "p", storetest.Base, 1, 1))}
	if _, err := s.Write(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Write(t.Context(), recs)
	if err != nil || res.Inserted != 0 || res.Skipped != 1 {
		t.Fatalf("after reopen: %+v %v", res, err)
	}
	if len(s.Metrics()) == 0 {
		t.Fatal("no metrics")
	}
}

func FuzzDecodeEvent(f *testing.F) {
	r := storetest.Rec(3, storetest.Moved("id", "z0_0", "p", storetest.Base, 1, 2))
	f.Add(encodeEvent(&r), eventKey("z0_0", r.TSNs, 3))
	f.Add([]byte{}, []byte("e\x00"))
	f.Fuzz(func(t *testing.T, v, k []byte) {
		var e store.EventRow
		if decodeEventKey(k, &e) == nil {
			if !bytes.Equal(eventKey(e.Zone, e.TSNs, e.Seq), k) {
				t.Fatalf("key round trip")
			}
		}
		if decodeEvent(v, &e) == nil {
			rr := store.Record{Fence: e.Fence, EventID: e.EventID, PlayerID: e.PlayerID, Type: e.Type, Payload: e.Payload}
			if !bytes.Equal(encodeEvent(&rr), v) {
				t.Fatalf("value round trip")
			}
		}
	})
}

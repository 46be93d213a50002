package pebblestore

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

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
	f.Add(encodeEvent(&r), eventKey("z0_0", r.TSNs, 3, 2))
	f.Add([]byte{}, []byte("E\x00"))
	f.Fuzz(func(t *testing.T, v, k []byte) {
		var e store.EventRow
		if decodeEventKey(k, &e) == nil {
			if !bytes.Equal(eventKey(e.Zone, e.TSNs, e.Seq, e.Index), k) {
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

// TestLegacyPlayerKeepsOldRule: a player value stored before field_seqs
// existed counts as set entirely at its LastSeq.
func TestLegacyPlayerKeepsOldRule(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := store.Player{PlayerID: "old", Name: "legacy", Zone: "z0_0", X: 1, Y: 2, HP: 50, Online: true, LastSeq: 10}
	b, _ := json.Marshal(old)
	if err := s.db.Set([]byte("pold"), b, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	ts := storetest.Base
	if _, err := s.Write(t.Context(), []store.Record{
		storetest.Rec(5, storetest.Joined("j", "z1_1", "old", ts, 100)),
		storetest.Rec(11, storetest.Moved("m", "z0_0", "old", ts.Add(time.Second), 7, 8)),
	}); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Player(t.Context(), "old")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "legacy" || got.HP != 50 || got.Zone != "z0_0" || got.X != 7 || got.Y != 8 || !got.Online || got.LastSeq != 11 {
		t.Fatalf("after upgrade: %+v", got)
	}
}

// TestLegacyKeysReadableAfterUpgrade: a store written before tick records
// (e keys without index, tallies without index) opens with every event
// readable at index 0, by time and by stream position; a legacy message
// redelivered after the upgrade stores nothing and counts no kill twice.
func TestLegacyKeysReadableAfterUpgrade(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	ts := storetest.Base
	recs := []store.Record{
		storetest.Rec(1, storetest.Joined("j", "z0_0", "ann", ts, 10)),
		storetest.Rec(2, storetest.Kill("k", "z0_0", "ann", "ben", ts.Add(time.Second))),
	}
	b := db.NewBatch()
	for i := range recs {
		r := &recs[i]
		k := append(append(append([]byte{'e'}, r.Zone...), 0), u64(u64(nil, tsKey(r.TSNs)), r.Seq)...)
		b.Set(k, encodeEvent(r), nil)
		b.Set(seqKey(r.Seq), k[1:], nil)
	}
	b.Set(legacyTallyKey(store.Tally{PlayerID: "ann", Seq: 2, Kind: 'k'}), nil, nil)
	pa, _ := json.Marshal(playerRec{Player: store.Player{PlayerID: "ann", Kills: 1, LastSeq: 2}})
	b.Set([]byte("pann"), pa, nil)
	b.Set([]byte("h"), u64(nil, 2), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	byTime, err := s.ZoneEvents(t.Context(), store.ZoneEventsQuery{Zone: "z0_0"})
	if err != nil {
		t.Fatal(err)
	}
	bySeq, err := s.EventsBySeq(t.Context(), store.SeqRangeQuery{Zone: "z0_0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(byTime) != 2 || len(bySeq) != 2 {
		t.Fatalf("after upgrade: %d by time, %d by seq", len(byTime), len(bySeq))
	}
	for i, e := range bySeq {
		if e.Seq != recs[i].Seq || e.Index != 0 || e.EventID != recs[i].EventID || string(e.Payload) != string(recs[i].Payload) ||
			byTime[i].Seq != e.Seq || byTime[i].TSNs != e.TSNs || string(byTime[i].Payload) != string(e.Payload) {
			t.Fatalf("event %d = %+v, want %+v", i, e, recs[i])
		}
	}
	res, err := s.Write(t.Context(), recs)
	if err != nil || res.Inserted != 0 || res.Skipped != 2 {
		t.Fatalf("redelivered legacy messages: %+v %v", res, err)
	}
	if p, _, _ := s.Player(t.Context(), "ann"); p.Kills != 1 {
		t.Fatalf("ann kills %d after a redelivered legacy kill, want 1", p.Kills)
	}
	it, _ := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte("e"), UpperBound: []byte("f")})
	if it.First() {
		t.Fatalf("legacy key %x left", it.Key())
	}
	it.Close()
}

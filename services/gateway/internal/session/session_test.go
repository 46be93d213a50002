package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/schema"
)

func TestRecordRoundTrip(t *testing.T) {
	r := Record{Player: "u1", Name: "Ann", Start: time.Unix(1764000000, 0).UTC(), Zone: "z1_1", LastSeq: 2048, RecentTo: 1000,
		Recent: []Entry{{Seq: 990, Digest: 1}, {Seq: 999, Digest: ^uint64(0)}, {Seq: 1000, Digest: 42}}, Open: true,
		UnknownFrom: 10, UnknownTo: 20, UnknownAt: time.Unix(1764000001, 0).UTC()}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Player != r.Player || got.LastSeq != r.LastSeq || len(got.Recent) != 3 || got.Recent[1] != r.Recent[1] ||
		!got.Start.Equal(r.Start) || !got.UnknownAt.Equal(r.UnknownAt) || !got.Open || got.UnknownTo != 20 {
		t.Fatalf("round trip: %+v", got)
	}
	if d, ok := got.Lookup(999); !ok || d != ^uint64(0) {
		t.Fatal("lookup")
	}
	if _, ok := got.Lookup(998); ok {
		t.Fatal("lookup of an absent seq")
	}
}

// TestDigestIgnoresSeq: the same command under two seqs has one digest;
// another command has another.
func TestDigestIgnoresSeq(t *testing.T) {
	enc := func(seq uint64, x float32) []byte {
		b, _ := proto.Marshal(&schema.ClientPacket{Seq: seq, Body: &schema.ClientPacket_Move{Move: &schema.Move{X: x, Y: 1}}})
		return b
	}
	if Digest(enc(5, 1)) != Digest(enc(123456, 1)) {
		t.Fatal("digest depends on the seq")
	}
	if Digest(enc(5, 1)) == Digest(enc(5, 2)) {
		t.Fatal("two commands, one digest")
	}
}

func TestRing(t *testing.T) {
	var g Ring
	for s := uint64(1); s <= RecentMax+10; s++ {
		g.Add(s, s*7)
	}
	if _, ok := g.Lookup(10); ok {
		t.Fatal("evicted entry still found")
	}
	if d, ok := g.Lookup(RecentMax + 10); !ok || d != (RecentMax+10)*7 {
		t.Fatal("newest entry")
	}
	es := g.Entries()
	if len(es) != RecentMax || es[0].Seq != 11 || es[len(es)-1].Seq != RecentMax+10 {
		t.Fatalf("entries %d, first %d", len(es), es[0].Seq)
	}
	var h Ring
	h.Seed(es)
	if d, ok := h.Lookup(100); !ok || d != 700 {
		t.Fatal("seeded lookup")
	}
}

// TestStoreAndDenyList against a real NATS server.
func TestStoreAndDenyList(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL)
	ctx := context.Background()
	st, err := Open(ctx, js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "s1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing record: %v", err)
	}
	if err := st.Put(ctx, "s1", Record{Player: "u1", LastSeq: 7}); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Get(ctx, "s1"); err != nil || r.LastSeq != 7 || r.WrittenAt.IsZero() {
		t.Fatalf("get: %+v %v", r, err)
	}
	d, err := OpenDenyList(ctx, js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Minute)
	if err := d.Check(ctx, "u1", before, "j1", "s1"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"token.j1", "session.s1"} {
		d2, _ := OpenDenyList(ctx, js, time.Hour, 1)
		if err := d2.Revoke(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Check(ctx, "u9", before, "j1", ""); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked token: %v", err)
	}
	if err := d.Check(ctx, "u9", before, "", "s1"); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked session: %v", err)
	}
	if err := d.Revoke(ctx, "player.u1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(ctx, "u1", before, "", ""); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked player: %v", err)
	}
	if err := d.Check(ctx, "u1", time.Now().Add(time.Minute), "", ""); err != nil {
		t.Fatalf("token issued after the player's revocation: %v", err)
	}
	if err := d.Revoke(ctx, "bad key*"); err == nil {
		t.Fatal("bad key accepted")
	}
}

func FuzzUnmarshal(f *testing.F) {
	b, _ := Record{Player: "u", Recent: []Entry{{1, 2}}}.Marshal()
	f.Add(b)
	f.Add([]byte(`{"recent":"AAAA"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Unmarshal(b)
		if err == nil && len(r.Recent) > RecentMax {
			t.Fatal("unbounded recent list")
		}
	})
}

func FuzzDigest(f *testing.F) {
	f.Add([]byte{8, 1, 0x6a, 0})
	f.Fuzz(func(t *testing.T, b []byte) { _ = Digest(b) })
}

// TestUpdateRefusesAStaleWriter: writes conditional on the writer's last
// revision. A connection that read or wrote revision r cannot overwrite the
// record once another connection wrote after r (ErrMoved, nothing written);
// Create refuses an existing record.
func TestUpdateRefusesAStaleWriter(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL)
	st, err := Open(t.Context(), js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	revA, err := st.Update(ctx, "s1", Record{Player: "p", LastSeq: 10, Open: true, Gateway: "gw-a"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(ctx, "s1", Record{Player: "p"}, 0); !errors.Is(err, ErrMoved) {
		t.Fatalf("create over an existing record: %v, want ErrMoved", err)
	}
	// Connection B resumes: reads (rev A) and writes its reservation.
	_, rev, err := st.GetRev(ctx, "s1")
	if err != nil || rev != revA {
		t.Fatalf("GetRev: rev %d, %v; want %d", rev, err, revA)
	}
	revB, err := st.Update(ctx, "s1", Record{Player: "p", LastSeq: 1034, RecentTo: 10, Open: true, Gateway: "gw-b"}, rev)
	if err != nil {
		t.Fatal(err)
	}
	// A's close arrives late, conditional on A's own revision: refused.
	if _, err := st.Update(ctx, "s1", Record{Player: "p", LastSeq: 12}, revA); !errors.Is(err, ErrMoved) {
		t.Fatalf("stale write: %v, want ErrMoved", err)
	}
	got, rev, err := st.GetRev(ctx, "s1")
	if err != nil || rev != revB || got.Gateway != "gw-b" || got.LastSeq != 1034 {
		t.Fatalf("record after the stale write: %+v rev %d (%v), want B's at rev %d", got, rev, err, revB)
	}
	if _, err := st.Update(ctx, "s1", Record{Player: "p", LastSeq: 40}, revB); err != nil {
		t.Fatalf("B's own next write: %v", err)
	}
}

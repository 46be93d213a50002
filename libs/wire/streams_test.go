package wire_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/wire"
)

func TestEnsureStreamsIdempotentAndUpdates(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	st, err := js.Stream(ctx, wire.StreamCommands)
	if err != nil {
		t.Fatal(err)
	}
	created := st.CachedInfo().Created
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{CommandMaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	st, err = js.Stream(ctx, wire.StreamCommands)
	if err != nil {
		t.Fatal(err)
	}
	if st.CachedInfo().Config.MaxAge != time.Hour || !st.CachedInfo().Created.Equal(created) {
		t.Fatalf("max age %v (want 1h), created %v (want %v: updated, not recreated)", st.CachedInfo().Config.MaxAge, st.CachedInfo().Created, created)
	}
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{Replicas: 9}); err == nil {
		t.Fatal("replicas 9: want a validation error")
	}
}

// TestEnsureStreamsLeavesUnchangedStreamsAlone: a second EnsureStreams with
// the same options, or with Replicas 1 for streams created with 0, sends no
// stream update (and EnsureKeyValue none for an unchanged bucket). Before,
// MaxBytes 0 compared unequal to the server's -1, and every service start
// rewrote CMD and STATS, which under the consumers of running instances is
// nats-server 2.15.2's UpdateConfig/ConsumerStore data race.
func TestEnsureStreamsLeavesUnchangedStreamsAlone(t *testing.T) {
	s := natstest.Start(t)
	nc, js := natstest.Connect(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	kvCfg := jetstream.KeyValueConfig{Bucket: "ensure_check", TTL: time.Minute, Replicas: 1}
	if _, err := wire.EnsureKeyValue(ctx, js, kvCfg); err != nil {
		t.Fatal(err)
	}
	var updates atomic.Int64
	sub, err := nc.Subscribe("$JS.API.STREAM.UPDATE.>", func(m *nats.Msg) { updates.Add(1); t.Logf("update: %s", m.Subject) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []wire.StreamOptions{{}, {Replicas: 1}} {
		if err := wire.EnsureStreams(ctx, js, o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := wire.EnsureKeyValue(ctx, js, kvCfg); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := updates.Load(); n != 0 {
		t.Fatalf("%d stream updates for unchanged streams and bucket, want 0", n)
	}
}

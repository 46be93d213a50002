package wire_test

import (
	"context"
	"testing"
	"time"

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

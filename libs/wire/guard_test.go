package wire_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/wire"
)

// TestEventStreamGuard: the event stream's guard limits are set by the one
// service that has them (world) and left alone by the others; with a guard
// the stream drops its oldest messages instead of refusing appends.
func TestEventStreamGuard(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL)
	ctx := context.Background()
	cfgOf := func() jetstream.StreamConfig {
		st, err := js.Stream(ctx, wire.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().Config
	}
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := cfgOf(); c.Discard != jetstream.DiscardNew || c.MaxBytes != -1 || c.MaxAge != 0 {
		t.Fatalf("unguarded stream: discard %v max bytes %d max age %v", c.Discard, c.MaxBytes, c.MaxAge)
	}
	guard := wire.StreamOptions{EventMaxBytes: 64 << 20, EventMaxAge: 7 * 24 * time.Hour}
	if err := wire.EnsureStreams(ctx, js, guard); err != nil {
		t.Fatal(err)
	}
	if c := cfgOf(); c.Discard != jetstream.DiscardOld || c.MaxBytes != 64<<20 || c.MaxAge != 7*24*time.Hour {
		t.Fatalf("guarded stream: discard %v max bytes %d max age %v", c.Discard, c.MaxBytes, c.MaxAge)
	}
	// Another service starts without the setting: the guard stays.
	if err := wire.EnsureStreams(ctx, js, wire.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if c := cfgOf(); c.Discard != jetstream.DiscardOld || c.MaxBytes != 64<<20 {
		t.Fatalf("a service without the guard reset it: discard %v max bytes %d", c.Discard, c.MaxBytes)
	}
	// At the guard, appends still succeed (the oldest go).
	small := wire.StreamOptions{EventMaxBytes: 4096}
	if err := wire.EnsureStreams(ctx, js, small); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := js.Publish(ctx, wire.EventSubject("z"), make([]byte, 200)); err != nil {
			t.Fatalf("append %d at the guard refused: %v", i, err)
		}
	}
}

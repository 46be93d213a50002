package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/shard"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// mutableMap is a MapStore in memory (the service uses NATS KV).
type mutableMap struct {
	mu  sync.Mutex
	m   shard.Map
	rev uint64
}

func (mm *mutableMap) Load(context.Context) (shard.Map, uint64, error) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	return mm.m, mm.rev, nil
}

func (mm *mutableMap) Update(_ context.Context, next shard.Map, rev uint64) (uint64, error) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if rev != mm.rev || next.Version != mm.m.Version+1 {
		return 0, fmt.Errorf("stale update")
	}
	mm.m, mm.rev = next, mm.rev+1
	return mm.rev, nil
}

// setup migrates n fresh databases, runs the partition manager on them,
// and opens a store over an even map.
func setup(t *testing.T, urls ...string) (*Store, *mutableMap) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var dbs []shard.DB
	for i, u := range urls {
		dbs = append(dbs, shard.DB{Name: fmt.Sprintf("pg%d", i), URL: u})
	}
	m, err := shard.Even(dbs)
	if err != nil {
		t.Fatal(err)
	}
	mm := &mutableMap{m: m, rev: 1}
	s, err := Open(ctx, mm, Options{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	pm := &Partman{Premake: 3, Log: quietLog(), Now: func() time.Time { return time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) }}
	for _, d := range s.DBs() {
		if err := Migrate(ctx, d.Pool, quietLog()); err != nil {
			t.Fatal(err)
		}
		if _, err := pm.Run(ctx, d.Pool); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SeedOwnership(ctx); err != nil {
		t.Fatal(err)
	}
	return s, mm
}

func newDBs(t *testing.T, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, pgtest.NewDatabase(t))
	}
	return out
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

package lock

import (
	"context"
	"sync"
	"time"
)

// Table is the in-process Store of the one-machine stack: a map guarded by a
// mutex. Expiry uses the monotonic clock of this process. Fences grow for the
// life of the Table.
type Table struct {
	mu     sync.Mutex
	leases map[string]tableEntry
	fences map[string]uint64
}

type tableEntry struct {
	value   string
	expires time.Time
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{leases: map[string]tableEntry{}, fences: map[string]uint64{}}
}

func (t *Table) held(name string, now time.Time) (tableEntry, bool) {
	e, ok := t.leases[name]
	if ok && !now.Before(e.expires) {
		delete(t.leases, name)
		return e, false
	}
	return e, ok
}

// TryAcquire implements Store.
func (t *Table) TryAcquire(ctx context.Context, name, value string, ttl time.Duration) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if _, ok := t.held(name, now); ok {
		return 0, ErrHeld
	}
	t.leases[name] = tableEntry{value: value, expires: now.Add(ttl)}
	t.fences[name]++
	return t.fences[name], nil
}

// Renew implements Store.
func (t *Table) Renew(ctx context.Context, name, value string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	e, ok := t.held(name, now)
	if !ok || e.value != value {
		return ErrNotHeld
	}
	t.leases[name] = tableEntry{value: value, expires: now.Add(ttl)}
	return nil
}

// Release implements Store.
func (t *Table) Release(ctx context.Context, name, value string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.held(name, time.Now())
	if !ok || e.value != value {
		return ErrNotHeld
	}
	delete(t.leases, name)
	return nil
}

package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble"
)

// Pebble stores accounts in the persist Pebble database under keys
// 'A' kind 0 id (no other key of pebblestore starts with 'A').
type Pebble struct {
	db *pebble.DB
	mu sync.Mutex // serializes Create (check-then-set)
}

// NewPebble returns the Pebble backend on db (owned by the caller).
func NewPebble(db *pebble.DB) *Pebble { return &Pebble{db: db} }

func pebbleKey(kind, id string) []byte {
	k := make([]byte, 0, 2+len(kind)+len(id))
	k = append(k, 'A')
	k = append(k, kind...)
	k = append(k, 0)
	return append(k, id...)
}

// Get returns the account of (kind, id) or ErrNotFound.
func (p *Pebble) Get(_ context.Context, kind, id string) (Account, error) {
	v, closer, err := p.db.Get(pebbleKey(kind, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return Account{}, ErrNotFound
	}
	if err != nil {
		return Account{}, fmt.Errorf("accounts: pebble get: %w", err)
	}
	defer closer.Close()
	var a Account
	if err := json.Unmarshal(v, &a); err != nil {
		return Account{}, fmt.Errorf("accounts: pebble record: %w", err)
	}
	return a, nil
}

// Create stores a (synced) unless its id exists.
func (p *Pebble) Create(ctx context.Context, a Account) (Account, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, err := p.Get(ctx, a.Kind, a.ExtID)
	if err == nil {
		return old, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Account{}, false, err
	}
	b, err := json.Marshal(a)
	if err != nil {
		return Account{}, false, err
	}
	if err := p.db.Set(pebbleKey(a.Kind, a.ExtID), b, pebble.Sync); err != nil {
		return Account{}, false, fmt.Errorf("accounts: pebble set: %w", err)
	}
	return a, true, nil
}

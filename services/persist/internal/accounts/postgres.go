package accounts

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres stores accounts in table realm_accounts of one database. The
// table is small (one row per player) and is not sharded: persist puts it in
// the first database of the shard map by name, so moving logical shards
// never moves or strands an account.
type Postgres struct {
	pool *pgxpool.Pool
}

// Schema creates the accounts table. It is idempotent and kept here, beside
// the only code that uses the table, instead of in pgstore's migrations.
const Schema = `CREATE TABLE IF NOT EXISTS realm_accounts (
	kind       text        NOT NULL,
	ext_id     text        NOT NULL,
	player_id  text        NOT NULL UNIQUE,
	name       text        NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (kind, ext_id)
)`

// NewPostgres ensures the table on pool and returns the backend.
func NewPostgres(ctx context.Context, pool *pgxpool.Pool) (*Postgres, error) {
	if _, err := pool.Exec(ctx, Schema); err != nil {
		return nil, fmt.Errorf("accounts: create table: %w", err)
	}
	return &Postgres{pool: pool}, nil
}

// Get returns the account of (kind, id) or ErrNotFound.
func (p *Postgres) Get(ctx context.Context, kind, id string) (Account, error) {
	a := Account{Kind: kind, ExtID: id}
	err := p.pool.QueryRow(ctx, `SELECT player_id, name, created_at FROM realm_accounts WHERE kind = $1 AND ext_id = $2`,
		kind, id).Scan(&a.PlayerID, &a.Name, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, ErrNotFound
	}
	if err != nil {
		return Account{}, fmt.Errorf("accounts: get: %w", err)
	}
	return a, nil
}

// Create inserts a unless (kind, ext_id) exists (ON CONFLICT DO NOTHING, then
// read the winner).
func (p *Postgres) Create(ctx context.Context, a Account) (Account, bool, error) {
	tag, err := p.pool.Exec(ctx, `INSERT INTO realm_accounts (kind, ext_id, player_id, name, created_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, ext_id) DO NOTHING`, a.Kind, a.ExtID, a.PlayerID, a.Name, a.CreatedAt)
	if err != nil {
		return Account{}, false, fmt.Errorf("accounts: insert: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return a, true, nil
	}
	old, err := p.Get(ctx, a.Kind, a.ExtID)
	return old, false, err
}

package accounts

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/wire"
)

// stores returns each backend on a fresh real database.
func stores(t *testing.T) map[string]Store {
	t.Helper()
	ctx := context.Background()
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	pg, err := NewPostgres(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPostgres(ctx, pool); err != nil { // idempotent schema
		t.Fatal(err)
	}
	return map[string]Store{"pebble": NewPebble(db), "postgres": pg}
}

// TestStores is the conformance test both backends run: create on first
// use, the same account afterwards, not_found without create, device and
// custom ids apart, and one winner among concurrent creates.
func TestStores(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dev := wire.AuthenticateRequest{Kind: wire.AccountKindDevice, ID: "device-0123456789", Create: true, Name: "Alice"}
			r1 := Authenticate(ctx, st, dev)
			if r1.Code != "" || !r1.Created || r1.PlayerID == "" || r1.Name != "Alice" || !wire.ValidToken(r1.PlayerID) {
				t.Fatalf("first authenticate: %+v", r1)
			}
			dev.Name = "Mallory" // ignored for an existing account
			r2 := Authenticate(ctx, st, dev)
			if r2.Code != "" || r2.Created || r2.PlayerID != r1.PlayerID || r2.Name != "Alice" {
				t.Fatalf("second authenticate: %+v, first %+v", r2, r1)
			}
			custom := wire.AuthenticateRequest{Kind: wire.AccountKindCustom, ID: "device-0123456789"}
			if r := Authenticate(ctx, st, custom); r.Code != "not_found" {
				t.Fatalf("custom id without create: %+v", r)
			}
			custom.Create = true
			r3 := Authenticate(ctx, st, custom)
			if r3.Code != "" || r3.PlayerID == r1.PlayerID || r3.Name == "" {
				t.Fatalf("custom id is its own account: %+v", r3)
			}
			for _, bad := range []wire.AuthenticateRequest{
				{Kind: "email", ID: "someone-at-example"},
				{Kind: wire.AccountKindDevice, ID: "short"},
				{Kind: wire.AccountKindDevice, ID: "has space 123456"},
				{Kind: wire.AccountKindCustom, ID: "abcdefg", Name: "bad\x01name"},
			} {
				if r := Authenticate(ctx, st, bad); r.Code != "invalid_argument" {
					t.Errorf("%+v: %+v, want invalid_argument", bad, r)
				}
			}
			// Concurrent first logins of one device: one account.
			race := wire.AuthenticateRequest{Kind: wire.AccountKindDevice, ID: "race-device-42", Create: true}
			var wg sync.WaitGroup
			ids := make([]string, 8)
			created := make([]bool, 8)
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := Authenticate(ctx, st, race)
					ids[i], created[i] = r.PlayerID, r.Created
				}()
			}
			wg.Wait()
			n := 0
			for i := range ids {
				if ids[i] != ids[0] || ids[i] == "" {
					t.Fatalf("concurrent creates gave %v", ids)
				}
				if created[i] {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%d concurrent creates say they created the account, want 1", n)
			}
		})
	}
}

// TestServe runs the NATS request/reply API against a real server.
func TestServe(t *testing.T) {
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv.URL)
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sub, err := Serve(nc, NewPebble(db), time.Second, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ask := func(data []byte) wire.AuthenticateReply {
		m, err := nc.Request(wire.AccountsAuthenticate, data, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r wire.AuthenticateReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	b, _ := json.Marshal(wire.AuthenticateRequest{Kind: wire.AccountKindDevice, ID: "device-abcdefghij", Create: true, Name: "Bo"})
	if r := ask(b); r.Code != "" || !r.Created || r.Name != "Bo" {
		t.Fatalf("authenticate: %+v", r)
	}
	if r := ask([]byte("{not json")); r.Code != "invalid_argument" {
		t.Fatalf("garbage: %+v", r)
	}
	if r := ask(make([]byte, MaxRequest+1)); r.Code != "invalid_argument" {
		t.Fatalf("oversized: %+v", r)
	}
}

// FuzzCheckRequest: no input panics the validation.
func FuzzCheckRequest(f *testing.F) {
	f.Add("device", "0123456789", "name")
	f.Fuzz(func(t *testing.T, kind, id, name string) {
		_ = CheckRequest(wire.AuthenticateRequest{Kind: kind, ID: id, Name: name})
	})
}

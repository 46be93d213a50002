package persist

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/natstest"
	"github.com/realmstream/realmstream/libs/pgtest"
	"github.com/realmstream/realmstream/libs/wire"
)

// TestAccountsServed: a running persist answers wire.AccountsAuthenticate
// from its own storage, Pebble and Postgres, and the account outlives a
// restart of the service.
func TestAccountsServed(t *testing.T) {
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv.URL)
	ask := func(t *testing.T) wire.AuthenticateReply {
		b, _ := json.Marshal(wire.AuthenticateRequest{Kind: wire.AccountKindDevice, ID: "persist-device-1", Create: true, Name: "Pat"})
		m, err := nc.Request(wire.AccountsAuthenticate, b, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r wire.AuthenticateReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, backend := range []string{"pebble", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			cfg := testConfig(srv.URL)
			cfg.ShardMapBucket = "shardmap_accounts_" + backend
			if backend == "postgres" {
				cfg.PGURLs = []string{pgtest.NewDatabase(t), pgtest.NewDatabase(t)}
			} else {
				cfg.PebbleDir = t.TempDir()
			}
			r := start(t, cfg)
			first := ask(t)
			if first.Code != "" || !first.Created || first.Name != "Pat" {
				t.Fatalf("first login: %+v", first)
			}
			r.stop()
			r = start(t, cfg)
			defer r.stop()
			again := ask(t)
			if again.Code != "" || again.Created || again.PlayerID != first.PlayerID {
				t.Fatalf("after restart: %+v, first %+v", again, first)
			}
		})
	}
}

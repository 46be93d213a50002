package deploy

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/realmstream/realmstream/libs/certtest"
	"github.com/realmstream/realmstream/libs/natsconn"
	"github.com/realmstream/realmstream/libs/tlsfiles"
)

// natsAdminUser is the test's own NATS user (stream checks).
const natsAdminUser = "deploytest-admin"

// secureNATS is an embedded NATS standing in for staging/prod's: TLS only
// (a certificate made in the test), one user per service with the password
// the manifests give it from the nats-auth Secret.
type secureNATS struct {
	srv   *server.Server
	url   string
	pki   *certtest.PKI
	admin natsconn.Options
}

func startSecureNATS(t *testing.T, users map[string]string) *secureNATS {
	t.Helper()
	pki := certtest.New(t, "deploytest-nats-ca")
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.ServerCert, KeyFile: pki.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	o := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		TLS: true, TLSConfig: tc, TLSTimeout: 5}
	users[natsAdminUser] = "deploytest-admin-password"
	for u, p := range users {
		o.Users = append(o.Users, &server.User{Username: u, Password: p})
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("secure nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return &secureNATS{srv: s, url: s.ClientURL(), pki: pki,
		admin: natsconn.Options{User: natsAdminUser, Password: users[natsAdminUser], TLS: tlsfiles.Files{CA: pki.CA}}}
}

// connectNATS connects the test to the local NATS (with the admin user and
// TLS when it is the secure one).
func (d *localDeps) connectNATS(t *testing.T) jetstream.JetStream {
	t.Helper()
	var opts natsconn.Options
	if d.secure != nil {
		opts = d.secure.admin
	}
	nc, err := opts.Connect(d.nats, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to the local NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// checkSecureConnections: every service that has a NATS user in the
// manifests is connected as that user, over TLS.
func (d *localDeps) checkSecureConnections(t *testing.T, users map[string]string) {
	t.Helper()
	if d.secure == nil {
		return
	}
	cz, err := d.secure.srv.Connz(&server.ConnzOptions{Username: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, c := range cz.Conns {
		if c.TLSVersion == "" {
			t.Errorf("NATS connection %s (%s) is not on TLS", c.Name, c.AuthorizedUser)
		}
		seen[c.AuthorizedUser]++
	}
	for u := range users {
		if u != natsAdminUser && seen[u] == 0 {
			t.Errorf("no NATS connection authenticated as %q (connections by user: %v)", u, seen)
		}
	}
	t.Logf("NATS over TLS, connections by user: %v", seen)
}

// natsAuthOf collects the NATS users and their stand-in passwords the
// configuration under test gives the services, and whether it asks for TLS.
func natsAuthOf(sources []configSource) (users map[string]string, tls bool) {
	users = map[string]string{}
	for _, src := range sources {
		if u, ok := src.env["REALM_NATS_USER"]; ok {
			users[u.Value] = standIn("REALM_NATS_PASSWORD", src.env["REALM_NATS_PASSWORD"], src.svc)
		}
		for k := range src.env {
			if strings.HasPrefix(k, "REALM_NATS_TLS") {
				tls = true
			}
		}
	}
	return users, tls
}

package natsconn

import (
	"crypto/tls"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/realmstream/realmstream/libs/certtest"
	"github.com/realmstream/realmstream/libs/envflag"
	"github.com/realmstream/realmstream/libs/tlsfiles"
)

// startTLSServer runs an embedded JetStream server that demands TLS with a
// client certificate signed by pki's CA, and authorizes the user "world"
// (password "s3cret") and the nkey user pub.
func startTLSServer(t *testing.T, pki *certtest.PKI, nkeyPub string) *server.Server {
	t.Helper()
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CaFile: pki.CA, Verify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	o := &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 2,
		Users: []*server.User{{Username: "world", Password: "s3cret"}},
	}
	if nkeyPub != "" {
		o.Nkeys = []*server.NkeyUser{{Nkey: nkeyPub}}
	}
	return run(t, o)
}

func run(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func tlsFiles(pki *certtest.PKI) tlsfiles.Files {
	return tlsfiles.Files{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}
}

// roundTrip proves the connection works end to end: a JetStream stream is
// created and a message stored and acknowledged over it.
func roundTrip(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatalf("add stream over TLS: %v", err)
	}
	if _, err := js.Publish("t.1", []byte("x")); err != nil {
		t.Fatalf("publish over TLS: %v", err)
	}
}

func TestUserPasswordOverMutualTLS(t *testing.T) {
	pki := certtest.New(t, "realm-test-ca")
	s := startTLSServer(t, pki, "")
	url := strings.Replace(s.ClientURL(), "nats://", "tls://", 1)
	o := Options{User: "world", Password: "s3cret", TLS: tlsFiles(pki)}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	nc, err := o.Connect(url, nats.Timeout(3*time.Second))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	cs, err := nc.TLSConnectionState()
	if err != nil || !cs.HandshakeComplete || cs.Version < tls.VersionTLS12 {
		t.Fatalf("connection not on TLS >= 1.2: %+v %v", cs.Version, err)
	}
	if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != "localhost" {
		t.Fatalf("unexpected server certificate")
	}
	roundTrip(t, nc)
	// nats:// URL works too: the TLS options alone turn TLS on.
	nc2, err := o.Connect(s.ClientURL(), nats.Timeout(3*time.Second))
	if err != nil {
		t.Fatalf("connect with nats:// and TLS options: %v", err)
	}
	nc2.Close()
}

func TestRefusedConnections(t *testing.T) {
	pki := certtest.New(t, "realm-test-ca")
	other := certtest.New(t, "some-other-ca")
	s := startTLSServer(t, pki, "")
	url := s.ClientURL()
	for name, o := range map[string]Options{
		"wrong password":          {User: "world", Password: "nope", TLS: tlsFiles(pki)},
		"no credentials":          {TLS: tlsFiles(pki)},
		"no client certificate":   {User: "world", Password: "s3cret", TLS: tlsfiles.Files{CA: pki.CA}},
		"server not trusted":      {User: "world", Password: "s3cret", TLS: tlsfiles.Files{CA: other.CA, Cert: pki.ClientCert, Key: pki.ClientKey}},
		"client cert of other CA": {User: "world", Password: "s3cret", TLS: tlsFiles(other)},
		"in clear":                {User: "world", Password: "s3cret"},
		"wrong server name":       {User: "world", Password: "s3cret", TLS: tlsfiles.Files{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey, ServerName: "nats.example.com"}},
	} {
		nc, err := o.Connect(url, nats.Timeout(2*time.Second), nats.NoReconnect())
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected, want refused", name)
		}
	}
}

func TestNKeySeed(t *testing.T) {
	pki := certtest.New(t, "realm-test-ca")
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "world.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startTLSServer(t, pki, pub)
	o := Options{NKeySeed: seedFile, TLS: tlsFiles(pki)}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	nc, err := o.Connect(s.ClientURL(), nats.Timeout(3*time.Second))
	if err != nil {
		t.Fatalf("nkey connect: %v", err)
	}
	roundTrip(t, nc)
	nc.Close()

	other, _ := nkeys.CreateUser()
	oseed, _ := other.Seed()
	if err := os.WriteFile(seedFile, oseed, 0o600); err != nil {
		t.Fatal(err)
	}
	if nc, err := o.Connect(s.ClientURL(), nats.Timeout(2*time.Second), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("an unknown nkey connected")
	}
}

// TestCredsFile runs the server in operator mode (the decentralised JWT auth
// NATS' Helm chart and NSC set up) and connects with a .creds file.
func TestCredsFile(t *testing.T) {
	pki := certtest.New(t, "realm-test-ca")
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	ojwt, err := oc.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ajwt, err := ac.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.IssuerAccount = apub
	ujwt, err := uc.Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	useed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(t.TempDir(), "world.creds")
	if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	op, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, CaFile: pki.CA, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	// JetStream in operator mode needs a system account.
	skp, _ := nkeys.CreateAccount()
	spub, _ := skp.PublicKey()
	sjwt, err := jwt.NewAccountClaims(spub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	res := &server.MemAccResolver{}
	for k, v := range map[string]string{apub: ajwt, spub: sjwt} {
		if err := res.Store(k, v); err != nil {
			t.Fatal(err)
		}
	}
	s := run(t, &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		TLS: true, TLSVerify: true, TLSConfig: tc, TLSTimeout: 2,
		TrustedOperators: []*jwt.OperatorClaims{op}, AccountResolver: res, SystemAccount: spub,
	})
	o := Options{Creds: credsFile, TLS: tlsFiles(pki)}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	nc, err := o.Connect(s.ClientURL(), nats.Timeout(3*time.Second))
	if err != nil {
		t.Fatalf("creds connect: %v", err)
	}
	roundTrip(t, nc)
	nc.Close()
}

// TestClientCertificateRotates replaces the client certificate files while
// connected; the reconnect after a server restart uses the new pair, and a
// pair from an untrusted CA is refused then (the files are read per connect).
func TestClientCertificateRotates(t *testing.T) {
	pki := certtest.New(t, "realm-test-ca")
	s := startTLSServer(t, pki, "")
	o := Options{User: "world", Password: "s3cret", TLS: tlsFiles(pki)}
	nc, err := o.Connect(s.ClientURL(), nats.Timeout(3*time.Second), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	other := certtest.New(t, "some-other-ca")
	for _, p := range [][2]string{{other.ClientCert, pki.ClientCert}, {other.ClientKey, pki.ClientKey}} {
		b, err := os.ReadFile(p[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if nc, err := o.Connect(s.ClientURL(), nats.Timeout(2*time.Second), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("the rotated (untrusted) client certificate was not used: connected with the old one")
	}
}

func TestValidate(t *testing.T) {
	pki := certtest.New(t, "realm-test-ca")
	for name, o := range map[string]Options{
		"creds and user":        {Creds: pki.CA, User: "u"},
		"nkey and creds":        {Creds: pki.CA, NKeySeed: pki.CA},
		"password without user": {Password: "p"},
		"missing creds file":    {Creds: "/nonexistent/x.creds"},
		"cert without key":      {TLS: tlsfiles.Files{Cert: pki.ClientCert}},
		"missing CA file":       {TLS: tlsfiles.Files{CA: "/nonexistent/ca.crt"}},
		"CA file not PEM":       {TLS: tlsfiles.Files{CA: pki.ClientKey}},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := (Options{}).Validate(); err != nil {
		t.Errorf("zero options refused: %v", err)
	}
}

func TestFlagsAndEnv(t *testing.T) {
	t.Setenv("REALM_NATS_USER", "world")
	t.Setenv("REALM_NATS_PASSWORD", "from-secret")
	t.Setenv("REALM_NATS_TLS_CA", "/etc/realm/nats-tls/ca.crt")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var o Options
	set := envflag.New(fs)
	o.Register(set)
	if err := set.Parse([]string{"--nats-tls-server-name", "nats.nats.svc"}); err != nil {
		t.Fatal(err)
	}
	if o.User != "world" || o.Password != "from-secret" || o.TLS.CA != "/etc/realm/nats-tls/ca.crt" || o.TLS.ServerName != "nats.nats.svc" {
		t.Fatalf("%+v", o)
	}
	var help strings.Builder
	fs.SetOutput(&help)
	fs.PrintDefaults()
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n != len(FlagNames()) {
		t.Errorf("Register defines %d flags, FlagNames lists %d", n, len(FlagNames()))
	}
	for _, name := range FlagNames() {
		if fs.Lookup(name) == nil {
			t.Errorf("FlagNames lists %s, Register does not define it", name)
		}
	}
	for _, want := range []string{"REALM_NATS_CREDS", "REALM_NATS_NKEY_SEED", "REALM_NATS_USER", "REALM_NATS_PASSWORD", "REALM_NATS_TLS", "REALM_NATS_TLS_CA", "REALM_NATS_TLS_CERT", "REALM_NATS_TLS_KEY", "REALM_NATS_TLS_SERVER_NAME"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("--help does not name %s", want)
		}
	}
}

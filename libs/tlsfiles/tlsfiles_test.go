package tlsfiles

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/realmstream/realmstream/libs/certtest"
)

// TestConfigVerifiesServer dials a real TLS listener (certificate made in the
// test) that demands a client certificate: the configuration from the files
// completes the handshake, one trusting another CA does not.
func TestConfigVerifiesServer(t *testing.T) {
	pki := certtest.New(t, "ca")
	srv, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	roots, _ := Files{CA: pki.CA}.RootCAs()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) { _ = c.(*tls.Conn).Handshake(); _, _ = c.Write([]byte("ok")); c.Close() }(c)
		}
	}()
	dial := func(f Files) error {
		cfg, err := f.Config()
		if err != nil {
			return err
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 2)
		_, err = c.Read(buf)
		return err
	}
	if err := dial(Files{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}); err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	other := certtest.New(t, "other")
	if err := dial(Files{CA: other.CA, Cert: pki.ClientCert, Key: pki.ClientKey}); err == nil {
		t.Fatal("a server certificate of an untrusted CA was accepted")
	}
	if err := dial(Files{CA: pki.CA}); err == nil {
		t.Fatal("connected without the client certificate the server demands")
	}
	if cfg, _ := (Files{}).Config(); cfg != nil {
		t.Fatal("zero Files gave a TLS config")
	}
}

// Package tlsfiles builds client TLS configurations from PEM files mounted
// from Kubernetes Secrets (or cert-manager volumes): a CA bundle to verify the
// server, and an optional client certificate for mutual TLS, read again on
// every handshake so a renewed certificate is picked up by the next
// (re)connection without a restart.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/realmstream/realmstream/libs/envflag"
)

// Files names the PEM files of one client's TLS. The zero value is "no TLS
// settings": Enabled reports false and Config returns nil.
type Files struct {
	CA   string // CA bundle that signed the server certificate ("" = system roots)
	Cert string // client certificate chain (mutual TLS); with Key
	Key  string // client private key; with Cert
	// ServerName overrides the name verified in the server certificate
	// ("" = the host of the address dialled).
	ServerName string
	// On asks for TLS with the system roots when no file is given.
	On bool
}

// Register binds --<prefix>-tls, --<prefix>-tls-ca, --<prefix>-tls-cert,
// --<prefix>-tls-key and --<prefix>-tls-server-name (and their REALM_*
// variables) to f. what names the server in the help text ("NATS", "Redis").
func (f *Files) Register(s *envflag.Set, prefix, what string) {
	s.Bool(&f.On, prefix+"-tls", f.On, "connect to "+what+" over TLS (implied by any other --"+prefix+"-tls-* flag); verified with the system roots unless --"+prefix+"-tls-ca is set")
	s.String(&f.CA, prefix+"-tls-ca", f.CA, "PEM CA bundle that verifies the "+what+" server certificate (re-read on every connection)")
	s.String(&f.Cert, prefix+"-tls-cert", f.Cert, "PEM client certificate for mutual TLS to "+what+" (with --"+prefix+"-tls-key)")
	s.String(&f.Key, prefix+"-tls-key", f.Key, "PEM private key of --"+prefix+"-tls-cert")
	s.String(&f.ServerName, prefix+"-tls-server-name", f.ServerName, "name expected in the "+what+" server certificate (default: the host dialled)")
}

// Enabled reports whether any TLS setting is given.
func (f Files) Enabled() bool {
	return f.On || f.CA != "" || f.Cert != "" || f.Key != "" || f.ServerName != ""
}

// Validate checks that the files are given in pairs and load now: a mistyped
// path is refused at start (exit 2) rather than at the first reconnect.
func (f Files) Validate() error {
	if (f.Cert == "") != (f.Key == "") {
		return errors.New("tls: a client certificate needs both the cert and the key file")
	}
	if f.CA != "" {
		if _, err := f.RootCAs(); err != nil {
			return err
		}
	}
	if f.Cert != "" {
		if _, err := f.Certificate(); err != nil {
			return err
		}
	}
	return nil
}

// RootCAs reads the CA bundle (nil, nil when none is configured: system roots).
func (f Files) RootCAs() (*x509.CertPool, error) {
	if f.CA == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("tls: CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: CA bundle %s: no PEM certificate in it", f.CA)
	}
	return pool, nil
}

// Certificate reads the client certificate and key.
func (f Files) Certificate() (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: client certificate: %w", err)
	}
	return c, nil
}

// Config returns a client configuration (TLS >= 1.2), or nil when TLS is not
// enabled. The client certificate is read again at each handshake; the CA
// bundle is read once here (a new CA comes with a new Secret, whose hash
// annotation restarts the pods). The server certificate is always verified:
// against the CA bundle when given, the system roots otherwise.
func (f Files) Config() (*tls.Config, error) {
	if !f.Enabled() {
		return nil, nil
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.Cert != "" {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := f.Certificate()
			return &c, err
		}
	}
	pool, err := f.RootCAs()
	if err != nil {
		return nil, err
	}
	cfg.RootCAs = pool // nil: system roots
	return cfg, nil
}

package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/waitfor"
)

// testCA is a certificate authority made in the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "realm test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a server certificate for 127.0.0.1 with the given serial
// into dir/tls.crt and dir/tls.key (as a Kubernetes TLS Secret volume holds them).
func (ca *testCA) issue(t *testing.T, dir string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "gateway"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	// Write the key first and the certificate last: a handshake between the
	// two writes sees a mismatched pair, which must keep the previous one.
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// serial completes a TLS handshake with addr and returns the serial of the
// server's certificate, verified against the CA.
func serial(ca *testCA, addr string) (int64, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestListenersTLS: with --tls-cert-file/--tls-key-file both client
// listeners (TCP frames and WebSocket) speak TLS with the certificate from
// the files, verified by a client trusting the test CA; a plaintext client
// gets no session; a renewed certificate written over the files is served to
// new connections without a restart, and a half-written pair keeps the old one.
func TestListenersTLS(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ca.issue(t, dir, 100)
	h := start(t, func(c *Config) {
		c.TLSCertFile, c.TLSKeyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	})
	for name, addr := range map[string]string{"tcp": h.gw.TCPAddr(), "ws": h.gw.WSAddr()} {
		if n, err := serial(ca, addr); err != nil || n != 100 {
			t.Fatalf("%s: TLS handshake: serial %d, %v", name, n, err)
		}
	}
	// A plaintext WebSocket upgrade gets no HTTP answer from a TLS listener.
	c, err := net.DialTimeout("tcp", h.gw.WSAddr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	b := make([]byte, 12)
	n, _ := c.Read(b)
	c.Close()
	if string(b[:n]) == "HTTP/1.1 101" {
		t.Fatal("a plaintext client was upgraded")
	}
	// A half-written renewal (new key, old certificate) keeps the old pair.
	crt, _ := os.ReadFile(filepath.Join(dir, "tls.crt"))
	ca.issue(t, dir, 200)
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), crt, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the reload check interval
	if n, err := serial(ca, h.gw.TCPAddr()); err != nil || n != 100 {
		t.Fatalf("mismatched pair on disk: serial %d, %v; want the previous certificate (100)", n, err)
	}
	// The renewal completes: new connections get it.
	ca.issue(t, dir, 300)
	for name, addr := range map[string]string{"tcp": h.gw.TCPAddr(), "ws": h.gw.WSAddr()} {
		waitfor.True(t, 5*time.Second, func() error {
			n, err := serial(ca, addr)
			if err != nil {
				return err
			}
			if n != 300 {
				return fmt.Errorf("%s: serial %d, want the renewed 300", name, n)
			}
			return nil
		})
	}
}

// TestTLSConfigValidate: a certificate without its key is refused at start.
func TestTLSConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.Dev, c.InstanceID, c.TLSCertFile = true, "g", "/x/tls.crt"
	if err := c.Validate(); err == nil {
		t.Fatal("--tls-cert-file without --tls-key-file validates")
	}
}

package gateway

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// listenClient opens a client listener (TCP frames or WebSocket) on addr,
// with TLS when --tls-cert-file and --tls-key-file are set: session tokens
// and play never cross the network in clear.
func (s *Service) listenClient(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || s.cfg.TLSCertFile == "" {
		return ln, err
	}
	r, err := newCertReloader(s.cfg.TLSCertFile, s.cfg.TLSKeyFile, time.Second, s.log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}), nil
}

// certReloader serves the key pair in two files and loads it again when
// their content changes (cert-manager renewals, a rotated Kubernetes Secret
// volume), checking at most once per interval, on a handshake: no restart,
// no dropped connection. A pair that does not load (half-written, key and
// certificate not matching) is logged and the previous one kept.
type certReloader struct {
	certFile, keyFile string
	every             time.Duration
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certPEM   []byte
	keyPEM    []byte
	checkedAt time.Time
}

func newCertReloader(certFile, keyFile string, every time.Duration, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, every: every, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// load reads both files and swaps the pair if it changed. Called with mu held
// (or before r is shared).
func (r *certReloader) load() error {
	c, err := os.ReadFile(r.certFile)
	if err != nil {
		return fmt.Errorf("gateway: tls certificate: %w", err)
	}
	k, err := os.ReadFile(r.keyFile)
	if err != nil {
		return fmt.Errorf("gateway: tls key: %w", err)
	}
	if r.cert != nil && bytes.Equal(c, r.certPEM) && bytes.Equal(k, r.keyPEM) {
		return nil
	}
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		return fmt.Errorf("gateway: tls key pair %s, %s: %w", r.certFile, r.keyFile, err)
	}
	if r.cert != nil {
		r.log.Info("tls certificate reloaded", "cert", r.certFile)
	}
	r.cert, r.certPEM, r.keyPEM = &pair, c, k
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checkedAt) >= r.every {
		r.checkedAt = now
		if err := r.load(); err != nil {
			r.log.Warn("tls certificate not reloaded; serving the previous one", "err", err)
		}
	}
	return r.cert, nil
}

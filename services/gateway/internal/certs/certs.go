// Package certs holds the TLS key pair of the gateway's client listeners:
// it reloads itself when its files change and needs nothing of the service (the
// first step of the gateway split by job, issue 13; connections and sessions follow).
package certs

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Reloader serves the key pair in two files and loads it again when
// their content changes (cert-manager renewals, a rotated Kubernetes Secret
// volume), checking at most once per interval, on a handshake: no restart,
// no dropped connection. A pair that does not load (half-written, key and
// certificate not matching) is logged and the previous one kept.
type Reloader struct {
	certFile, keyFile string
	every             time.Duration
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certPEM   []byte
	keyPEM    []byte
	checkedAt time.Time
}

// NewReloader loads the pair once (an error: the listener does not start)
// and checks the files again at most every interval.
func NewReloader(certFile, keyFile string, every time.Duration, log *slog.Logger) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, every: every, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// load reads both files and swaps the pair if it changed. Called with mu held
// (or before r is shared).
func (r *Reloader) load() error {
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

// GetCertificate is the tls.Config hook: the current pair, reloaded first
// when the interval has passed.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
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

package gateway

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/realmstream/realmstream/services/gateway/internal/certs"
)

// listenClient opens a client listener (TCP frames or WebSocket) on addr,
// with TLS when --tls-cert-file and --tls-key-file are set: session tokens
// and play never cross the network in clear.
func (s *Service) listenClient(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || s.cfg.TLSCertFile == "" {
		return ln, err
	}
	r, err := certs.NewReloader(s.cfg.TLSCertFile, s.cfg.TLSKeyFile, time.Second, s.log)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}), nil
}

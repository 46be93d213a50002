//go:build !unix

package transport

import (
	"errors"
	"net"
	"syscall"
)

func rawOf(net.Conn) syscall.RawConn { return nil }

// TryWrite is not available here (CanTry is false).
func (t *TCP) TryWrite([]byte) (int, error) {
	return 0, errors.New("transport: no non-blocking write on this platform")
}

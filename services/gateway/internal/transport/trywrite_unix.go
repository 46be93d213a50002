//go:build unix

package transport

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// rawOf is the raw socket of a plain TCP connection (nil for anything
// else, TLS included): what TryWrite writes on.
func rawOf(c net.Conn) syscall.RawConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// TryWrite writes what the socket takes of b now, without waiting: one
// write(2) on the non-blocking socket. n < len(b) with a nil error means its
// send buffer is full (or the deadline of the last blocking write has
// passed): the rest is for a blocking write. Only with CanTry.
func (t *TCP) TryWrite(b []byte) (int, error) {
	var n int
	var werr error
	err := t.raw.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), b)
			if werr != syscall.EINTR {
				return true // never wait for writability: that is the writer's job
			}
		}
	})
	n = max(n, 0)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, nil
	case err != nil:
		return 0, err
	case werr == syscall.EAGAIN:
		return n, nil
	}
	return n, werr
}

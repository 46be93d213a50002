// Package freeport hands out TCP ports for servers that tests (and dev
// modes) start on a port chosen in advance: a cluster's route ports, a
// redis-server or postgres child process, a service whose address its
// peers must know before it starts.
//
// Listening on :0 and closing, the usual trick, picks a port in the
// kernel's ephemeral range (32768-60999 on Linux), which is exactly where
// every outgoing connection of every process on the machine takes its local
// port: between the close and the server's bind, a test package running
// beside this one can take it (CI, 2 Dec: "natstest: cluster node 1 not
// ready", a route port taken; session 7: a stack that exited at once). The
// ports here come from 12000-31999, below that range, checked free by
// listening on them, and never handed out twice by one process.
package freeport

import (
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

// The range ports are handed out from: below the ephemeral range, above
// the well-known servers of a development machine.
const (
	Low  = 12000
	High = 32000 // exclusive
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
	next  = Low + rand.IntN(High-Low) // processes start at different places
)

// ErrExhausted: every port of the range is taken or was handed out.
var ErrExhausted = errors.New("freeport: no free run of ports left in 12000-31999")

// Listen returns a listener on 127.0.0.1 on a port of the range that this
// process never handed out before. Keep it open to hold the port; close it
// just before the server binds.
func Listen() (net.Listener, error) {
	ls, err := listenRun(1)
	if err != nil {
		return nil, err
	}
	return ls[0], nil
}

// Run returns the first of width consecutive ports of the range, each free
// a moment ago and none handed out before by this process (a service that
// takes its ops ports as base, base+1, ...).
func Run(width int) (int, error) {
	ls, err := listenRun(width)
	if err != nil {
		return 0, err
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ls[0].Addr().(*net.TCPAddr).Port, nil
}

// listenRun listens on width consecutive ports of the range, none handed
// out before, and marks them handed out.
func listenRun(width int) ([]net.Listener, error) {
	if width < 1 || width > High-Low {
		return nil, errors.New("freeport: run width out of range")
	}
	mu.Lock()
	defer mu.Unlock()
	for range High - Low {
		base := next
		next++
		if next >= High {
			next = Low
		}
		if base+width > High {
			continue
		}
		var ls []net.Listener
		for p := base; p < base+width; p++ {
			if given[p] {
				break
			}
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		if len(ls) < width {
			for _, l := range ls {
				_ = l.Close()
			}
			continue
		}
		for p := base; p < base+width; p++ {
			given[p] = true
		}
		next = base + width
		if next >= High {
			next = Low
		}
		return ls, nil
	}
	return nil, ErrExhausted
}

// Port returns a port of the range that was free a moment ago and that
// this process never handed out before.
func Port() (int, error) {
	l, err := Listen()
	if err != nil {
		return 0, err
	}
	p := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return p, nil
}

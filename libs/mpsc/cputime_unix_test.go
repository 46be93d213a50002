//go:build unix

package mpsc

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the user+system CPU time of this process so far.
func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	d, err := processCPU()
	if err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return d
}

// processCPU returns the user+system CPU time of this process so far.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// Package waitfor polls an eventually-true condition with a bound, for tests:
// never sleep and hope.
package waitfor

import (
	"testing"
	"time"
)

// True calls fn every 10ms (backing off to 200ms) until it returns nil or
// timeout passes; then it fails the test with fn's last error.
func True(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waitfor: not true after %v: %v", timeout, err)
		}
		time.Sleep(wait)
		if wait < 200*time.Millisecond {
			wait *= 2
		}
	}
}

// Package svctest starts a service for a test: svcmain.Start bound to the
// test's life (stopped at cleanup, failing the test when it does not start).
package svctest

import (
	"context"
	"testing"
	"time"

	"github.com/realmstream/realmstream/libs/svcmain"
)

// ReadyTimeout bounds the start of a service in a test (a loaded CI machine
// runs several embedded servers at once).
const ReadyTimeout = 60 * time.Second

// StopTimeout bounds the stop of a service at cleanup.
const StopTimeout = 30 * time.Second

// Start starts svc, waits for it to be ready and stops it at the end of the
// test; the test fails when svc does not start or stops with an error at cleanup.
func Start(t testing.TB, name string, svc svcmain.Readier) *svcmain.Running {
	t.Helper()
	r, err := svcmain.Start(context.Background(), name, svc, ReadyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(StopTimeout); err != nil {
			t.Errorf("%s: stop: %v", name, err)
		}
	})
	return r
}

package svcmain

import (
	"context"
	"fmt"
	"time"
)

// Readier is a service that says when it has started.
type Readier interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
}

// Running is a service started by Start.
type Running struct {
	Name   string
	cancel context.CancelCauseFunc
	done   chan struct{}
	err    error
	// unexpected: Run returned before Stop (or the timeout) cancelled it.
	unexpected bool
}

// Start runs svc in the background, on a context of its own that Stop
// cancels, and waits until it is ready. It fails when Run returns first, when
// timeout passes (the service is stopped then) or when ctx is done. It is the
// one way the stack and the tests start a service.
func Start(ctx context.Context, name string, svc Readier, timeout time.Duration) (*Running, error) {
	sctx, cancel := context.WithCancelCause(context.Background())
	r := &Running{Name: name, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = svc.Run(sctx)
		r.unexpected = sctx.Err() == nil
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-svc.Ready():
		return r, nil
	case <-r.done:
		cancel(nil)
		return nil, fmt.Errorf("%s stopped before it was ready: %v", name, r.err)
	case <-t.C:
		_ = r.Stop(timeout)
		return nil, fmt.Errorf("%s not ready after %v", name, timeout)
	case <-ctx.Done():
		_ = r.Stop(timeout)
		return nil, ctx.Err()
	}
}

// Done is closed when Run has returned.
func (r *Running) Done() <-chan struct{} { return r.done }

// Err is what Run returned (after Done).
func (r *Running) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Unexpected reports (after Done) whether Run returned on its own, not
// because Stop cancelled it: a service that died.
func (r *Running) Unexpected() bool {
	select {
	case <-r.done:
		return r.unexpected
	default:
		return false
	}
}

// Stop cancels the service and waits up to timeout for Run to return; it
// returns Run's error, or says the service did not stop in time.
func (r *Running) Stop(timeout time.Duration) error { return r.StopCause(nil, timeout) }

// StopCause is Stop with cause as the cancel cause of the service's context
// (context.Cause; nil is context.Canceled): a test simulates a crash that
// way (the world stops without handing its zones over on zone.ErrCrash).
func (r *Running) StopCause(cause error, timeout time.Duration) error {
	r.cancel(cause)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.done:
		return r.err
	case <-t.C:
		return fmt.Errorf("%s did not stop within %v", r.Name, timeout)
	}
}

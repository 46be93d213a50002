package svcmain

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

type readySvc struct {
	ready   chan struct{}
	failNow error
	stopErr error
	noReady bool
}

func (s *readySvc) Ready() <-chan struct{} { return s.ready }

func (s *readySvc) Run(ctx context.Context) error {
	if s.failNow != nil {
		return s.failNow
	}
	if !s.noReady {
		close(s.ready)
	}
	<-ctx.Done()
	return s.stopErr
}

func TestStart(t *testing.T) {
	ctx := context.Background()
	ok := &readySvc{ready: make(chan struct{}), stopErr: errors.New("drained badly")}
	r, err := Start(ctx, "ok", ok, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
		t.Fatal("done before Stop")
	default:
	}
	if err := r.Stop(5 * time.Second); err == nil || err.Error() != "drained badly" {
		t.Errorf("Stop: %v, want Run's error", err)
	}
	if r.Err() == nil {
		t.Error("Err after Done is nil")
	}

	_, err = Start(ctx, "broken", &readySvc{ready: make(chan struct{}), failNow: errors.New("no NATS")}, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "no NATS") || !strings.Contains(err.Error(), "broken") {
		t.Errorf("early failure: %v", err)
	}
	_, err = Start(ctx, "slow", &readySvc{ready: make(chan struct{}), noReady: true}, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready") {
		t.Errorf("never ready: %v", err)
	}
}

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
	dead    chan struct{}
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
	select {
	case <-ctx.Done():
	case <-s.deadCh():
	}
	return s.stopErr
}

func (s *readySvc) deadCh() chan struct{} {
	if s.dead == nil {
		return nil // a nil channel never fires
	}
	return s.dead
}

// die makes Run return on its own.
func (s *readySvc) die() { close(s.dead) }

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
	if r.Err() == nil || r.Unexpected() {
		t.Errorf("after Stop: Err %v, Unexpected %v", r.Err(), r.Unexpected())
	}
	dies := &readySvc{ready: make(chan struct{}), dead: make(chan struct{}), stopErr: errors.New("lost NATS")}
	r, err = Start(ctx, "dies", dies, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dies.die()
	<-r.Done()
	if !r.Unexpected() {
		t.Error("a service that returned on its own is not Unexpected")
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

package ownership

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// slowMembers is a members bucket whose Put waits for release: a KV that
// hangs (NATS slow or partitioned) while the controller decides to leave.
type slowMembers struct {
	jetstream.KeyValue // only Put and Delete are used
	entered, release   chan struct{}
	mu                 sync.Mutex
	present            bool
}

func (m *slowMembers) Put(ctx context.Context, key string, v []byte) (uint64, error) {
	close(m.entered)
	<-m.release
	m.mu.Lock()
	defer m.mu.Unlock()
	m.present = true
	return 1, nil
}

func (m *slowMembers) Delete(ctx context.Context, key string, _ ...jetstream.KVDeleteOpt) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.present = false
	return nil
}

// TestLeaveDoesNotWaitForAMembershipPut: leaving the membership (the
// controller, when the lock store stops answering) must not wait behind a
// membership put that hangs, and the put landing after the leave must not
// leave an entry behind. Before, putMember held memberMu across the put and
// the controller blocked on it for up to --publish-timeout (the controller
// holds no mutex across a network call).
func TestLeaveDoesNotWaitForAMembershipPut(t *testing.T) {
	m := &slowMembers{entered: make(chan struct{}), release: make(chan struct{})}
	s := New(Config{Instance: "w-1", LeaseTTL: 5 * time.Second, MemberTTL: 1250 * time.Millisecond, PublishTimeout: 2 * time.Second}, nil)
	s.members = m
	putDone := make(chan struct{})
	go func() { defer close(putDone); s.putMember(context.Background()) }()
	<-m.entered
	left := make(chan error, 1)
	go func() { left <- s.leaveMembership(context.Background()) }()
	select {
	case err := <-left:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		close(m.release)
		t.Fatal("leaving the membership waited for a put in flight")
	}
	close(m.release) // the put lands after the delete
	<-putDone
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.present {
		t.Error("the membership entry of a put that landed after the leave is still there")
	}
}

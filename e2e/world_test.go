package e2e

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestWorldsDev is a development aid (run with -run TestWorldsDev): the stack
// without persist, a short swarm, a world crash, and the audit.
func TestWorldsDev(t *testing.T) {
	if os.Getenv("E2E_DEV") == "" {
		t.Skip("development aid: set E2E_DEV=1")
	}
	res := runStack(t, runOptions{Bots: 60, Duration: 25 * time.Second, NoPersist: true, Progress: os.Stderr, ResumeEvery: 10 * time.Second, WSFraction: 0.3})
	for _, v := range res.Violations {
		t.Errorf("audit: %v", v)
	}
	_ = context.Background
}

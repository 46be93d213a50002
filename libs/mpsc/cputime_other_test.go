//go:build !unix

package mpsc

import (
	"testing"
	"time"
)

// cpuTime is not measured off unix; the park counter still checks idleness.
func cpuTime(*testing.T) time.Duration { return 0 }

//go:build !unix

package mpsc

import (
	"errors"
	"testing"
	"time"
)

// cpuTime is not measured off unix; the park counter still checks idleness.
func cpuTime(testing.TB) time.Duration { return 0 }

func processCPU() (time.Duration, error) { return 0, errors.ErrUnsupported }

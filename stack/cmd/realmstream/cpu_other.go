//go:build !unix

package main

import (
	"errors"
	"time"
)

func processCPU() time.Duration { return 0 }

func pidCPU(int) (time.Duration, error) { return 0, errors.New("process CPU time needs Linux /proc") }

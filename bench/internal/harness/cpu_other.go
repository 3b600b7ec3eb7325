//go:build !linux

package harness

import (
	"errors"
	"time"
)

// ErrProcStat reports that per-process CPU time is unavailable here.
var ErrProcStat = errors.New("harness: process CPU time needs Linux /proc")

// SelfCPU returns 0: the harness reads CPU time only on Linux.
func SelfCPU() time.Duration { return 0 }

// ProcessCPU returns ErrProcStat: the harness reads /proc only on Linux.
func ProcessCPU(pid int) (time.Duration, error) { return 0, ErrProcStat }

// ProcessRSS returns ErrProcStat: the harness reads /proc only on Linux.
func ProcessRSS(pid int) (int64, error) { return 0, ErrProcStat }

//go:build unix

package sigbatch

import (
	"syscall"
	"time"
)

// processCPU returns the user+system CPU time this process has used, so a
// benchmark can report CPU per signature, which other load on a shared
// machine disturbs less than throughput.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

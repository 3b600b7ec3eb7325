//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// raiseNoFile sets this process's open-file limit (soft and hard) to n;
// the servers it starts inherit it. Raising the hard limit needs privilege.
func raiseNoFile(n uint64) error {
	lim := syscall.Rlimit{Cur: n, Max: n}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("-nofile %d: setrlimit: %w", n, err)
	}
	return nil
}

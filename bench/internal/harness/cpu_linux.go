//go:build linux

package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// SelfCPU returns the user+system CPU time this process has used (getrusage).
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ErrProcStat reports a /proc/<pid>/stat that could not be parsed.
var ErrProcStat = errors.New("harness: unreadable /proc stat")

// ProcessCPU returns the user+system CPU time used so far by process pid,
// read from /proc/<pid>/stat (utime+stime), with a resolution of 10 ms.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces:
	// fields are counted from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: pid %d: no command name", ErrProcStat, pid)
	}
	f := bytes.Fields(b[i+1:])
	// After ')': field 3 (state) is f[0], so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: pid %d: %d fields", ErrProcStat, pid, len(f)+2)
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%w: pid %d: utime %q stime %q", ErrProcStat, pid, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// ProcessRSS returns the resident set size of process pid in bytes, read
// from /proc/<pid>/status (VmRSS).
func ProcessRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("%w: pid %d: VmRSS %q", ErrProcStat, pid, rest)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: pid %d: VmRSS %q", ErrProcStat, pid, rest)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%w: pid %d: no VmRSS", ErrProcStat, pid)
}

//go:build unix

package mmaplog

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

// TestPrepareEMFILEReal runs out of file descriptors for real (a lowered
// RLIMIT_NOFILE, every descriptor below it taken), as a client opening a
// thousand chains does: the append that needs a new segment fails with a
// retryable error wrapping EMFILE, the log is not poisoned, and once the
// descriptors are released it appends again by itself.
func TestPrepareEMFILEReal(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Options{SegmentSize: 16 << 10, MaxRecordSize: 1 << 10})
	defer l.Close()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	low := lim
	low.Cur = 256
	if low.Cur > lim.Cur {
		t.Skipf("soft limit %d already below 256", lim.Cur)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	var hogs []*os.File
	release := func() {
		for _, f := range hogs {
			f.Close()
		}
		hogs = nil
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Errorf("restore RLIMIT_NOFILE: %v", err)
		}
	}
	defer release()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatalf("taking descriptors: %v, want EMFILE", err)
			}
			break
		}
		hogs = append(hogs, f)
	}
	next, err := appendUntilErr(t, l, 0, 2000)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("append %d without descriptors: %v, want ErrUnavailable wrapping EMFILE", next, err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("log poisoned by EMFILE: %v", err)
	}
	release()
	appendEventually(t, l, next)
	next++
	if next, err = appendUntilErr(t, l, next, 200); err != nil {
		t.Fatalf("append %d after descriptors came back: %v", next, err)
	}
	checkDense(t, readAll(t, l, 0), 0, next)
}

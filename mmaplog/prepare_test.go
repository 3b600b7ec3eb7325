package mmaplog

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/atedb/atedb/internal/vfs"
)

// appendUntilErr appends one record per call from offset next on until an
// append fails (or max appends succeeded) and returns the next offset and
// the error.
func appendUntilErr(t *testing.T, l *Log, next uint64, max int) (uint64, error) {
	t.Helper()
	for range max {
		first, err := l.Append([][]byte{payloadFor(next, sizeFor(next))})
		if err != nil {
			return next, err
		}
		if first != next {
			t.Fatalf("Append: first = %d, want %d", first, next)
		}
		next++
	}
	return next, nil
}

// appendEventually retries the append of record next until it succeeds,
// for up to 5 s, and fails the test otherwise.
func appendEventually(t *testing.T, l *Log, next uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		first, err := l.Append([][]byte{payloadFor(next, sizeFor(next))})
		if err == nil {
			if first != next {
				t.Fatalf("Append after recovery: first = %d, want %d (offsets of failed appends must be reused)", first, next)
			}
			return
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Append while recovering: %v, want ErrUnavailable", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Append still failing 5 s after the cause was removed: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPrepareFailureIsRetryable fails the preparation of the next segment in
// each way a running server meets (no space, no file descriptors, no
// permission): the appends that need the segment fail with a retryable
// *UnavailableError wrapping the cause, the log is not poisoned, and once
// the cause is gone appends succeed again by themselves, at dense offsets,
// without reopening the log. Today's code poisoned the log for good.
func TestPrepareFailureIsRetryable(t *testing.T) {
	cases := map[string]vfs.Rule{
		"ENOSPC on allocate":  {Ops: vfs.OpAllocate, Path: preallocName, Err: syscall.ENOSPC},
		"EMFILE on create":    {Ops: vfs.OpCreate, Path: preallocName, Err: syscall.EMFILE},
		"EACCES on create":    {Ops: vfs.OpCreate, Path: preallocName, Err: syscall.EACCES},
		"EACCES on rename":    {Ops: vfs.OpRename, Path: segSuffix, Err: syscall.EACCES},
		"ENOSPC on zero-fill": {Ops: vfs.OpWrite, Path: preallocName, Err: syscall.ENOSPC},
	}
	for name, rule := range cases {
		t.Run(name, func(t *testing.T) {
			mem := vfs.NewMem()
			in := &vfs.Injector{}
			opts := Options{FS: vfs.Inject(mem, in), SegmentSize: 8 << 10, MaxRecordSize: 1 << 10, Logger: testLogger(t)}
			l := openT(t, "/log", opts)
			defer func() { l.Close() }()
			in.Add(rule)
			next, err := appendUntilErr(t, l, 0, 1000)
			var ue *UnavailableError
			if !errors.As(err, &ue) || !errors.Is(err, ErrUnavailable) || !errors.Is(err, rule.Err) {
				t.Fatalf("append %d: %v, want an *UnavailableError wrapping %v", next, err, rule.Err)
			}
			if next == 0 {
				t.Fatalf("the first append failed: the fault hit the active segment, not the next one")
			}
			if ue.Segment != segmentName(next) {
				t.Fatalf("UnavailableError.Segment = %q, want %q", ue.Segment, segmentName(next))
			}
			if err := l.Err(); err != nil {
				t.Fatalf("log poisoned by a recoverable error: %v", err)
			}
			// Still failing, still not poisoned, and the failed offsets are
			// not consumed.
			if _, err := l.Append([][]byte{payloadFor(next, sizeFor(next))}); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("second append while the cause persists: %v, want ErrUnavailable", err)
			}
			if l.Head() != next {
				t.Fatalf("Head = %d, want %d", l.Head(), next)
			}
			in.Reset() // the cause is gone
			appendEventually(t, l, next)
			next++
			next, err = appendUntilErr(t, l, next, 300) // across more rotations
			if err != nil {
				t.Fatalf("append %d after recovery: %v", next, err)
			}
			checkDense(t, readAll(t, l, 0), 0, next)
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			l = openT(t, "/log", Options{FS: mem, SegmentSize: 8 << 10, MaxRecordSize: 1 << 10})
			checkDense(t, readAll(t, l, 0), 0, next)
		})
	}
}

// TestRetryableFailureFailsQueuedBatches fails a rotation while other
// batches wait behind the one that needs the new segment: all of them fail
// with the retryable error (their offsets were assigned after the failed
// one), none is acknowledged, and the next append gets the first failed
// offset.
func TestRetryableFailureFailsQueuedBatches(t *testing.T) {
	mem := vfs.NewMem()
	in := &vfs.Injector{}
	l := openT(t, "/log", Options{FS: vfs.Inject(mem, in), SegmentSize: 8 << 10, MaxRecordSize: 1 << 10})
	defer l.Close()
	in.Add(vfs.Rule{Ops: vfs.OpCreate, Path: preallocName, Err: syscall.EMFILE})
	head := uint64(0)
	for ; 8<<10-segHeaderSize-l.Stats().Bytes > 2<<10; head++ { // the first segment is 8 KiB
		if _, err := l.Append([][]byte{payloadFor(head, 100)}); err != nil {
			t.Fatalf("Append %d: %v", head, err)
		}
	}
	errs := make(chan error, 20)
	for i := range 20 {
		off := head + uint64(i)
		if _, err := l.Enqueue([][]byte{payloadFor(off, 400)}, func(_ uint64, err error) { errs <- err }); err != nil {
			t.Fatalf("Enqueue %d: %v", i, err)
		}
	}
	l.Commit(callerIdle)
	var ok, unavailable int
	for range 20 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, ErrUnavailable):
			unavailable++
		default:
			t.Fatalf("queued batch: %v, want success or ErrUnavailable", err)
		}
	}
	if unavailable == 0 || l.Head() != head+uint64(ok) {
		t.Fatalf("%d acknowledged, %d unavailable, Head %d; want some unavailable and Head %d", ok, unavailable, l.Head(), head+uint64(ok))
	}
	in.Reset()
	appendEventually(t, l, l.Head())
	if err := l.Err(); err != nil {
		t.Fatalf("log poisoned: %v", err)
	}
}

// TestNearlyFullDiskShrinksSegments runs two logs on a 24 MiB file system
// whose segments would grow to 8 MiB, as on the tmpfs of the report: when a
// full-size segment no longer fits, a smaller one is prepared, appends go
// on until less than the smallest segment is free, and even then neither
// log is poisoned; freeing space lets them go on. Today's code poisoned
// both with 8 MiB still free.
func TestNearlyFullDiskShrinksSegments(t *testing.T) {
	mem := vfs.NewMem()
	const capacity = 24 << 20
	mem.SetCapacity(capacity)
	opts := Options{FS: mem, SegmentSize: 8 << 20, MaxRecordSize: 64 << 10, Sync: SyncInterval, Logger: discard}
	logs := []*Log{openT(t, "/a", opts), openT(t, "/b", opts)}
	defer func() {
		for _, l := range logs {
			l.Close()
		}
	}()
	rec := make([]byte, 32<<10)
	next := []uint64{0, 0}
	var failed error
	for i := 0; failed == nil && i < 10000; i++ {
		l := logs[i%2]
		if _, err := l.Append([][]byte{rec}); err != nil {
			failed = err
			break
		}
		next[i%2]++
	}
	if !errors.Is(failed, ErrUnavailable) || !errors.Is(failed, syscall.ENOSPC) {
		t.Fatalf("first failure: %v, want ErrUnavailable wrapping ENOSPC", failed)
	}
	free := capacity - mem.Used()
	if free >= 2*firstSegmentSize {
		t.Fatalf("appends failed with %d bytes free, want less than %d (a smaller segment should have been used)", free, 2*firstSegmentSize)
	}
	for i, l := range logs {
		if err := l.Err(); err != nil {
			t.Fatalf("log %d poisoned on a full disk: %v", i, err)
		}
	}
	mem.SetCapacity(0) // space freed
	for i, l := range logs {
		appendEventually2(t, l, rec)
		if got := l.Head(); got != next[i]+1 {
			t.Fatalf("log %d: Head = %d, want %d", i, got, next[i]+1)
		}
	}
}

// appendEventually2 is appendEventually for a fixed payload.
func appendEventually2(t *testing.T, l *Log, rec []byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := l.Append([][]byte{rec})
		if err == nil {
			return
		}
		if !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("Append after freeing space: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

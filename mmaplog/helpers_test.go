package mmaplog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/atedb/atedb/internal/vfs"
)

// payloadFor returns a deterministic payload for an offset, of a size that
// varies with it, so that any misplaced or mixed-up record is detected.
func payloadFor(off uint64, size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(off*31 + uint64(i)*7 + 1)
	}
	if size >= 8 {
		copy(p, fmt.Sprintf("%08x", off&0xffffffff))
	}
	return p
}

func sizeFor(off uint64) int { return int(off*37%300) + 1 }

// testLogger writes the log's messages to the test output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// fixedClock returns a clock that advances one millisecond per call.
func fixedClock() func() time.Time {
	t := time.Unix(1_700_000_000, 0)
	return func() time.Time {
		t = t.Add(time.Millisecond)
		return t
	}
}

func openT(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return l
}

// appendN appends records n0..n0+count-1 (as given by payloadFor/sizeFor) in
// batches of batch records.
func appendN(t testing.TB, l *Log, n0, count uint64, batch int) {
	t.Helper()
	for off := n0; off < n0+count; {
		var ps [][]byte
		for j := 0; j < batch && off+uint64(j) < n0+count; j++ {
			ps = append(ps, payloadFor(off+uint64(j), sizeFor(off+uint64(j))))
		}
		first, err := l.Append(ps)
		if err != nil {
			t.Fatalf("Append at %d: %v", off, err)
		}
		if first != off {
			t.Fatalf("Append: first = %d, want %d", first, off)
		}
		off += uint64(len(ps))
	}
}

// readAll reads every record from offset from to Head and checks payloads.
func readAll(t testing.TB, l *Log, from uint64) []Record {
	t.Helper()
	c, err := l.NewCursor(from)
	if err != nil {
		t.Fatalf("NewCursor: %v", err)
	}
	defer c.Close()
	var all []Record
	buf := make([]Record, 0, 64)
	for {
		recs, err := c.Next(buf, 0)
		if err != nil {
			t.Fatalf("Next after %d records: %v", len(all), err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			all = append(all, Record{Offset: r.Offset, Time: r.Time, Payload: bytes.Clone(r.Payload)})
		}
	}
	return all
}

// checkDense checks that recs are exactly offsets from..to-1 with the
// expected payloads.
func checkDense(t testing.TB, recs []Record, from, to uint64) {
	t.Helper()
	if uint64(len(recs)) != to-from {
		t.Fatalf("got %d records, want %d (offsets %d..%d)", len(recs), to-from, from, to)
	}
	for i, r := range recs {
		want := from + uint64(i)
		if r.Offset != want {
			t.Fatalf("record %d: offset %d, want %d", i, r.Offset, want)
		}
		if !bytes.Equal(r.Payload, payloadFor(want, sizeFor(want))) {
			t.Fatalf("record %d (offset %d): payload mismatch", i, want)
		}
	}
}

func listDir(t testing.TB, fs vfs.FS, dir string) []string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return names
}

func segPath(dir string, first uint64) string { return filepath.Join(dir, segmentName(first)) }

func isCorrupt(err error) (*CorruptionError, bool) {
	var ce *CorruptionError
	ok := errors.As(err, &ce)
	return ce, ok
}

// OSFS returns the operating-system file system (for test helpers).
func OSFS() vfs.FS { return vfs.OS }

// callerIdle is a Commit probe of a caller with nothing else to do.
func callerIdle() bool { return true }

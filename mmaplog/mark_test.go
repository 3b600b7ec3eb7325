package mmaplog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atedb/atedb/internal/vfs"
)

// TestActiveSegmentVanishesUnderLog removes, replaces, renames or cuts the
// active segment of a running log on the real file system: the next group
// commit notices it (fstat link count, inode of the path, size), fails that
// append without acknowledging it, stops the log, and leaves a head mark so
// that the next Open refuses to reuse the acknowledged offsets. Today's
// code kept confirming appends into the removed file.
func TestActiveSegmentVanishesUnderLog(t *testing.T) {
	cases := map[string]func(t *testing.T, path string){
		"removed": func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		},
		"replaced": func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+".x", b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(path+".x", path); err != nil {
				t.Fatal(err)
			}
		},
		"renamed away": func(t *testing.T, path string) {
			if err := os.Rename(path, path+".moved"); err != nil {
				t.Fatal(err)
			}
		},
		"cut": func(t *testing.T, path string) {
			if err := os.Truncate(path, 4096); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, dir, Options{})
			appendN(t, l, 0, 20, 2)
			damage(t, segPath(dir, 0))
			// Group commits check the active segment at most every
			// activeCheckEvery: make the next one due. (The writer last
			// touched its state before appendN returned, and next takes
			// it after Append's enqueue: no race.)
			l.w.nextCheck = time.Time{}
			_, err := l.Append([][]byte{payloadFor(20, 10)})
			ce, ok := isCorrupt(err)
			if !ok || ce.Segment != segmentName(0) {
				t.Fatalf("Append after the active segment %s: %v, want a *CorruptionError naming %s", name, err, segmentName(0))
			}
			if h := l.Head(); h != 20 {
				t.Fatalf("Head = %d, want 20 (the failed append is not acknowledged)", h)
			}
			if _, err := l.Append([][]byte{{1}}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("later Append: %v, want the log stopped with ErrCorrupt", err)
			}
			l.Close()
			if name == "cut" || name == "replaced" {
				return // the file under the name still holds (some of) the records
			}
			_, err = Open(dir, Options{Logger: testLogger(t)})
			if ce, ok := isCorrupt(err); !ok || !strings.Contains(ce.Reason, markName) {
				t.Fatalf("reopen after losing the active segment: %v, want a refusal naming %s", err, markName)
			}
		})
	}
}

// TestHeadMark damages a cleanly closed log's tail (the last record
// flipped, or the active segment removed): Open refuses, naming the mark
// and the segment, and changes no file, instead of cutting a "torn tail"
// and assigning the lost offsets again as today's code did. With
// RepairBelowMark it accepts the loss, logs it and removes the mark. A log
// that crashed after reopening may still lose its unsynced tail above the
// mark.
func TestHeadMark(t *testing.T) {
	const n = 40
	cases := map[string]struct {
		damage   func(t *testing.T, fsys *vfs.MemFS, dir string)
		wantHead uint64 // after the repair
	}{
		"last record flipped": {
			damage: func(t *testing.T, fsys *vfs.MemFS, dir string) {
				path := lastSegment(t, fsys, dir)
				b := readF(t, fsys, path)
				starts, _ := recordPositions(t, b)
				b[starts[len(starts)-1]+recHeaderSize] ^= 0xff
				writeF(t, fsys, path, b)
			},
			wantHead: n - 1,
		},
		"active segment removed": {
			damage: func(t *testing.T, fsys *vfs.MemFS, dir string) {
				if err := fsys.Remove(lastSegment(t, fsys, dir)); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			fsys, dir := vfs.NewMem(), "/log"
			opts := Options{FS: fsys, SegmentSize: 8 << 10, MaxRecordSize: 1 << 10, Logger: testLogger(t)}
			l := openT(t, dir, opts)
			appendN(t, l, 0, n, 1)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, fsys, dir)
			before := dirSnapshot(t, fsys, dir)
			l, err := Open(dir, opts)
			ce, ok := isCorrupt(err)
			if !ok || l != nil || !strings.Contains(ce.Reason, markName) || !strings.Contains(ce.Reason, "head 40") {
				t.Fatalf("Open below the mark: %v, %v; want a *CorruptionError naming %s and head 40", l, err, markName)
			}
			if after := dirSnapshot(t, fsys, dir); !equalSnapshots(before, after) {
				for k, v := range after {
					if !bytes.Equal(v, before[k]) {
						t.Errorf("a refused Open changed %s", k)
					}
				}
				t.Fatalf("a refused Open changed the directory (%d files before, %d after)", len(before), len(after))
			}
			opts.RepairBelowMark = true
			l = openT(t, dir, opts)
			want := tc.wantHead
			if want == 0 {
				want = l.Head() // whatever the sealed segments hold
				if want >= n {
					t.Fatalf("Head = %d after losing the active segment", want)
				}
			}
			if l.Head() != want {
				t.Fatalf("repaired Head = %d, want %d", l.Head(), want)
			}
			checkDense(t, readAll(t, l, 0), 0, want)
			appendN(t, l, want, 3, 1)
			l.Close()
			opts.RepairBelowMark = false
			l = openT(t, dir, opts)
			if l.Head() != want+3 {
				t.Fatalf("Head after repair and reopen = %d, want %d", l.Head(), want+3)
			}
			l.Close()
		})
	}
}

// TestHeadMarkAllowsCrashAboveIt reopens a cleanly closed log, appends in
// SyncInterval mode and loses power before the interval sync: the records
// above the mark are lost, as that mode allows, and Open accepts it.
func TestHeadMarkAllowsCrashAboveIt(t *testing.T) {
	mem, dir := vfs.NewMem(), "/log"
	opts := Options{FS: mem, Sync: SyncInterval, SyncInterval: 1 << 40, Logger: testLogger(t)}
	l := openT(t, dir, opts)
	appendN(t, l, 0, 10, 1)
	l.Close()
	l = openT(t, dir, opts)
	appendN(t, l, 10, 10, 1) // acknowledged, never synced
	after := mem.Crash(vfs.CrashOptions{})
	l.Close()
	opts.FS = after
	l = openT(t, dir, opts)
	defer l.Close()
	if h := l.Head(); h < 10 {
		t.Fatalf("Head after the crash = %d, want at least the mark's 10", h)
	}
}

// TestMissingSegmentFile removes the first or a middle segment of a closed
// log: Open reports the missing offsets and the file names around them,
// instead of opening a log whose history starts at the next file (a
// reader asking for offset 0 got offset 1008).
func TestMissingSegmentFile(t *testing.T) {
	for _, which := range []int{0, 1} {
		fsys, dir := buildLog(t, 430, 1)
		segs := segmentFiles(t, fsys, dir)
		if len(segs) < 3 {
			t.Fatalf("%d segments, want at least 3", len(segs))
		}
		if err := fsys.Remove(filepath.Join(dir, segs[which])); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir, Options{FS: fsys, SegmentSize: 32 << 10, MaxRecordSize: 1 << 10})
		ce, ok := isCorrupt(err)
		if !ok {
			t.Fatalf("Open without %s: %v, want a *CorruptionError", segs[which], err)
		}
		first, _ := parseSegmentName(segs[which])
		if ce.Offset != first || !strings.Contains(ce.Reason, "missing") || !strings.Contains(ce.Reason, segs[which+1]) {
			t.Fatalf("Open without %s: %v; want the missing range from %d and the next file %s named", segs[which], err, first, segs[which+1])
		}
	}
}

func TestMarkRoundTrip(t *testing.T) {
	m := headMark{flags: markClean, head: 1<<40 + 3, segFirst: 1 << 30, segID: 0xdeadbeef}
	b := encodeMark(m)
	got, err := decodeMark(b)
	if err != nil || got != m {
		t.Fatalf("decodeMark(encodeMark(%+v)) = %+v, %v", m, got, err)
	}
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 1
		if _, err := decodeMark(bad); !errors.Is(err, errBadMark) {
			t.Fatalf("byte %d flipped: %v, want errBadMark", i, err)
		}
	}
	if _, err := decodeMark(b[:markSize-1]); !errors.Is(err, errBadMark) {
		t.Fatalf("short mark: %v, want errBadMark", err)
	}
}

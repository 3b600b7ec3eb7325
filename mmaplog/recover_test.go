package mmaplog

import (
	"bytes"
	"errors"
	"github.com/atedb/atedb/internal/vfs"
	"path/filepath"
	"strings"
	"testing"
)

// recordPositions returns the start and end of every record in a segment.
func recordPositions(t testing.TB, data []byte) (starts, ends []int64) {
	t.Helper()
	pos := int64(segHeaderSize)
	for {
		_, size, st := decodeRecord(data, pos, 1<<20)
		if st != recOK {
			return
		}
		starts = append(starts, pos)
		ends = append(ends, pos+size)
		pos += size
	}
}

func corruptOpts(fsys vfs.FS) Options {
	return Options{FS: fsys, SegmentSize: 32 << 10, MaxRecordSize: 1 << 10, OpenCorrupt: true}
}

// buildLog appends n records in batches on a new in-memory file system,
// closes the log and returns the file system and the log directory. It
// removes the head mark that Close wrote, leaving the log as a crash would:
// the tests that use it damage the tail, which a clean close's mark
// forbids (see TestHeadMark).
func buildLog(t testing.TB, n uint64, batch int) (*vfs.MemFS, string) {
	t.Helper()
	fsys, dir := vfs.NewMem(), "/log"
	l := openT(t, dir, corruptOpts(fsys))
	appendN(t, l, 0, n, batch)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove(filepath.Join(dir, markName)); err != nil {
		t.Fatalf("remove the head mark: %v", err)
	}
	return fsys, dir
}

func lastSegment(t testing.TB, fsys vfs.FS, dir string) string {
	t.Helper()
	var last string
	for _, n := range listDir(t, fsys, dir) {
		if _, ok := parseSegmentName(n); ok {
			last = n
		}
	}
	return filepath.Join(dir, last)
}

func TestTornTailEveryByte(t *testing.T) {
	const n = 40
	fsys, dir := buildLog(t, n, 1)
	segFile := lastSegment(t, fsys, dir)
	golden := readF(t, fsys, segFile)
	starts, _ := recordPositions(t, golden)
	p := starts[len(starts)-1]
	// e is the end of the last record's payload: the padding after it is
	// zero anyway.
	e := p + recHeaderSize + int64(readRecordHeader(golden[p:]).length)
	firstInSeg := n - uint64(len(starts))
	for _, garbage := range []bool{false, true} {
		for k := p; k < e; k++ {
			torn := bytes.Clone(golden)
			for i := k; i < e; i++ {
				torn[i] = 0
				if garbage {
					torn[i] = byte(i*13 + 5)
				}
			}
			writeF(t, fsys, segFile, torn)
			removeSideFiles(t, fsys, dir)
			fsys.Remove(filepath.Join(dir, markName)) // as after a crash, not a clean close
			opts := corruptOpts(fsys)
			opts.Logger = nil
			l, err := Open(dir, opts)
			if err != nil {
				t.Fatalf("cut at %d (garbage %v): Open: %v", k, garbage, err)
			}
			if h := l.Head(); h != n-1 {
				t.Fatalf("cut at %d: Head = %d, want %d", k, h, n-1)
			}
			wantRepair := uint64(1)
			if k == p && !garbage {
				wantRepair = 0 // nothing of the record reached the disk
			}
			if st := l.Stats(); st.Repairs != wantRepair {
				t.Fatalf("cut at %d (garbage %v): Repairs = %d, want %d", k, garbage, st.Repairs, wantRepair)
			}
			checkDense(t, readAll(t, l, firstInSeg), firstInSeg, n-1)
			// The log takes new appends at the cut point, and they survive.
			appendN(t, l, n-1, 1, 1)
			l.Close()
			if wantRepair == 1 {
				side := sideFiles(t, fsys, dir)
				if len(side) != 1 {
					t.Fatalf("cut at %d: side files %v", k, side)
				}
				b := readF(t, fsys, filepath.Join(dir, side[0]))
				if !bytes.Equal(b, torn[p:p+int64(len(b))]) || int64(len(b)) < k-p {
					t.Fatalf("cut at %d: side file holds %d bytes that are not the torn tail", k, len(b))
				}
			}
			l = openT(t, dir, corruptOpts(fsys))
			if st := l.Stats(); st.Repairs != 0 || l.Head() != n {
				t.Fatalf("cut at %d: second reopen: %+v", k, st)
			}
			checkDense(t, readAll(t, l, firstInSeg), firstInSeg, n)
			l.Close()
		}
	}
}

func sideFiles(t testing.TB, fsys vfs.FS, dir string) []string {
	var out []string
	for _, n := range listDir(t, fsys, dir) {
		if strings.Contains(n, tornInfix) {
			out = append(out, n)
		}
	}
	return out
}

func removeSideFiles(t testing.TB, fsys vfs.FS, dir string) {
	for _, n := range sideFiles(t, fsys, dir) {
		fsys.Remove(filepath.Join(dir, n))
	}
}

// TestIncompleteBatchDropped checks that recovery keeps batches whole: a
// batch whose last record is lost is dropped entirely.
func TestIncompleteBatchDropped(t *testing.T) {
	fsys, dir := buildLog(t, 20, 5) // 4 batches of 5
	segFile := lastSegment(t, fsys, dir)
	data := readF(t, fsys, segFile)
	starts, ends := recordPositions(t, data)
	last := len(starts) - 1
	clear(data[starts[last]:ends[last]]) // lose the last record of the last batch
	writeF(t, fsys, segFile, data)
	l := openT(t, dir, corruptOpts(fsys))
	defer l.Close()
	if h := l.Head(); h != 15 {
		t.Fatalf("Head = %d, want 15 (last batch dropped whole)", h)
	}
	if st := l.Stats(); st.Repairs != 1 {
		t.Fatalf("Repairs = %d, want 1", st.Repairs)
	}
	checkDense(t, readAll(t, l, 0), 0, 15)
}

func TestMiddleCorruption(t *testing.T) {
	type damage func(t *testing.T, data []byte, starts []int64) (pos int64)
	flipPayload := func(t *testing.T, data []byte, starts []int64) int64 {
		p := starts[len(starts)/2]
		data[p+recHeaderSize+2] ^= 0x10
		return p
	}
	badLength := func(t *testing.T, data []byte, starts []int64) int64 {
		p := starts[len(starts)/2]
		data[p+3] = 0x40
		return p
	}
	flipCRC := func(t *testing.T, data []byte, starts []int64) int64 {
		p := starts[len(starts)/3]
		data[p+5] ^= 1
		return p
	}
	zeroPage := func(t *testing.T, data []byte, starts []int64) int64 {
		const pg = 4096
		last := starts[len(starts)-1]
		page := (last - pg) / pg * pg // the last whole page before the last record
		if page < pg {
			t.Fatalf("segment too short for a zeroed page with records after it (last record at %d)", last)
		}
		clear(data[page : page+pg])
		for i, s := range starts {
			if s+recordSize(int(readRecordHeader(data[s:]).length)) > page || i+1 < len(starts) && starts[i+1] > page {
				return s // first record touched by the page
			}
		}
		t.Fatal("no record after the zeroed page")
		return 0
	}
	cases := map[string]damage{
		"bit flip in payload": flipPayload,
		"bad length":          badLength,
		"bad checksum":        flipCRC,
		"zeroed 4 KiB page":   zeroPage,
	}
	for name, dmg := range cases {
		for _, where := range []string{"active", "sealed"} {
			t.Run(name+"/"+where, func(t *testing.T) {
				fsys, dir := buildLog(t, 430, 1) // 3 segments, one batch per record
				segs := segmentFiles(t, fsys, dir)
				if len(segs) < 3 {
					t.Fatalf("want >= 3 segments, have %d", len(segs))
				}
				target := segs[len(segs)-1]
				if where == "sealed" {
					target = segs[1]
					// Without its index the segment must be rescanned, which finds the damage.
					fsys.Remove(filepath.Join(dir, strings.TrimSuffix(target, segSuffix)+idxSuffix))
				}
				path := filepath.Join(dir, target)
				data := readF(t, fsys, path)
				starts, _ := recordPositions(t, data)
				pos := dmg(t, data, starts)
				writeF(t, fsys, path, data)
				before := dirSnapshot(t, fsys, dir)

				opts := corruptOpts(fsys)
				opts.Logger = testLogger(t)
				l, err := Open(dir, opts)
				ce, ok := isCorrupt(err)
				if !ok || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Open: err = %v, want *CorruptionError", err)
				}
				if ce.Segment != target || ce.Pos != pos {
					t.Fatalf("CorruptionError at %s:%d, want %s:%d (%v)", ce.Segment, ce.Pos, target, pos, ce)
				}
				if l == nil {
					t.Fatal("Open returned no log with the corruption error")
				}
				first, _ := parseSegmentName(target)
				wantHead := first + uint64(indexOf(starts, pos))
				if h := l.Head(); h != wantHead {
					t.Fatalf("Head = %d, want %d (records before the damage)", h, wantHead)
				}
				checkDense(t, readAll2(t, l, 0, wantHead), 0, wantHead)
				if _, err := l.Append([][]byte{{1}}); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Append on corrupt log: %v, want ErrCorrupt", err)
				}
				if !errors.Is(l.Err(), ErrCorrupt) {
					t.Fatalf("Err = %v", l.Err())
				}
				l.Close()
				if after := dirSnapshot(t, fsys, dir); !equalSnapshots(before, after) {
					t.Fatal("opening a corrupt log changed or deleted files")
				}
			})
		}
	}
}

// readAll2 reads to Head on a log whose cursor ends with the log's error.
func readAll2(t testing.TB, l *Log, from, head uint64) []Record {
	t.Helper()
	c, err := l.NewCursor(from)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var all []Record
	for {
		recs, err := c.Next(nil, 0)
		for _, r := range recs {
			all = append(all, Record{Offset: r.Offset, Time: r.Time, Payload: bytes.Clone(r.Payload)})
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || uint64(len(all)) != head-from {
				t.Fatalf("Next after %d records: %v", len(all), err)
			}
			return all
		}
		if len(recs) == 0 {
			t.Fatal("caught up on a corrupt log without its error")
		}
	}
}

func indexOf(xs []int64, x int64) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

func segmentFiles(t testing.TB, fsys vfs.FS, dir string) []string {
	var out []string
	for _, n := range listDir(t, fsys, dir) {
		if _, ok := parseSegmentName(n); ok {
			out = append(out, n)
		}
	}
	return out
}

func dirSnapshot(t testing.TB, fsys vfs.FS, dir string) map[string][]byte {
	m := map[string][]byte{}
	for _, n := range listDir(t, fsys, dir) {
		if n == lockName {
			continue
		}
		m[n] = readF(t, fsys, filepath.Join(dir, n))
	}
	return m
}

func equalSnapshots(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestCorruptionInIndexedSegmentFoundByReader(t *testing.T) {
	fsys, dir := buildLog(t, 430, 1)
	segs := segmentFiles(t, fsys, dir)
	path := filepath.Join(dir, segs[1])
	data := readF(t, fsys, path)
	starts, _ := recordPositions(t, data)
	p := starts[10]
	data[p+recHeaderSize] ^= 0xff
	writeF(t, fsys, path, data)
	l := openT(t, dir, corruptOpts(fsys)) // the index is valid: open does not scan
	defer l.Close()
	c, _ := l.NewCursor(0)
	defer c.Close()
	n := 0
	for {
		recs, err := c.Next(nil, 0)
		n += len(recs)
		if err != nil {
			ce, ok := isCorrupt(err)
			first, _ := parseSegmentName(segs[1])
			if !ok || ce.Segment != segs[1] || ce.Pos != p || uint64(n) != first+10 {
				t.Fatalf("after %d records: %v", n, err)
			}
			return
		}
		if len(recs) == 0 {
			t.Fatal("reader did not detect the bad checksum")
		}
	}
}

func TestIndexRebuild(t *testing.T) {
	for name, spoil := range map[string]func(t *testing.T, fsys vfs.FS, dir string, idx []string){
		"missing": func(t *testing.T, fsys vfs.FS, dir string, idx []string) {
			for _, n := range idx {
				fsys.Remove(filepath.Join(dir, n))
			}
		},
		"bit flip": func(t *testing.T, fsys vfs.FS, dir string, idx []string) {
			for _, n := range idx {
				b := readF(t, fsys, filepath.Join(dir, n))
				b[len(b)/2] ^= 4
				writeF(t, fsys, filepath.Join(dir, n), b)
			}
		},
		"truncated": func(t *testing.T, fsys vfs.FS, dir string, idx []string) {
			for _, n := range idx {
				writeF(t, fsys, filepath.Join(dir, n), readF(t, fsys, filepath.Join(dir, n))[:50])
			}
		},
		"other segment's": func(t *testing.T, fsys vfs.FS, dir string, idx []string) {
			var orig [][]byte
			for _, n := range idx {
				orig = append(orig, readF(t, fsys, filepath.Join(dir, n)))
			}
			for i, n := range idx { // each segment gets its neighbour's index
				writeF(t, fsys, filepath.Join(dir, n), orig[(i+1)%len(idx)])
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			fsys, dir := buildLog(t, 700, 3)
			var idx []string
			for _, n := range listDir(t, fsys, dir) {
				if strings.HasSuffix(n, idxSuffix) {
					idx = append(idx, n)
				}
			}
			if len(idx) < 3 {
				t.Fatalf("only %d index files", len(idx))
			}
			spoil(t, fsys, dir, idx)
			l := openT(t, dir, corruptOpts(fsys))
			if st := l.Stats(); st.IndexRebuilds != uint64(len(idx)) || st.Head != 700 {
				t.Fatalf("Stats = %+v, want %d rebuilds", st, len(idx))
			}
			checkDense(t, readAll(t, l, 0), 0, 700)
			for _, from := range []uint64{1, 100, 250, 699} {
				checkDense(t, readAll(t, l, from), from, 700)
			}
			l.Close()
			l = openT(t, dir, corruptOpts(fsys))
			defer l.Close()
			if st := l.Stats(); st.IndexRebuilds != 0 {
				t.Fatalf("rebuilt indexes were not saved: %+v", st)
			}
		})
	}
}

func TestBadSegmentHeader(t *testing.T) {
	fsys, dir := buildLog(t, 430, 1)
	segs := segmentFiles(t, fsys, dir)
	path := filepath.Join(dir, segs[1])
	data := readF(t, fsys, path)
	data[3] = 'X'
	writeF(t, fsys, path, data)
	l, err := Open(dir, corruptOpts(fsys))
	ce, ok := isCorrupt(err)
	if !ok || ce.Segment != segs[1] || ce.Pos != 0 {
		t.Fatalf("Open: %v", err)
	}
	first, _ := parseSegmentName(segs[1])
	if l.Head() != first {
		t.Fatalf("Head = %d, want %d", l.Head(), first)
	}
	l.Close()
}

func TestCorruptOpenDefault(t *testing.T) {
	fsys, dir := buildLog(t, 430, 1)
	segs := segmentFiles(t, fsys, dir)
	path := filepath.Join(dir, segs[len(segs)-1])
	data := readF(t, fsys, path)
	starts, _ := recordPositions(t, data)
	data[starts[3]+recHeaderSize] ^= 1
	writeF(t, fsys, path, data)
	opts := corruptOpts(fsys)
	opts.OpenCorrupt = false
	l, err := Open(dir, opts)
	if _, ok := isCorrupt(err); !ok || l != nil {
		t.Fatalf("Open = %v, %v; want nil and a *CorruptionError", l, err)
	}
	// Everything was released: the directory can be opened again.
	opts.OpenCorrupt = true
	l, err = Open(dir, opts)
	if _, ok := isCorrupt(err); !ok || l == nil {
		t.Fatalf("Open with OpenCorrupt = %v, %v", l, err)
	}
	l.Close()
}

func TestMissingSegmentDetected(t *testing.T) {
	fsys, dir := buildLog(t, 430, 1)
	segs := segmentFiles(t, fsys, dir)
	fsys.Remove(filepath.Join(dir, segs[1]))
	l, err := Open(dir, corruptOpts(fsys))
	ce, ok := isCorrupt(err)
	if !ok || ce.Segment != segs[2] {
		t.Fatalf("Open with a segment missing: %v", err)
	}
	l.Close()
}

func readF(t testing.TB, fsys vfs.FS, path string) []byte {
	t.Helper()
	f, err := fsys.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && n > 0 {
		t.Fatal(err)
	}
	return b
}

// writeF replaces the contents of a file.
func writeF(t testing.TB, fsys vfs.FS, path string, b []byte) {
	t.Helper()
	f, err := fsys.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

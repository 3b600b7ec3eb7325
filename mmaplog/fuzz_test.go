package mmaplog

import (
	"bytes"
	"errors"
	"testing"

	"github.com/atedb/atedb/internal/vfs"
)

// FuzzOpen writes arbitrary bytes as the records of a log's active segment
// and opens it. Open must not panic; a recovered log must read back densely
// to Head, accept an append and reopen cleanly; a corrupt one must be
// readable to Head and refuse appends.
func FuzzOpen(f *testing.F) {
	rec := func(off uint64, synced uint32, flags uint8, p string) []byte {
		return appendRecord(nil, off, 1000+int64(off), synced, flags, []byte(p))
	}
	valid := append(rec(0, 32, flagCommit, "a"), rec(1, 72, flagCommit, "bb")...)
	f.Add([]byte{})                                                               // empty log
	f.Add(valid)                                                                  // two whole batches
	f.Add(append(rec(0, 32, 0, "x"), rec(1, 32, flagCommit, "y")...))             // one batch of two
	f.Add(rec(0, 32, 0, "incomplete"))                                            // batch without its commit record
	f.Add(valid[:len(valid)-5])                                                   // torn last record
	f.Add(append(bytes.Repeat([]byte{0}, 64), rec(0, 64, flagCommit, "late")...)) // zeros, then a record
	bad := bytes.Clone(valid)
	bad[40] ^= 1 // corrupt the first record, the second proves it was durable
	f.Add(bad)
	f.Add(bytes.Repeat([]byte{0xff}, 100)) // garbage
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 1<<16 {
			return
		}
		mem := vfs.NewMem()
		mem.MkdirAll("/log")
		size := max(int64(MinSegmentSize), segHeaderSize+int64(len(body)))
		file, err := mem.Create(segPath("/log", 0))
		if err != nil {
			t.Fatal(err)
		}
		var hdr [segHeaderSize]byte
		putSegmentHeader(hdr[:], 7)
		file.Allocate(size)
		file.WriteAt(hdr[:], 0)
		file.WriteAt(body, segHeaderSize)
		file.Sync()
		file.Close()
		mem.SyncDir("/log")
		opts := Options{FS: mem, SegmentSize: 64 << 10, MaxRecordSize: 4 << 10, Logger: discard, OpenCorrupt: true}

		l, err := Open("/log", opts)
		if err != nil {
			if _, ok := isCorrupt(err); !ok || l == nil {
				t.Fatalf("Open: %v (log %v)", err, l != nil)
			}
			if _, aerr := l.Append([][]byte{{1}}); !errors.Is(aerr, ErrCorrupt) {
				t.Fatalf("Append on corrupt log: %v", aerr)
			}
			readAll2(t, l, 0, l.Head())
			l.Close()
			return
		}
		head := l.Head()
		recs := readAll(t, l, 0)
		if uint64(len(recs)) > head {
			t.Fatalf("%d records below Head %d", len(recs), head)
		}
		for i := 1; i < len(recs); i++ {
			if recs[i].Offset <= recs[i-1].Offset || recs[i].Time < recs[i-1].Time {
				t.Fatalf("records out of order at %d", i)
			}
		}
		if first, err := l.Append([][]byte{[]byte("after")}); err != nil || first != head {
			t.Fatalf("Append after recovery = %d, %v; want %d", first, err, head)
		}
		l.Close()
		l, err = Open("/log", opts)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer l.Close()
		if l.Head() != head+1 || l.Stats().Repairs != 0 {
			t.Fatalf("reopen: Head %d (want %d), %+v", l.Head(), head+1, l.Stats())
		}
		all := readAll(t, l, 0)
		if len(all) != len(recs)+1 || string(all[len(all)-1].Payload) != "after" {
			t.Fatalf("reopen: %d records", len(all))
		}
	})
}

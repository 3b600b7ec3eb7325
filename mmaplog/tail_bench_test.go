package mmaplog

import (
	"testing"
)

// BenchmarkIdlePoll is the poll of a tailer at the head: Notify, then a
// cursor Next that finds nothing, by many tailers at once (RunParallel),
// while nothing is appended. It takes no lock: the cost must not grow with
// the number of tailers.
func BenchmarkIdlePoll(b *testing.B) {
	l, err := Open(b.TempDir(), Options{Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append([][]byte{make([]byte, 100)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		c, err := l.NewCursor(l.Head())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]Record, 0, 16)
		for pb.Next() {
			_ = l.Notify()
			if recs, err := c.Next(buf, 0); err != nil || len(recs) != 0 {
				b.Errorf("idle Next: %d records, %v", len(recs), err)
				return
			}
		}
	})
}

// BenchmarkCursorReadOwn reads records this process wrote and synced
// (their CRC was computed by the writer): 16 MiB of 1 KiB records written
// by the same Log, read back from the page cache by a new cursor each time.
func BenchmarkCursorReadOwn(b *testing.B) {
	l, err := Open(b.TempDir(), Options{Logger: discard, SegmentSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rec := make([]byte, benchRecord)
	batch := make([][]byte, 1024)
	for i := range batch {
		batch[i] = rec
	}
	for range 16 {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]Record, 0, 1024)
	var total int64
	readAll := func() { total = readAllPayloads(b, l, buf) }
	readAll()
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		readAll()
	}
}

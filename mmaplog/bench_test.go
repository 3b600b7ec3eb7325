package mmaplog

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/atedb/atedb/internal/leakcheck"
)

// Benchmarks. The raw-disk baselines sit here so that every ratio comes from
// the same run on the same file system (b.TempDir). Run:
//
//	go test ./mmaplog -run '^$' -bench . -count 3
//
// The 1 GiB reopen and read benchmarks build a 1 GiB log first; they run
// only with MMAPLOG_BENCH_1G=1 (a 64 MiB log otherwise).

const benchRecord = 1 << 10

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkRawAppendSync4K is the disk's single-syncer rate: append 4 KiB to
// a file and fdatasync, one at a time.
func BenchmarkRawAppendSync4K(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 0, 1<<16)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	reportLatency(b, lat)
}

// BenchmarkRawWriteSync1M is the disk's synced bandwidth: write 1 MiB and
// fdatasync.
func BenchmarkRawWriteSync1M(b *testing.B) { benchRawWriteSync(b, 1<<20) }

// BenchmarkRawWriteSync64K writes 64 KiB and fdatasyncs: the size of one
// group commit of 64 one-record appenders.
func BenchmarkRawWriteSync64K(b *testing.B) { benchRawWriteSync(b, 64<<10) }

func benchRawWriteSync(b *testing.B, size int) {
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend1 is one appender, one 1 KiB record per Append, SyncAlways.
func BenchmarkAppend1(b *testing.B) {
	l, err := Open(b.TempDir(), Options{Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := [][]byte{make([]byte, benchRecord)}
	lat := make([]time.Duration, 0, 1<<16)
	b.SetBytes(benchRecord)
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	reportLatency(b, lat)
}

// BenchmarkAppend64 is 64 concurrent appenders, one 1 KiB record per Append,
// SyncAlways: group commit.
func BenchmarkAppend64(b *testing.B) { benchAppendConcurrent(b, 64, 1) }

// BenchmarkAppend64x16 is 64 concurrent appenders of 16-record batches: a
// group commit then carries about 1 MiB, like BenchmarkRawWriteSync1M.
func BenchmarkAppend64x16(b *testing.B) { benchAppendConcurrent(b, 64, 16) }

func benchAppendConcurrent(b *testing.B, appenders, perBatch int) {
	l, err := Open(b.TempDir(), Options{Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.SetBytes(int64(benchRecord * perBatch))
	b.ReportAllocs()
	b.SetParallelism(appenders / max(1, runtime.GOMAXPROCS(0)))
	syncs0 := l.Stats().Syncs
	b.RunParallel(func(pb *testing.PB) {
		batch := make([][]byte, perBatch)
		for i := range batch {
			batch[i] = make([]byte, benchRecord)
		}
		for pb.Next() {
			if _, err := l.Append(batch); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*perBatch)/b.Elapsed().Seconds(), "rec/s")
	if s := l.Stats().Syncs - syncs0; s > 0 {
		b.ReportMetric(float64(b.N*perBatch)/float64(s), "rec/sync")
	}
}

var (
	benchLogOnce sync.Once
	benchLogDir  string
	benchLogSize int64
	benchLogErr  error
)

// benchLog builds, once per process, a log of 1 KiB records: 1 GiB with
// MMAPLOG_BENCH_1G=1, 64 MiB otherwise. It is written with large batches in
// SyncInterval mode, which is only a quicker way to build it.
func benchLog(b *testing.B) (string, int64) {
	benchLogOnce.Do(func() {
		size := int64(64 << 20)
		if os.Getenv("MMAPLOG_BENCH_1G") != "" {
			size = 1 << 30
		}
		dir, err := os.MkdirTemp("", "mmaplog-bench")
		if err != nil {
			benchLogErr = err
			return
		}
		benchLogDir = dir
		l, err := Open(dir, Options{Logger: discard, Sync: SyncInterval, SyncInterval: 100 * time.Millisecond})
		if err != nil {
			benchLogErr = err
			return
		}
		rec := make([]byte, benchRecord)
		batch := make([][]byte, 1024)
		for i := range batch {
			batch[i] = rec
		}
		for written := int64(0); written < size; written += int64(len(batch)) * benchRecord {
			if _, err := l.Append(batch); err != nil {
				benchLogErr = err
				return
			}
		}
		benchLogSize = l.Stats().Bytes
		benchLogErr = l.Close()
	})
	if benchLogErr != nil {
		b.Fatal(benchLogErr)
	}
	return benchLogDir, benchLogSize
}

// TestMain removes the shared benchmark log and fails the run if a log's
// goroutines outlived it (a Close that does not wait, or a leaked Log).
func TestMain(m *testing.M) {
	code := m.Run()
	if benchLogDir != "" {
		os.RemoveAll(benchLogDir)
	}
	if code == 0 {
		if leaked := leakcheck.Leaked(2*time.Second, "mmaplog.(*Log).run", "mmaplog.(*background).run"); leaked != "" {
			fmt.Fprintf(os.Stderr, "mmaplog: goroutines leaked by the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// BenchmarkReopen opens (and closes) a large log: sealed segments come from
// their indexes; only the active segment is scanned.
func BenchmarkReopen(b *testing.B) {
	dir, size := benchLog(b)
	for b.Loop() {
		l, err := Open(dir, Options{Logger: discard})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st := l.Stats(); st.IndexRebuilds != 0 || st.Repairs != 0 {
			b.Fatalf("reopen rebuilt or repaired: %+v", st)
		}
		l.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(size)/(1<<20), "log-MiB")
}

// BenchmarkCursorRead reads the whole log sequentially from the page cache.
func BenchmarkCursorRead(b *testing.B) {
	dir, _ := benchLog(b)
	l, err := Open(dir, Options{Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	buf := make([]Record, 0, 1024)
	var total int64
	readAll := func() { total = readAllPayloads(b, l, buf) }
	readAll() // warm the page cache and the maps
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		readAll()
	}
}

// readAllPayloads reads l from offset 0 through one cursor, with buf as
// the record buffer, and returns the payload bytes read.
func readAllPayloads(b *testing.B, l *Log, buf []Record) int64 {
	c, err := l.NewCursor(0)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var total int64
	for {
		recs, err := c.Next(buf, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) == 0 {
			return total
		}
		for i := range recs {
			total += int64(len(recs[i].Payload))
		}
	}
}

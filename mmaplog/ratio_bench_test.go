package mmaplog

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The ratio benchmarks interleave short slices of a raw-disk baseline and of
// the log, so that both see the same load on a shared machine, and report
// the median of the per-slice ratios. Run them with a fixed iteration count:
//
//	go test ./mmaplog -run '^$' -bench Ratio -benchtime 20x

const ratioSlice = 150 * time.Millisecond

// rawFileSize is the size of the raw baseline's file: preallocated and
// zero-filled like a segment (DefaultSegmentSize), and overwritten in a
// ring, so that the baseline's fdatasync, like the log's, changes no
// file-system metadata and a ratio above 1 means group commit.
const rawFileSize = DefaultSegmentSize

// rawSyncRate writes buf at *pos of f (wrapping at rawFileSize) and
// fdatasyncs, for one slice; it returns operations per second.
func rawSyncRate(b *testing.B, f *os.File, buf []byte, pos *int64) float64 {
	n := 0
	t0 := time.Now()
	for time.Since(t0) < ratioSlice {
		if *pos+int64(len(buf)) > rawFileSize {
			*pos = 0
		}
		if _, err := f.WriteAt(buf, *pos); err != nil {
			b.Fatal(err)
		}
		*pos += int64(len(buf))
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(t0).Seconds()
}

// logAppendRate runs appenders goroutines appending perBatch 1 KiB records
// per Append for one slice; it returns records per second.
func logAppendRate(b *testing.B, l *Log, appenders, perBatch int) float64 {
	var n atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	t0 := time.Now()
	for range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([][]byte, perBatch)
			for i := range batch {
				batch[i] = make([]byte, benchRecord)
			}
			for !stop.Load() {
				if _, err := l.Append(batch); err != nil {
					b.Error(err)
					return
				}
				n.Add(int64(perBatch))
			}
		}()
	}
	time.Sleep(ratioSlice)
	stop.Store(true)
	wg.Wait()
	return float64(n.Load()) / time.Since(t0).Seconds()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func benchRatio(b *testing.B, rawSize, appenders, perBatch int, bandwidth bool) {
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zero := make([]byte, 1<<20)
	for off := int64(0); off < rawFileSize; off += int64(len(zero)) {
		if _, err := f.WriteAt(zero, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	var pos int64
	buf := make([]byte, rawSize)
	l, err := Open(b.TempDir(), Options{Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var raws, logs, ratios []float64
	for b.Loop() {
		r := rawSyncRate(b, f, buf, &pos)
		a := logAppendRate(b, l, appenders, perBatch)
		if bandwidth { // compare bytes per second
			r *= float64(rawSize)
			a *= benchRecord
		}
		raws, logs, ratios = append(raws, r), append(logs, a), append(ratios, a/r)
	}
	unit := "/s"
	if bandwidth {
		unit = "B/s"
	}
	b.ReportMetric(median(raws), "raw-"+unit)
	b.ReportMetric(median(logs), "log-"+unit)
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRatioAppend1: one appender, one record per Append, against 4 KiB
// append + fdatasync from one syncer (operations per second).
func BenchmarkRatioAppend1(b *testing.B) { benchRatio(b, 4096, 1, 1, false) }

// BenchmarkRatioAppend64: 64 appenders, one record per Append, against
// 1 MiB write + fdatasync (bytes per second).
func BenchmarkRatioAppend64(b *testing.B) { benchRatio(b, 1<<20, 64, 1, true) }

// BenchmarkRatioAppend64x16: 64 appenders of 16-record batches against
// 1 MiB write + fdatasync (bytes per second).
func BenchmarkRatioAppend64x16(b *testing.B) { benchRatio(b, 1<<20, 64, 16, true) }

package mmaplog

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/internal/vfs"
)

func TestAppendReadReopen(t *testing.T) {
	for name, opts := range map[string]Options{
		"always":   {SegmentSize: 16 << 10, MaxRecordSize: 1 << 10},
		"interval": {SegmentSize: 16 << 10, MaxRecordSize: 1 << 10, Sync: SyncInterval, SyncInterval: time.Millisecond},
		"mem":      {SegmentSize: 16 << 10, MaxRecordSize: 1 << 10, FS: vfs.NewMem()},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if opts.FS != nil {
				dir = "/log"
			}
			l := openT(t, dir, opts)
			if h := l.Head(); h != 0 {
				t.Fatalf("Head of new log = %d, want 0", h)
			}
			appendN(t, l, 0, 500, 7)
			if h := l.Head(); h != 500 {
				t.Fatalf("Head = %d, want 500", h)
			}
			checkDense(t, readAll(t, l, 0), 0, 500)
			checkDense(t, readAll(t, l, 123), 123, 500)
			st := l.Stats()
			if st.Segments < 3 || st.Records != 500 || st.Syncs == 0 && opts.Sync == SyncAlways {
				t.Fatalf("Stats = %+v, want >= 3 segments, 500 records", st)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			l = openT(t, dir, opts)
			defer l.Close()
			if h := l.Head(); h != 500 {
				t.Fatalf("Head after reopen = %d, want 500", h)
			}
			if st2 := l.Stats(); st2.Records != 500 || st2.Segments != st.Segments || st2.Bytes != st.Bytes {
				t.Fatalf("Stats after reopen = %+v, want records/segments/bytes of %+v", st2, st)
			}
			if st2 := l.Stats(); st2.IndexRebuilds != 0 || st2.Repairs != 0 {
				t.Fatalf("clean reopen rebuilt or repaired: %+v", st2)
			}
			appendN(t, l, 500, 100, 3)
			checkDense(t, readAll(t, l, 0), 0, 600)
			for _, from := range []uint64{0, 1, 77, 299, 500, 599} {
				checkDense(t, readAll(t, l, from), from, 600)
			}
			if recs := readAll(t, l, 600); len(recs) != 0 {
				t.Fatalf("read from Head returned %d records", len(recs))
			}
		})
	}
}

func TestAppendValidation(t *testing.T) {
	l := openT(t, t.TempDir(), Options{SegmentSize: 8 << 10, MaxRecordSize: 1 << 10})
	defer l.Close()
	if _, err := l.Append(nil); !errors.Is(err, ErrEmptyBatch) {
		t.Fatalf("empty batch: err = %v, want ErrEmptyBatch", err)
	}
	if _, err := l.Append([][]byte{make([]byte, 1025)}); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("big record: err = %v, want ErrRecordTooLarge", err)
	}
	big := make([][]byte, 9)
	for i := range big {
		big[i] = make([]byte, 1000)
	}
	if _, err := l.Append(big); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("big batch: err = %v, want ErrBatchTooLarge", err)
	}
	if first, err := l.Append([][]byte{{}}); err != nil || first != 0 {
		t.Fatalf("empty payload: first, err = %d, %v; want 0, nil", first, err)
	}
	if recs := readAll(t, l, 0); len(recs) != 1 || len(recs[0].Payload) != 0 {
		t.Fatalf("read back empty payload: %+v", recs)
	}
}

func TestOptionsValidation(t *testing.T) {
	for name, o := range map[string]Options{
		"small segment":   {SegmentSize: 100},
		"huge segment":    {SegmentSize: 2 << 30},
		"record too big":  {SegmentSize: 64 << 10, MaxRecordSize: 64 << 10},
		"bad sync mode":   {Sync: 7},
		"negative record": {MaxRecordSize: -1},
	} {
		if _, err := Open(t.TempDir(), o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: err = %v, want ErrInvalidOptions", name, err)
		}
	}
	if m, err := ParseSyncMode("interval"); err != nil || m != SyncInterval || m.String() != "interval" {
		t.Errorf("ParseSyncMode(interval) = %v, %v", m, err)
	}
	if _, err := ParseSyncMode("sometimes"); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("ParseSyncMode(sometimes): err = %v", err)
	}
}

func TestLockExcludesSecondOpen(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Options{SegmentSize: 8 << 10, MaxRecordSize: 1 << 10})
	if _, err := Open(dir, Options{SegmentSize: 8 << 10, MaxRecordSize: 1 << 10}); !errors.Is(err, vfs.ErrLocked) {
		t.Fatalf("second Open: err = %v, want ErrLocked", err)
	}
	l.Close()
	l2 := openT(t, dir, Options{SegmentSize: 8 << 10, MaxRecordSize: 1 << 10})
	l2.Close()
}

func TestCloseSemantics(t *testing.T) {
	l := openT(t, t.TempDir(), Options{SegmentSize: 8 << 10, MaxRecordSize: 1 << 10})
	appendN(t, l, 0, 10, 1)
	c, err := l.NewCursor(0)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := c.Next(nil, 0)
	if err != nil || len(recs) != 10 {
		t.Fatalf("Next = %d records, %v", len(recs), err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The cursor still pins the maps: its payloads are readable.
	checkDense(t, recs, 0, 10)
	if _, err := c.Next(nil, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
	c.Close()
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	if _, err := l.Append([][]byte{{1}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if _, err := l.NewCursor(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewCursor after Close: %v, want ErrClosed", err)
	}
	select {
	case <-l.Notify():
	default:
		t.Fatal("Notify channel not closed after Close")
	}
}

func TestCloseFlushesPendingAsync(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Options{SegmentSize: 8 << 10, MaxRecordSize: 1 << 10})
	var mu sync.Mutex
	acked := map[uint64]bool{}
	for i := uint64(0); i < 200; i++ {
		_, err := l.AppendAsync([][]byte{payloadFor(i, sizeFor(i))}, func(first uint64, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("done(%d): %v", first, err)
			}
			acked[first] = true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(acked) != 200 {
		t.Fatalf("acknowledged %d of 200 after Close", len(acked))
	}
	l = openT(t, dir, Options{SegmentSize: 8 << 10, MaxRecordSize: 1 << 10})
	defer l.Close()
	checkDense(t, readAll(t, l, 0), 0, 200)
}

func TestSeekTime(t *testing.T) {
	clock := fixedClock()
	var times []int64
	opts := Options{SegmentSize: 8 << 10, MaxRecordSize: 1 << 10, Now: func() time.Time {
		tm := clock()
		times = append(times, tm.UnixNano())
		return tm
	}}
	dir := t.TempDir()
	l := openT(t, dir, opts)
	appendN(t, l, 0, 300, 1) // one clock reading per record
	check := func(l *Log) {
		t.Helper()
		recs := readAll(t, l, 0)
		for i, r := range recs {
			if r.Time != times[i] {
				t.Fatalf("record %d time %d, want %d", i, r.Time, times[i])
			}
		}
		for _, i := range []int{0, 1, 50, 150, 299} {
			got, err := l.SeekTime(times[i])
			if err != nil || got != uint64(i) {
				t.Fatalf("SeekTime(time of %d) = %d, %v", i, got, err)
			}
			got, err = l.SeekTime(times[i] - 1)
			if err != nil || got != uint64(i) {
				t.Fatalf("SeekTime(just before %d) = %d, %v", i, got, err)
			}
		}
		if got, _ := l.SeekTime(times[299] + 1); got != 300 {
			t.Fatalf("SeekTime(after last) = %d, want Head 300", got)
		}
		if got, _ := l.SeekTime(0); got != 0 {
			t.Fatalf("SeekTime(0) = %d, want 0", got)
		}
	}
	check(l)
	l.Close()
	l = openT(t, dir, opts)
	defer l.Close()
	check(l)
}

func TestTimeNeverDecreases(t *testing.T) {
	now := time.Unix(2_000_000_000, 0)
	opts := Options{SegmentSize: 8 << 10, MaxRecordSize: 1 << 10, Now: func() time.Time { return now }}
	dir := t.TempDir()
	l := openT(t, dir, opts)
	appendN(t, l, 0, 5, 1)
	l.Close()
	now = now.Add(-time.Hour) // clock stepped back
	l = openT(t, dir, opts)
	defer l.Close()
	appendN(t, l, 5, 5, 1)
	recs := readAll(t, l, 0)
	for i := 1; i < len(recs); i++ {
		if recs[i].Time < recs[i-1].Time {
			t.Fatalf("time decreased at %d: %d < %d", i, recs[i].Time, recs[i-1].Time)
		}
	}
}

func TestNotifyAndTail(t *testing.T) {
	l := openT(t, t.TempDir(), Options{SegmentSize: 8 << 10, MaxRecordSize: 1 << 10})
	defer l.Close()
	c, err := l.NewCursor(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan []uint64)
	go func() {
		var got []uint64
		for len(got) < 100 {
			ch := l.Notify()
			recs, err := c.Next(nil, 0)
			if err != nil {
				t.Error(err)
				break
			}
			for _, r := range recs {
				got = append(got, r.Offset)
			}
			if len(recs) == 0 {
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					t.Error("tailer: no notification")
					done <- got
					return
				}
			}
		}
		done <- got
	}()
	appendN(t, l, 0, 100, 1)
	got := <-done
	for i, off := range got {
		if off != uint64(i) {
			t.Fatalf("tailer got offset %d at %d", off, i)
		}
	}
}

func TestCursorBudget(t *testing.T) {
	l := openT(t, t.TempDir(), Options{SegmentSize: 64 << 10, MaxRecordSize: 1 << 10})
	defer l.Close()
	appendN(t, l, 0, 50, 10)
	c, _ := l.NewCursor(0)
	defer c.Close()
	recs, err := c.Next(make([]Record, 0, 4), 0)
	if err != nil || len(recs) != 4 {
		t.Fatalf("cap 4: %d records, %v", len(recs), err)
	}
	// A byte budget smaller than one payload still returns one record.
	recs, err = c.Next(make([]Record, 0, 10), 1)
	if err != nil || len(recs) != 1 || recs[0].Offset != 4 {
		t.Fatalf("maxBytes 1: %+v, %v", recs, err)
	}
	budget := sizeFor(5) + sizeFor(6)
	recs, err = c.Next(make([]Record, 0, 10), budget)
	if err != nil || len(recs) != 2 || recs[1].Offset != 6 {
		t.Fatalf("budget %d: %d records, %v", budget, len(recs), err)
	}
	if c.Offset() != 7 {
		t.Fatalf("Offset = %d, want 7", c.Offset())
	}
}

func TestConcurrentAppendersAndReaders(t *testing.T) {
	l := openT(t, t.TempDir(), Options{SegmentSize: 32 << 10, MaxRecordSize: 1 << 10})
	const writers, perWriter = 8, 150
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	for r := 0; r < 3; r++ {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			c, err := l.NewCursor(0)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			next := uint64(0)
			buf := make([]Record, 0, 32)
			for {
				ch := l.Notify()
				recs, err := c.Next(buf, 4096)
				if err != nil {
					t.Error(err)
					return
				}
				for _, rec := range recs {
					if rec.Offset != next {
						t.Errorf("reader: offset %d, want %d", rec.Offset, next)
						return
					}
					if len(rec.Payload) < 8 || string(rec.Payload[:1]) != "w" {
						t.Errorf("reader: bad payload at %d", rec.Offset)
						return
					}
					next++
				}
				if len(recs) == 0 {
					if next == writers*perWriter {
						return
					}
					select {
					case <-ch:
					case <-stop:
						return
					}
				}
			}
		}()
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				p := []byte("w" + string(rune('a'+w)) + "-payload-" + string(rune('0'+i%10)))
				if i%3 == 0 {
					if _, err := l.Append([][]byte{p, p}); err != nil {
						t.Error(err)
					}
					i++
					continue
				}
				if _, err := l.Append([][]byte{p}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if h := l.Head(); h != writers*perWriter {
		t.Errorf("Head = %d, want %d", h, writers*perWriter)
	}
	waitDone := make(chan struct{})
	go func() { rwg.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(20 * time.Second):
		close(stop)
		<-waitDone
		t.Fatal("readers did not catch up")
	}
	st := l.Stats()
	if st.Commits >= st.Appends {
		t.Logf("no grouping observed: %+v", st)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSegmentsGrowAndReplace(t *testing.T) {
	mem := vfs.NewMem()
	opts := Options{FS: mem, SegmentSize: 4 << 20, MaxRecordSize: 1 << 20}
	l := openT(t, "/log", opts)
	c, err := l.NewCursor(0) // positioned in the first, empty segment
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if recs, err := c.Next(nil, 0); err != nil || len(recs) != 0 {
		t.Fatalf("Next on empty log = %v, %v", recs, err)
	}
	// A first batch larger than the 1 MiB first segment replaces it.
	big := make([][]byte, 3)
	for i := range big {
		big[i] = payloadFor(uint64(i), 900<<10)
	}
	if first, err := l.Append(big); err != nil || first != 0 {
		t.Fatalf("Append big batch = %d, %v", first, err)
	}
	recs, err := c.Next(nil, 0)
	if err != nil || len(recs) != 3 || !bytes.Equal(recs[2].Payload, big[2]) {
		t.Fatalf("cursor after replacement: %d records, %v", len(recs), err)
	}
	for i := uint64(3); i < 40; i++ {
		if _, err := l.Append([][]byte{payloadFor(i, 200<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	var sizes []int64
	for _, name := range listDir(t, mem, "/log") {
		if _, ok := parseSegmentName(name); ok {
			sizes = append(sizes, fileSize(t, mem, "/log/"+name))
		}
	}
	if len(sizes) < 3 || sizes[0] != 4<<20 || sizes[len(sizes)-1] != 4<<20 {
		t.Fatalf("segment sizes %v: want the replaced first segment grown to 4 MiB and later ones at the 4 MiB maximum", sizes)
	}
	l.Close()

	// A new log's segments double: 1, 2, 4, 4 MiB.
	mem = vfs.NewMem()
	l = openT(t, "/log", Options{FS: mem, SegmentSize: 4 << 20, MaxRecordSize: 64 << 10})
	for i := uint64(0); i < 200; i++ {
		if _, err := l.Append([][]byte{payloadFor(i, 60<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	sizes = nil
	for _, name := range listDir(t, mem, "/log") {
		if _, ok := parseSegmentName(name); ok {
			sizes = append(sizes, fileSize(t, mem, "/log/"+name))
		}
	}
	want := []int64{1 << 20, 2 << 20, 4 << 20, 4 << 20}
	for i, w := range want {
		if i >= len(sizes) || sizes[i] != w {
			t.Fatalf("segment sizes %v, want %v...", sizes, want)
		}
	}
	l = openT(t, "/log", Options{FS: mem, SegmentSize: 4 << 20, MaxRecordSize: 64 << 10})
	defer l.Close()
	recs = readAll(t, l, 0)
	if len(recs) != 200 || !bytes.Equal(recs[199].Payload, payloadFor(199, 60<<10)) {
		t.Fatalf("reopened: %d records", len(recs))
	}
}

func fileSize(t testing.TB, fs vfs.FS, path string) int64 {
	t.Helper()
	return int64(len(readF(t, fs, path)))
}

func TestPreallocWhenHalfFull(t *testing.T) {
	mem := vfs.NewMem()
	l := openT(t, "/log", Options{FS: mem, SegmentSize: 64 << 10, MaxRecordSize: 1 << 10})
	defer l.Close()
	appendN(t, l, 0, 10, 1) // about 2 KiB of 64 KiB
	for _, n := range listDir(t, mem, "/log") {
		if n == preallocName {
			t.Fatal("a nearly empty log prepared its next segment")
		}
	}
	if p := l.Stats().Preallocs; p != 1 {
		t.Fatalf("Preallocs = %d, want 1 (the first segment)", p)
	}
	appendN(t, l, 10, 1000, 4) // several rotations
	if st := l.Stats(); st.Segments < 3 || st.Preallocs < uint64(st.Segments) {
		t.Fatalf("Stats = %+v: want a preallocation per segment", st)
	}
	checkDense(t, readAll(t, l, 0), 0, 1010)
}

// TestCommitInline checks Enqueue + Commit: a lone appender's batch is
// committed and acknowledged on its own goroutine before Commit returns;
// after a group of several batches, and in SyncInterval, Commit leaves the
// work to the writer goroutine; a batch enqueued without Commit is
// committed by Close; and Commit racing with AppendAsync, other Commits and
// Close acknowledges every batch exactly once, densely.
func TestCommitInline(t *testing.T) {
	t.Run("lone", func(t *testing.T) {
		l := openT(t, t.TempDir(), Options{SegmentSize: 64 << 10, MaxRecordSize: 1 << 10})
		for i := range uint64(20) {
			called := false
			first, err := l.Enqueue([][]byte{payloadFor(i, 100)}, func(got uint64, err error) {
				if err != nil || got != i {
					t.Errorf("done(%d, %v), want (%d, nil)", got, err, i)
				}
				called = true // plain write: the race detector checks it happens on this goroutine, before Commit returns
			})
			if err != nil || first != i {
				t.Fatalf("Enqueue = %d, %v", first, err)
			}
			l.Commit(callerIdle)
			if !called {
				t.Fatalf("batch %d not acknowledged when Commit returned", i)
			}
			if h := l.Head(); h != i+1 {
				t.Fatalf("Head = %d after Commit, want %d", h, i+1)
			}
		}
		st := l.Stats()
		if st.InlineCommits != 20 || st.Syncs < 20 {
			t.Fatalf("stats %+v: want 20 inline commits, each synced", st)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("busy caller", func(t *testing.T) {
		// A quiet log, but the caller has more work (nil probe, or one
		// that says so): the writer goroutine commits, never the caller.
		l := openT(t, t.TempDir(), Options{SegmentSize: 64 << 10, MaxRecordSize: 1 << 10})
		done := make(chan error, 1)
		for i, probe := range []func() bool{nil, func() bool { return false }, nil} {
			if _, err := l.Enqueue([][]byte{payloadFor(uint64(i), 10)}, func(_ uint64, err error) { done <- err }); err != nil {
				t.Fatal(err)
			}
			l.Commit(probe)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if st := l.Stats(); st.InlineCommits != 0 || st.Appends != 3 {
			t.Fatalf("stats %+v: want 3 appends committed by the writer, none inline", st)
		}
		l.Close()
	})
	t.Run("after a group", func(t *testing.T) {
		l := openT(t, t.TempDir(), Options{SegmentSize: 64 << 10, MaxRecordSize: 1 << 10})
		// Queue two batches before the writer can take them: one group of 2.
		done := make(chan error, 3)
		cb := func(_ uint64, err error) { done <- err }
		l.mu.Lock()
		l.committing = true // hold the writer off while both are queued
		l.mu.Unlock()
		for i := range 2 {
			if _, err := l.Enqueue([][]byte{payloadFor(uint64(i), 10)}, cb); err != nil {
				t.Fatal(err)
			}
		}
		l.mu.Lock()
		l.committing = false
		l.mu.Unlock()
		l.wakeWriter()
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Enqueue([][]byte{payloadFor(2, 10)}, cb); err != nil {
			t.Fatal(err)
		}
		l.Commit(callerIdle) // the previous group held 2: the writer commits
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if st := l.Stats(); st.InlineCommits != 0 || st.MaxGroup != 2 {
			t.Fatalf("stats %+v: want no inline commit after a group of 2", st)
		}
		l.Close()
	})
	t.Run("interval", func(t *testing.T) {
		l := openT(t, t.TempDir(), Options{Sync: SyncInterval, SyncInterval: time.Millisecond, SegmentSize: 64 << 10, MaxRecordSize: 1 << 10})
		done := make(chan error, 1)
		for i := range uint64(5) {
			if _, err := l.Enqueue([][]byte{payloadFor(i, 10)}, func(_ uint64, err error) { done <- err }); err != nil {
				t.Fatal(err)
			}
			l.Commit(callerIdle)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if st := l.Stats(); st.InlineCommits != 0 {
			t.Fatalf("SyncInterval committed inline: %+v", st)
		}
		l.Close()
	})
	t.Run("close commits what was only enqueued", func(t *testing.T) {
		dir := t.TempDir()
		l := openT(t, dir, Options{SegmentSize: 64 << 10, MaxRecordSize: 1 << 10})
		done := make(chan error, 1)
		if _, err := l.Enqueue([][]byte{payloadFor(0, sizeFor(0))}, func(_ uint64, err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("enqueued batch failed at Close: %v", err)
		}
		l = openT(t, dir, Options{SegmentSize: 64 << 10, MaxRecordSize: 1 << 10})
		checkDense(t, readAll(t, l, 0), 0, 1)
		l.Close()
	})
	t.Run("concurrent", func(t *testing.T) {
		dir := t.TempDir()
		l := openT(t, dir, Options{SegmentSize: 16 << 10, MaxRecordSize: 1 << 10})
		const writers, perWriter = 6, 120
		var acked sync.Map
		var wg sync.WaitGroup
		var closed sync.WaitGroup
		closed.Add(1)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWriter {
					done := make(chan error, 1)
					p := [][]byte{payloadFor(uint64(w*perWriter+i), sizeFor(uint64(i)))}
					cb := func(first uint64, err error) {
						if err == nil {
							if _, dup := acked.LoadOrStore(first, true); dup {
								t.Errorf("offset %d acknowledged twice", first)
							}
						}
						done <- err
					}
					var err error
					if w%3 == 0 {
						_, err = l.AppendAsync(p, cb)
					} else {
						if _, err = l.Enqueue(p, cb); err == nil {
							l.Commit(callerIdle)
						}
					}
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							t.Error(err)
						}
						return
					}
					if err := <-done; err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		go func() {
			defer closed.Done()
			time.Sleep(20 * time.Millisecond)
			if err := l.Close(); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		closed.Wait()
		n := uint64(0)
		acked.Range(func(_, _ any) bool { n++; return true })
		l = openT(t, dir, Options{SegmentSize: 16 << 10, MaxRecordSize: 1 << 10})
		if h := l.Head(); h < n {
			t.Fatalf("Head %d after reopen, but %d batches were acknowledged", h, n)
		}
		for off := range n {
			if _, ok := acked.Load(off); !ok {
				t.Fatalf("offset %d not acknowledged, but %d were: offsets not dense", off, n)
			}
		}
		l.Close()
	})
}

// TestCheckBatchLimits checks the start-up check of a server's limits
// against what Open and Append would later refuse.
func TestCheckBatchLimits(t *testing.T) {
	cases := map[string]struct {
		opts            Options
		maxEvents, maxB int
		wantErr         bool
	}{
		"defaults":                 {opts: Options{}, maxEvents: 1000, maxB: 4 << 20},
		"segment below max record": {opts: Options{SegmentSize: 1 << 20, MaxRecordSize: 4 << 20}, maxEvents: 1, maxB: 4 << 20, wantErr: true},
		"overhead of many events":  {opts: Options{SegmentSize: 64 << 10, MaxRecordSize: 32 << 10}, maxEvents: 1000, maxB: 32 << 10, wantErr: true},
		"fits exactly":             {opts: Options{SegmentSize: 64 << 10, MaxRecordSize: 32 << 10}, maxEvents: 10, maxB: 32 << 10},
		"bad options":              {opts: Options{SegmentSize: 100}, maxEvents: 1, maxB: 1, wantErr: true},
		"no events allowed":        {opts: Options{}, maxEvents: 0, maxB: 1, wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := tc.opts.CheckBatchLimits(tc.maxEvents, tc.maxB)
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, ErrInvalidOptions)) {
				t.Fatalf("CheckBatchLimits = %v, want error %v (wrapping ErrInvalidOptions)", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			// What passed must work: the largest batch of the smallest
			// events, and of one large event.
			o := tc.opts
			o.FS, o.Logger, o.Sync, o.SyncInterval = vfs.NewMem(), discard, SyncInterval, time.Hour
			l, err := Open("/log", o)
			if err != nil {
				t.Fatalf("Open after a passing check: %v", err)
			}
			defer l.Close()
			small := make([][]byte, tc.maxEvents)
			per := tc.maxB / tc.maxEvents
			for i := range small {
				small[i] = make([]byte, per)
				if per%8 == 0 && per > 0 {
					small[i] = small[i][:per-1] // worst padding
				}
			}
			if _, err := l.Append(small); err != nil {
				t.Fatalf("largest batch of small events: %v", err)
			}
			if _, err := l.Append([][]byte{make([]byte, min(tc.maxB, l.opts.MaxRecordSize))}); err != nil {
				t.Fatalf("largest event: %v", err)
			}
		})
	}
}

package mmaplog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atedb/atedb/internal/vfs"
	"github.com/atedb/atedb/journal"
)

func openJournalT(t testing.TB, root string, opts journal.Options) *journal.Journal {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discard
	}
	j, err := journal.Open(root, opts)
	if err != nil {
		t.Fatalf("journal.Open(%s): %v", root, err)
	}
	return j
}

// TestJournalSharesSyncs: appends to several logs through one journal are
// acknowledged without syncing a segment, every group goes through the
// journal, and concurrent groups of different logs share fdatasyncs.
func TestJournalSharesSyncs(t *testing.T) {
	root := t.TempDir()
	j := openJournalT(t, root, journal.Options{Files: SegmentFiles{}, FileSize: 1 << 20})
	const logs, per = 8, 60
	ls := make([]*Log, logs)
	for i := range ls {
		ls[i] = openT(t, filepath.Join(root, fmt.Sprintf("chain-%d", i)), Options{Journal: j, RootLocked: true})
	}
	var wg sync.WaitGroup
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range per {
				if _, err := l.Append([][]byte{payloadFor(uint64(k), sizeFor(uint64(k)))}); err != nil {
					t.Errorf("log %d append %d: %v", i, k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, l := range ls {
		st := l.Stats()
		// One append at a time per log: each is its own group, committed
		// through the journal, or synced in the segment when it was alone
		// in its round.
		if st.Syncs+st.JournalCommits != per {
			t.Errorf("log %d: %d segment syncs and %d journal commits, want %d in all", i, st.Syncs, st.JournalCommits, per)
		}
		if names := listDir(t, vfs.OS, l.Dir()); slices.Contains(names, lockName) {
			t.Errorf("log %d opened with RootLocked holds a LOCK file of its own: %v", i, names)
		}
	}
	js := j.Stats()
	if js.Groups+js.Direct != logs*per || js.Groups == 0 {
		t.Errorf("journal committed %d groups and let %d sync alone, want %d in all, most of them together", js.Groups, js.Direct, logs*per)
	}
	if js.Syncs >= js.Groups {
		t.Errorf("journal: %d fdatasyncs for %d groups of 8 concurrent logs: no sharing", js.Syncs, js.Groups)
	}
	t.Logf("journal: %d groups in %d fdatasyncs, %d alone", js.Groups, js.Syncs, js.Direct)
	if _, err := journal.Open(root, journal.Options{Files: SegmentFiles{}, FileSize: 1 << 20, Logger: discard}); !errors.Is(err, vfs.ErrLocked) {
		t.Errorf("second OpenJournal of the same root: %v, want ErrLocked", err)
	}
	for _, l := range ls {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// Nothing to replay after a clean close; every record is there.
	j = openJournalT(t, root, journal.Options{Files: SegmentFiles{}, FileSize: 1 << 20})
	defer j.Close()
	if n := j.Stats().Replayed; n != 0 {
		t.Errorf("replayed %d records after a clean close", n)
	}
	for i := range ls {
		l := openT(t, filepath.Join(root, fmt.Sprintf("chain-%d", i)), Options{Journal: j})
		recs := readAll(t, l, 0)
		checkDense(t, recs, 0, per)
		l.Close()
	}
}

// TestJournalWrapsAndCheckpoints writes many times the journal's size
// through it: the two files alternate, each is checkpointed (its segments
// synced) before reuse, and the data survives a power loss at the end.
func TestJournalWrapsAndCheckpoints(t *testing.T) {
	mem := vfs.NewMem()
	jo := journal.Options{Files: SegmentFiles{}, NoDirect: true, FS: mem, FileSize: journal.MinFileSize}
	j := openJournalT(t, "/r", jo)
	opts := Options{FS: mem, Journal: j, SegmentSize: 256 << 10, MaxRecordSize: 4 << 10}
	a := openT(t, "/r/a", opts)
	b := openT(t, "/r/b/c", opts)
	const n = 1200
	for k := range n {
		for _, l := range []*Log{a, b} {
			if _, err := l.Append([][]byte{payloadFor(uint64(k), sizeFor(uint64(k)))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	js := j.Stats()
	if js.Checkpoints < 2 || js.SegmentSyncs == 0 {
		t.Fatalf("after %d bytes through a %d-byte journal: %d checkpoints, %d segment syncs", js.Bytes, jo.FileSize, js.Checkpoints, js.SegmentSyncs)
	}
	after := mem.Crash(vfs.CrashOptions{})
	a.Close()
	b.Close()
	j.Close()
	j = openJournalT(t, "/r", journal.Options{Files: SegmentFiles{}, FS: after, FileSize: journal.MinFileSize})
	defer j.Close()
	if j.Stats().Replayed == 0 {
		t.Errorf("nothing replayed after a power loss with acknowledged groups only in the journal")
	}
	opts.FS, opts.Journal = after, j
	for _, dir := range []string{"/r/a", "/r/b/c"} {
		l := openT(t, dir, opts)
		recs := readAll(t, l, 0)
		checkDense(t, recs, 0, n)
		if st := l.Stats(); st.Repairs != 0 {
			t.Errorf("%s: %d repairs after replay", dir, st.Repairs)
		}
		l.Close()
	}
}

// TestJournalPowerLoss: many logs appending concurrently through a small
// journal (so that files switch and checkpoint during the run), power cut
// at a random moment, sometimes again during replay: every acknowledged
// batch is present in every log, and what else is there is whole batches
// that were appended.
func TestJournalPowerLoss(t *testing.T) {
	deadline := time.Now().Add(15 * time.Second) // bounds a CI run on a slow machine
	trials, acked := 0, 0
	for seed := uint64(0); seed < 60 && time.Now().Before(deadline); seed++ {
		acked += journalPowerLossTrial(t, seed)
		trials++
	}
	t.Logf("%d trials, %d acknowledged records checked", trials, acked)
	if acked == 0 {
		t.Fatal("the trials acknowledged nothing")
	}
}

func journalPowerLossTrial(t *testing.T, seed uint64) (ackedRecords int) {
	rng := rand.New(rand.NewPCG(seed, 0xa7ed))
	mem := vfs.NewMem()
	jo := journal.Options{Files: SegmentFiles{}, FileSize: journal.MinFileSize << rng.IntN(2), Logger: discard}
	opts := Options{SegmentSize: int64(8+rng.IntN(56)) << 10, MaxRecordSize: 1 << 10, Logger: discard}
	keep := []float64{0, 0.5, 1}[rng.IntN(3)]
	nlogs := 1 + rng.IntN(6)
	dirs := make([]string, nlogs)
	for i := range dirs {
		dirs[i] = fmt.Sprintf("/root/c%d", i)
	}
	type batch struct {
		first    uint64
		payloads [][]byte
	}
	// Per log: every batch attempted (by first offset) and every one acknowledged.
	attempted := make([]map[uint64][][]byte, nlogs)
	var acked [][]batch
	for round := 0; round < 1+rng.IntN(3); round++ {
		jo.FS, opts.FS = mem, mem
		jo.NoDirect = rng.IntN(2) == 0 // else lone groups sync their segment
		j, err := journal.Open("/root", jo)
		if err != nil {
			t.Fatalf("seed %d round %d: OpenJournal: %v", seed, round, err)
		}
		opts.Journal = j
		ls := make([]*Log, nlogs)
		for i := range ls {
			if ls[i], err = Open(dirs[i], opts); err != nil {
				t.Fatalf("seed %d round %d: Open %s: %v", seed, round, dirs[i], err)
			}
			if attempted[i] == nil {
				attempted[i] = map[uint64][][]byte{}
			}
		}
		// Check what survived the previous round's power loss.
		for i, l := range ls {
			recs := readAll(t, l, 0)
			if uint64(len(recs)) != l.Head() {
				t.Fatalf("seed %d round %d log %d: %d records readable, Head %d", seed, round, i, len(recs), l.Head())
			}
			if round > 0 {
				for _, b := range acked[i] {
					for k, p := range b.payloads {
						off := b.first + uint64(k)
						if off >= uint64(len(recs)) || !bytes.Equal(recs[off].Payload, p) {
							t.Fatalf("seed %d round %d log %d: acknowledged record %d lost or changed (Head %d)", seed, round, i, off, l.Head())
						}
						ackedRecords++
					}
				}
				for off := uint64(0); off < uint64(len(recs)); {
					ps, ok := attempted[i][off]
					if !ok || off+uint64(len(ps)) > uint64(len(recs)) {
						t.Fatalf("seed %d round %d log %d: record %d starts no whole appended batch", seed, round, i, off)
					}
					for k, p := range ps {
						if !bytes.Equal(recs[off+uint64(k)].Payload, p) {
							t.Fatalf("seed %d round %d log %d: record %d is not what was appended", seed, round, i, off+uint64(k))
						}
					}
					off += uint64(len(ps))
				}
			}
			// The new round's batches replace anything beyond the head.
			for off := range attempted[i] {
				if off >= l.Head() {
					delete(attempted[i], off)
				}
			}
		}
		var mu sync.Mutex
		acked = make([][]batch, nlogs)
		var wg sync.WaitGroup
		for i, l := range ls {
			for w := range 1 + rng.IntN(3) {
				wrng := rand.New(rand.NewPCG(seed, uint64(round*64+i*8+w)))
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := 0; ; n++ {
						ps := make([][]byte, 1+wrng.IntN(4))
						for k := range ps {
							ps[k] = fmt.Appendf(nil, "s%d r%d l%d w%d n%d k%d %s", seed, round, i, w, n, k, bytes.Repeat([]byte{'x'}, wrng.IntN(900)))
						}
						done := make(chan error, 1)
						mu.Lock()
						first, err := l.AppendAsync(ps, func(_ uint64, err error) { done <- err })
						if err == nil {
							attempted[i][first] = ps
						}
						mu.Unlock()
						if err != nil || <-done != nil {
							return
						}
						mu.Lock()
						acked[i] = append(acked[i], batch{first, ps})
						mu.Unlock()
					}
				}()
			}
		}
		time.Sleep(time.Duration(1000+rng.IntN(15000)) * time.Microsecond)
		next := mem.Crash(vfs.CrashOptions{KeepUnsynced: keep, Rand: rng})
		wg.Wait()
		for _, l := range ls {
			l.Close()
		}
		j.Close()
		mem = next
		if rng.IntN(3) == 0 {
			// Lose power again during the replay: it must be restartable.
			delay := time.Duration(rng.IntN(300)) * time.Microsecond
			crashed := make(chan *vfs.MemFS, 1)
			timer := time.AfterFunc(delay, func() {
				crashed <- mem.Crash(vfs.CrashOptions{KeepUnsynced: keep, Rand: rand.New(rand.NewPCG(seed, 9))})
			})
			jo.FS = mem
			if j, err := journal.Open("/root", jo); err == nil {
				j.Close()
			}
			if !timer.Stop() {
				mem = <-crashed
			} else {
				mem = mem.Crash(vfs.CrashOptions{KeepUnsynced: keep, Rand: rng})
			}
		}
	}
	return ackedRecords
}

// TestJournalSyncErrorPoisons: a failed journal fdatasync fails the groups
// waiting on it, poisons the journal and every log that commits through
// it, and nothing more is acknowledged.
func TestJournalSyncErrorPoisons(t *testing.T) {
	mem := vfs.NewMem()
	in := &vfs.Injector{}
	fsys := vfs.Inject(mem, in)
	j := openJournalT(t, "/r", journal.Options{Files: SegmentFiles{}, NoDirect: true, FS: fsys, FileSize: journal.MinFileSize})
	a := openT(t, "/r/a", Options{FS: fsys, Journal: j})
	b := openT(t, "/r/b", Options{FS: fsys, Journal: j})
	if _, err := a.Append([][]byte{[]byte("before")}); err != nil {
		t.Fatal(err)
	}
	in.Add(vfs.Rule{Ops: vfs.OpDatasync, Path: "journal-", Count: 1, Err: syscall.EIO})
	if _, err := a.Append([][]byte{[]byte("during")}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append during the failing sync: %v, want EIO", err)
	}
	if !errors.Is(j.Err(), syscall.EIO) || !errors.Is(a.Err(), syscall.EIO) {
		t.Fatalf("journal error %v, log error %v: want both poisoned with EIO", j.Err(), a.Err())
	}
	// The injected fault fired once; the journal still refuses: no retry.
	if _, err := b.Append([][]byte{[]byte("after")}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append to another log after the failure: %v, want the journal's EIO", err)
	}
	if a.Head() != 1 || b.Head() != 0 {
		t.Fatalf("heads %d and %d after the failure, want 1 and 0", a.Head(), b.Head())
	}
	a.Close()
	b.Close()
	if err := j.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close of a poisoned journal: %v, want its EIO", err)
	}
}

// crashWithJournal appends n single-record groups to /r/a through a
// journal and cuts the power, leaving acknowledged groups only in the
// journal; it returns the file system after the crash.
func crashWithJournal(t *testing.T, n int) *vfs.MemFS {
	mem := vfs.NewMem()
	j := openJournalT(t, "/r", journal.Options{Files: SegmentFiles{}, NoDirect: true, FS: mem, FileSize: journal.MinFileSize})
	l := openT(t, "/r/a", Options{FS: mem, Journal: j})
	for k := range n {
		if _, err := l.Append([][]byte{payloadFor(uint64(k), sizeFor(uint64(k)))}); err != nil {
			t.Fatal(err)
		}
	}
	after := mem.Crash(vfs.CrashOptions{})
	l.Close()
	j.Close()
	return after
}

// TestJournalRefusesUnsafeReplay: a journal record whose segment is gone
// or was replaced, or a damaged record that a later durable one vouches
// for, makes OpenJournal fail with journal.ErrCorrupt and change nothing.
func TestJournalRefusesUnsafeReplay(t *testing.T) {
	seg := segPath("/r/a", 0)
	cases := []struct {
		name   string
		damage func(t *testing.T, fs *vfs.MemFS)
		want   string
	}{
		{"segment removed", func(t *testing.T, fs *vfs.MemFS) {
			if err := fs.Remove(seg); err != nil {
				t.Fatal(err)
			}
		}, "does not exist"},
		{"segment replaced", func(t *testing.T, fs *vfs.MemFS) {
			f, err := fs.OpenRW(seg)
			if err != nil {
				t.Fatal(err)
			}
			var hdr [segHeaderSize]byte
			putSegmentHeader(hdr[:], 12345)
			f.WriteAt(hdr[:], 0)
			f.Close()
		}, "ID"},
		{"damaged vouched record", func(t *testing.T, fs *vfs.MemFS) {
			f, err := fs.OpenRW("/r/.journal/journal-0")
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte{0xff}, 56+3) // inside the first record (after its 56-byte header)
			f.Close()
		}, "durable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := crashWithJournal(t, 5)
			c.damage(t, fs)
			before := snapshotFiles(t, fs, "/r/.journal/journal-0", "/r/.journal/checkpoint")
			_, err := journal.Open("/r", journal.Options{Files: SegmentFiles{}, FS: fs, FileSize: journal.MinFileSize, Logger: discard})
			var je *journal.CorruptError
			if !errors.Is(err, journal.ErrCorrupt) || !errors.As(err, &je) {
				t.Fatalf("OpenJournal: %v, want a *journal.CorruptError", err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
			if after := snapshotFiles(t, fs, "/r/.journal/journal-0", "/r/.journal/checkpoint"); !slices.EqualFunc(before, after, bytes.Equal) {
				t.Errorf("OpenJournal changed the journal although it refused it")
			}
			// The lock was released: a repaired journal could be opened.
			lk, err := fs.Lock("/r/.journal/LOCK")
			if err != nil {
				t.Fatalf("journal LOCK still held after the refusal: %v", err)
			}
			lk.Close()
		})
	}
	// Undamaged, the same crash replays every acknowledged record.
	fs := crashWithJournal(t, 5)
	j := openJournalT(t, "/r", journal.Options{Files: SegmentFiles{}, FS: fs, FileSize: journal.MinFileSize})
	defer j.Close()
	if n := j.Stats().Replayed; n != 5 {
		t.Errorf("replayed %d records, want 5", n)
	}
	l := openT(t, "/r/a", Options{FS: fs, Journal: j})
	defer l.Close()
	checkDense(t, readAll(t, l, 0), 0, 5)
}

func snapshotFiles(t testing.TB, fs vfs.FS, names ...string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, n := range names {
		f, err := fs.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		size, _ := f.Size()
		b := make([]byte, size)
		f.ReadAt(b, 0)
		f.Close()
		out = append(out, b)
	}
	return out
}

// TestJournalOptions: a log outside the journal's root, or on another file
// system, is refused; so are bad sizes.
func TestJournalOptions(t *testing.T) {
	mem := vfs.NewMem()
	j := openJournalT(t, "/r", journal.Options{Files: SegmentFiles{}, FS: mem, FileSize: journal.MinFileSize})
	defer j.Close()
	for _, dir := range []string{"/elsewhere", "/r", "/r/../x"} {
		if l, err := Open(dir, Options{FS: mem, Journal: j}); !errors.Is(err, ErrInvalidOptions) {
			if l != nil {
				l.Close()
			}
			t.Errorf("Open(%s) with the journal of /r: %v, want ErrInvalidOptions", dir, err)
		}
	}
	if _, err := Open("/r/a", Options{FS: vfs.NewMem(), Journal: j}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Open on another file system: %v, want ErrInvalidOptions", err)
	}
	for _, o := range []journal.Options{{FileSize: journal.MinFileSize}, {Files: SegmentFiles{}, FileSize: 1000}, {Files: SegmentFiles{}, FileSize: journal.MinFileSize, MaxGroup: journal.MinFileSize}} {
		o.FS = vfs.NewMem()
		if _, err := journal.Open("/q", o); !errors.Is(err, journal.ErrInvalidOptions) {
			t.Errorf("journal.Open(%+v): %v, want ErrInvalidOptions", o, err)
		}
	}
}

// TestJournalLargeGroupsSyncSegment: a group larger than MaxGroup is synced
// in its segment, not copied into the journal.
func TestJournalLargeGroupsSyncSegment(t *testing.T) {
	mem := vfs.NewMem()
	j := openJournalT(t, "/r", journal.Options{Files: SegmentFiles{}, NoDirect: true, FS: mem, FileSize: journal.MinFileSize, MaxGroup: 4 << 10})
	defer j.Close()
	l := openT(t, "/r/a", Options{FS: mem, Journal: j})
	defer l.Close()
	if _, err := l.Append([][]byte{make([]byte, 100)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([][]byte{make([]byte, 8<<10)}); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.JournalCommits != 1 || st.Syncs != 1 {
		t.Fatalf("%d journal commits and %d segment syncs, want 1 and 1", st.JournalCommits, st.Syncs)
	}
}

// FuzzOpenJournal feeds arbitrary bytes as a journal file to OpenJournal,
// beside a real log: it must return an error or replay, never panic.
func FuzzOpenJournal(f *testing.F) {
	// The state a power cut leaves: a journal with records for /r/a.
	crashed := func(tb testing.TB) *vfs.MemFS {
		mem := vfs.NewMem()
		j, err := journal.Open("/r", journal.Options{Files: SegmentFiles{}, NoDirect: true, FS: mem, FileSize: journal.MinFileSize, Logger: discard})
		if err != nil {
			tb.Fatal(err)
		}
		l, err := Open("/r/a", Options{FS: mem, Journal: j, SegmentSize: MinSegmentSize, MaxRecordSize: 1024, Logger: discard})
		if err != nil {
			tb.Fatal(err)
		}
		for k := range 3 {
			if _, err := l.Append([][]byte{payloadFor(uint64(k), 40)}); err != nil {
				tb.Fatal(err)
			}
		}
		after := mem.Crash(vfs.CrashOptions{})
		l.Close()
		j.Close()
		return after
	}
	seed := snapshotFiles(f, crashed(f), "/r/.journal/journal-0")[0]
	end := len(seed)
	for end > 0 && seed[end-1] == 0 {
		end--
	}
	f.Add(seed[:end])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > journal.MinFileSize {
			return
		}
		fs := crashed(t)
		jf, err := fs.OpenRW("/r/.journal/journal-0")
		if err != nil {
			t.Fatal(err)
		}
		jf.WriteAt(make([]byte, journal.MinFileSize), 0)
		jf.WriteAt(b, 0)
		jf.Close()
		if j, err := journal.Open("/r", journal.Options{Files: SegmentFiles{}, FS: fs, FileSize: journal.MinFileSize, Logger: discard}); err == nil {
			j.Close()
		}
	})
}

// TestJournalCheckpointSyncFS: with many dirty segments a checkpoint makes
// them durable with one syncfs; the acknowledged data then survives a power
// loss after the journal space covering it was reused, and a failing
// syncfs poisons the journal.
func TestJournalCheckpointSyncFS(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			mem := vfs.NewMem()
			in := &vfs.Injector{}
			fsys := vfs.Inject(mem, in)
			if fail {
				in.Add(vfs.Rule{Ops: vfs.OpSyncFS, Err: syscall.EIO})
			}
			j := openJournalT(t, "/r", journal.Options{Files: SegmentFiles{}, NoDirect: true, FS: fsys, FileSize: journal.MinFileSize})
			opts := Options{FS: fsys, Journal: j, SegmentSize: 64 << 10, MaxRecordSize: 1 << 10}
			const logs = 3 * 16 // the journal syncs more than 16 dirty segments with one syncfs
			ls := make([]*Log, logs)
			for i := range ls {
				ls[i] = openT(t, fmt.Sprintf("/r/c%d", i), opts)
			}
			acked := 0
		appends:
			for k := 0; k < 40; k++ {
				for _, l := range ls {
					if _, err := l.Append([][]byte{payloadFor(uint64(k), sizeFor(uint64(k)))}); err != nil {
						if !fail || !errors.Is(err, syscall.EIO) {
							t.Fatalf("append %d: %v", k, err)
						}
						break appends
					}
				}
				acked = k + 1
			}
			st := j.Stats()
			if fail {
				if !errors.Is(j.Err(), syscall.EIO) {
					t.Fatalf("journal error %v after a failing syncfs, want EIO", j.Err())
				}
				for _, l := range ls {
					l.Close()
				}
				j.Close()
				return
			}
			if st.FSSyncs == 0 || st.Checkpoints == 0 {
				t.Fatalf("%d checkpoints, %d syncfs calls for %d dirty logs", st.Checkpoints, st.FSSyncs, logs)
			}
			after := mem.Crash(vfs.CrashOptions{})
			for _, l := range ls {
				l.Close()
			}
			j.Close()
			j = openJournalT(t, "/r", journal.Options{Files: SegmentFiles{}, FS: after, FileSize: journal.MinFileSize})
			defer j.Close()
			opts.FS, opts.Journal = after, j
			for i := range ls {
				l := openT(t, fmt.Sprintf("/r/c%d", i), opts)
				checkDense(t, readAll(t, l, 0), 0, uint64(acked))
				l.Close()
			}
		})
	}
}

// TestJournalLoneLogSyncsSegment: a log whose groups are alone in their
// rounds syncs its own segment (no journal write, nothing to checkpoint),
// and its records survive a power cut.
func TestJournalLoneLogSyncsSegment(t *testing.T) {
	mem := vfs.NewMem()
	j := openJournalT(t, "/r", journal.Options{Files: SegmentFiles{}, FS: mem, FileSize: journal.MinFileSize})
	l := openT(t, "/r/a", Options{FS: mem, Journal: j})
	for k := range 50 {
		if _, err := l.Append([][]byte{payloadFor(uint64(k), sizeFor(uint64(k)))}); err != nil {
			t.Fatal(err)
		}
	}
	js, st := j.Stats(), l.Stats()
	if js.Direct != 50 || js.Groups != 0 || js.Bytes != 0 || st.Syncs != 50 || st.JournalCommits != 0 {
		t.Fatalf("journal %+v, log syncs %d journal commits %d: want 50 groups synced in the segment", js, st.Syncs, st.JournalCommits)
	}
	after := mem.Crash(vfs.CrashOptions{})
	l.Close()
	j.Close()
	j = openJournalT(t, "/r", journal.Options{Files: SegmentFiles{}, FS: after, FileSize: journal.MinFileSize})
	defer j.Close()
	l = openT(t, "/r/a", Options{FS: after, Journal: j})
	defer l.Close()
	checkDense(t, readAll(t, l, 0), 0, 50)
}

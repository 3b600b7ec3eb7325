package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/atedb/atedb/internal/vfs"
	"github.com/atedb/atedb/journal"
	"github.com/atedb/atedb/mmaplog"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// modes are the storage configurations a server can run in.
var modes = map[string]Options{
	"always+journal": {Log: mmaplog.Options{Sync: mmaplog.SyncAlways}, Journal: true, JournalFileSize: journal.MinFileSize},
	"always":         {Log: mmaplog.Options{Sync: mmaplog.SyncAlways}},
	"interval":       {Log: mmaplog.Options{Sync: mmaplog.SyncInterval}},
}

// TestSecondServerRefused: while one Root owns a directory, opening it
// again fails, in every combination of modes, with ErrLocked and a
// message naming the directory and the holder's PID.
func TestSecondServerRefused(t *testing.T) {
	for first, o1 := range modes {
		for second, o2 := range modes {
			t.Run(first+"/"+second, func(t *testing.T) {
				dir := t.TempDir()
				o1.Logger, o2.Logger = discard, discard
				r, err := Open(dir, o1)
				if err != nil {
					t.Fatalf("first Open: %v", err)
				}
				defer r.Close()
				r2, err := Open(dir, o2)
				if err == nil {
					r2.Close()
					t.Fatal("second Open of an owned directory succeeded")
				}
				if !errors.Is(err, ErrLocked) {
					t.Fatalf("second Open: %v, want ErrLocked", err)
				}
				for _, want := range []string{r.Dir(), "process " + strconv.Itoa(os.Getpid())} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not name %q", err, want)
					}
				}
			})
		}
	}
}

// TestRefusesSymbolicLinks: a log path through a link, inside or out of
// the logs directory, is refused before anything is created.
func TestRefusesSymbolicLinks(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "evil")); err != nil {
		t.Skipf("symlink: %v", err)
	}
	r := openT(t, dir, Options{})
	defer r.Close()
	if l, err := r.Open("evil/db/@log"); !errors.Is(err, ErrBadKey) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("Open through a link: %v, want ErrBadKey", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("created outside the logs directory: %v", entries)
	}
	for _, bad := range []string{"", "../x", "/abs", "a/../../x", ".journal", "a/.hidden/@log"} {
		if _, err := r.Open(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("Open(%q): %v, want ErrBadKey", bad, err)
		}
	}
}

// TestNewDirectoriesDurable: a log created in new nested directories
// survives a power loss right after Open returns: every new directory
// entry was synced in its parent.
func TestNewDirectoriesDurable(t *testing.T) {
	mem := vfs.NewMem()
	r := openT(t, "/data/logs", Options{FS: mem})
	l, err := r.Open("team/app/notes/@log")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([][]byte{[]byte("one")}); err != nil {
		t.Fatal(err)
	}
	after := mem.Crash(vfs.CrashOptions{})
	r2 := openT(t, "/data/logs", Options{FS: after})
	defer r2.Close()
	if ok, err := r2.Exists("team/app/notes/@log"); !ok || err != nil {
		t.Fatalf("after a power loss the new log's directory exists = %v (%v)", ok, err)
	}
	l2, err := r2.Open("team/app/notes/@log")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Head() != 1 {
		t.Fatalf("head after power loss = %d, want 1", l2.Head())
	}
}

// TestFailedOpenLeavesNothing: a log whose creation fails leaves no empty
// directory behind, and Exists says so.
func TestFailedOpenLeavesNothing(t *testing.T) {
	mem := vfs.NewMem()
	in := &vfs.Injector{}
	fsys := vfs.Inject(mem, in)
	r := openT(t, "/logs", Options{FS: fsys})
	defer r.Close()
	in.Add(vfs.Rule{Ops: vfs.OpCreate, Path: "new/db", Err: errors.New("no space left on device")})
	if l, err := r.Open("new/db/@log"); err == nil {
		l.Close()
		t.Fatal("Open succeeded despite the injected fault")
	}
	for _, d := range []string{"/logs/new/db/@log", "/logs/new/db", "/logs/new"} {
		if _, err := mem.List(d); err == nil {
			t.Errorf("%s left behind by a failed open", d)
		}
	}
	if ok, _ := r.Exists("new/db/@log"); ok {
		t.Error("Exists reports the log whose creation failed")
	}
	in.Reset()
	l, err := r.Open("new/db/@log")
	if err != nil {
		t.Fatalf("Open once the fault is gone: %v", err)
	}
	l.Close()
}

func openT(t testing.TB, dir string, o Options) *Root {
	t.Helper()
	if o.Logger == nil {
		o.Logger = discard
	}
	r, err := Open(dir, o)
	if err != nil {
		t.Fatalf("store.Open(%s): %v", dir, err)
	}
	return r
}

func payload(log, i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("log %d event %d;", log, i)), 1+(i*7+log)%40)
}

// readAll returns every record of l in order.
func readAll(t testing.TB, l *mmaplog.Log) [][]byte {
	t.Helper()
	out, err := readLog(l)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readLog returns every record of l in order, or the first error.
func readLog(l *mmaplog.Log) ([][]byte, error) {
	c, err := l.NewCursor(0)
	if err != nil {
		return nil, fmt.Errorf("cursor of %s: %w", l.Dir(), err)
	}
	defer c.Close()
	var out [][]byte
	buf := make([]mmaplog.Record, 0, 64)
	for {
		recs, err := c.Next(buf, 1<<20)
		if err != nil {
			return out, fmt.Errorf("read %s: %w", l.Dir(), err)
		}
		if len(recs) == 0 {
			return out, nil
		}
		for _, r := range recs {
			if r.Offset != uint64(len(out)) {
				return out, fmt.Errorf("%s: record at offset %d, want %d", l.Dir(), r.Offset, len(out))
			}
			out = append(out, bytes.Clone(r.Payload))
		}
	}
}

// TestJournalReplayedInEveryMode is the power-loss case the journal must
// survive whatever the next run's flags are: appends acknowledged through
// the journal (their segments not synced), a power cut, then a restart in
// each mode. Every acknowledged record must be there, and the journal must
// have been replayed (a log opened below what it confirmed would otherwise
// reuse its offsets).
func TestJournalReplayedInEveryMode(t *testing.T) {
	for name, next := range modes {
		t.Run("then "+name, func(t *testing.T) {
			mem := vfs.NewMem()
			o := modes["always+journal"]
			o.FS, o.JournalNoDirect = mem, true // every group in the journal only
			o.Log.SegmentSize, o.Log.MaxRecordSize = 1<<20, 64<<10
			r := openT(t, "/logs", o)
			const nlogs, per = 3, 20
			want := make([][][]byte, nlogs)
			for i := range nlogs {
				l, err := r.Open(fmt.Sprintf("c%d/@log", i))
				if err != nil {
					t.Fatal(err)
				}
				for k := range per {
					p := payload(i, k)
					if _, err := l.Append([][]byte{p}); err != nil {
						t.Fatalf("append: %v", err)
					}
					want[i] = append(want[i], p)
				}
			}
			if st := r.Journal().Stats(); st.Groups != nlogs*per {
				t.Fatalf("journal committed %d groups, want %d", st.Groups, nlogs*per)
			}
			after := mem.Crash(vfs.CrashOptions{}) // power loss: logs and root never closed

			next.FS = after
			r2 := openT(t, "/logs", next)
			defer r2.Close()
			if r2.Replayed() == 0 {
				t.Fatal("the journal was not replayed")
			}
			for i := range nlogs {
				l, err := r2.Open(fmt.Sprintf("c%d/@log", i))
				if err != nil {
					t.Fatal(err)
				}
				got := readAll(t, l)
				if len(got) != len(want[i]) {
					t.Fatalf("log %d: %d records after the restart, want the %d acknowledged", i, len(got), len(want[i]))
				}
				for k := range got {
					if !bytes.Equal(got[k], want[i][k]) {
						t.Fatalf("log %d record %d differs", i, k)
					}
				}
				l.Close()
			}
			// The replay is recorded: a third run has nothing to redo.
			r2.Close()
			r3 := openT(t, "/logs", modes["always+journal"].with(after))
			defer r3.Close()
			if n := r3.Replayed(); n != 0 {
				t.Fatalf("a third run replayed %d records again", n)
			}
		})
	}
}

func (o Options) with(fs vfs.FS) Options { o.FS = fs; return o }

// TestReplayWithoutJournalFiles: a journal directory whose files were
// never all created (a crash during the first Open) has nothing to replay
// and creates nothing when the journal is off.
func TestReplayWithoutJournalFiles(t *testing.T) {
	mem := vfs.NewMem()
	if err := mem.MkdirAll("/logs/" + journal.DirName); err != nil {
		t.Fatal(err)
	}
	r := openT(t, "/logs", modes["interval"].with(mem))
	defer r.Close()
	names, _ := mem.List("/logs/" + journal.DirName)
	for _, n := range names {
		if strings.HasPrefix(n, "journal-") {
			t.Errorf("replay-only open created %s", n)
		}
	}
}

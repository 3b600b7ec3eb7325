package store

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/atedb/atedb/internal/vfs"
	"github.com/atedb/atedb/journal"
	"github.com/atedb/atedb/mmaplog"
)

// LockName is the file, at the top of the logs directory, whose exclusive
// lock a Root holds for the life of the process. It holds the holder's
// process ID, so that a refused second server can name it.
const LockName = "LOCK"

// Options configures Open. The zero value gives the defaults.
type Options struct {
	// FS is the file system; nil means the operating system's.
	FS vfs.FS
	// Log are the options of every log opened through the root. Their FS,
	// Journal, RootLocked and Logger fields are set by the root.
	Log mmaplog.Options
	// Journal makes logs in mmaplog.SyncAlways mode share their
	// fdatasyncs through the commit journal (package journal) in
	// <root>/.journal. Whatever it says, Open replays the journal a
	// previous run left.
	Journal bool
	// JournalFileSize is the size of each journal file (default
	// journal.DefaultFileSize).
	JournalFileSize int64
	// Logger receives the root's lines (replays, lock holder) and is
	// given to the logs and the journal; nil discards.
	Logger *slog.Logger
	// JournalNoDirect sends every group through the journal, also one
	// alone in its round (journal.Options.NoDirect): for tests that need
	// acknowledgements to rest on the journal alone.
	JournalNoDirect bool
}

// Errors.
var (
	// ErrLocked is wrapped by Open's error when another process holds the
	// logs directory.
	ErrLocked = errors.New("store: logs directory in use")
	// ErrBadKey is wrapped by Root.Open's error for a relative path that
	// would leave the logs directory, name a hidden entry, or pass through
	// a symbolic link.
	ErrBadKey = errors.New("store: bad log path")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("store: closed")
)

// Root is the logs directory, owned by this process: see the package
// documentation. Its methods are safe for concurrent use.
type Root struct {
	dir     string // absolute, symlinks resolved
	fs      vfs.FS
	opts    Options
	logOpts mmaplog.Options
	log     *slog.Logger
	lock    io.Closer
	journal *journal.Journal // nil unless Options.Journal and SyncAlways
	// Replayed is the number of journal records Open redid.
	replayed int
}

// Open takes ownership of the logs directory dir, creating it (and its
// missing parents, durably) if needed: it locks dir/LOCK exclusively for
// the life of the Root, replays the commit journal whenever a previous run
// left records in it (in every mode, whatever opts.Journal says now), and
// opens the journal if the logs will use it. Errors: one wrapping
// ErrLocked (naming the holder's PID when it is known) when another
// process owns dir; one wrapping journal.ErrCorrupt when the journal
// cannot be replayed safely (nothing is changed then); mmaplog's
// ErrInvalidOptions for inconsistent options; I/O errors.
func Open(dir string, opts Options) (*Root, error) {
	if opts.FS == nil {
		opts.FS = vfs.OS
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := CheckOptions(opts); err != nil {
		return nil, err
	}
	fs := opts.FS
	dir = filepath.Clean(dir)
	if fs == vfs.OS {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("store: resolve %s: %w", dir, err)
		}
		dir = abs
	}
	if _, err := vfs.MkdirDurable(fs, dir); err != nil {
		return nil, fmt.Errorf("store: create logs directory: %w", err)
	}
	if fs == vfs.OS {
		// Resolved once, so that every path below is the real one and a
		// log found through a link can be told apart (see Root.Open).
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return nil, fmt.Errorf("store: resolve %s: %w", dir, err)
		}
		dir = real
	}
	lock, err := lockRoot(fs, dir)
	if err != nil {
		return nil, err
	}
	r := &Root{dir: dir, fs: fs, opts: opts, log: opts.Logger, lock: lock}
	if err := r.openJournal(); err != nil {
		lock.Close()
		return nil, err
	}
	r.logOpts = opts.Log
	r.logOpts.FS = fs
	r.logOpts.Logger = opts.Logger
	r.logOpts.RootLocked = true
	r.logOpts.Journal = r.journal
	return r, nil
}

// CheckOptions reports whether opts are consistent, as Open would, so that
// a server can refuse its flags at start-up instead of failing every log
// open later.
func CheckOptions(opts Options) error {
	if err := opts.Log.Check(); err != nil {
		return err
	}
	if opts.JournalFileSize != 0 && (opts.JournalFileSize < journal.MinFileSize || opts.JournalFileSize > journal.MaxFileSize) {
		return fmt.Errorf("%w: journal file size %d outside [%d, %d]", mmaplog.ErrInvalidOptions,
			opts.JournalFileSize, journal.MinFileSize, journal.MaxFileSize)
	}
	return nil
}

// lockRoot takes the root's exclusive lock and records our PID in it.
func lockRoot(fs vfs.FS, dir string) (io.Closer, error) {
	path := filepath.Join(dir, LockName)
	lock, err := fs.Lock(path)
	if errors.Is(err, vfs.ErrLocked) {
		holder := ""
		if f, oerr := fs.Open(path); oerr == nil {
			var b [32]byte
			n, _ := f.ReadAt(b[:], 0)
			f.Close()
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b[:n]))); perr == nil && pid > 0 {
				holder = fmt.Sprintf(" (held by process %d)", pid)
			}
		}
		return nil, fmt.Errorf("%w: %s is served by another atedb%s; stop it first, or use another directory", ErrLocked, dir, holder)
	}
	if err != nil {
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	// The PID is a courtesy for the message above: a failure to write it
	// changes nothing about the lock.
	if f, err := fs.OpenRW(path); err == nil {
		pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
		if err := f.Truncate(0); err == nil {
			f.WriteAt(pid, 0)
		}
		f.Close()
	}
	return lock, nil
}

// openJournal replays what the journal holds, and keeps it open when the
// logs will commit through it.
func (r *Root) openJournal() error {
	jo := journal.Options{
		FS:       r.fs,
		Files:    mmaplog.SegmentFiles{},
		FileSize: r.opts.JournalFileSize,
		NoDirect: r.opts.JournalNoDirect,
		Logger:   r.log,
	}
	if r.opts.Journal && r.opts.Log.Sync == mmaplog.SyncAlways {
		j, err := journal.Open(r.dir, jo)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		r.journal = j
		r.replayed = int(j.Stats().Replayed)
		return nil
	}
	n, err := journal.Replay(r.dir, jo)
	if err != nil {
		return fmt.Errorf("store: replay the journal of an earlier run: %w", err)
	}
	r.replayed = n
	if n > 0 {
		r.log.Warn("store: replayed the commit journal an earlier run left, although this run does not use it",
			"dir", r.dir, "records", n)
	}
	return nil
}

// Dir returns the logs directory, absolute, with symbolic links resolved.
func (r *Root) Dir() string { return r.dir }

// Journal returns the commit journal the logs use, or nil.
func (r *Root) Journal() *journal.Journal { return r.journal }

// Replayed returns the number of journal records Open redid.
func (r *Root) Replayed() int { return r.replayed }

// Open opens (creating, durably) the log in the directory rel, a relative
// path inside the logs directory made of visible names (no "..", no
// component starting with '.'). Directories it creates are removed again
// if the log cannot be opened, so that a failed creation leaves nothing
// behind. It returns mmaplog.Open's errors, or one wrapping ErrBadKey.
func (r *Root) Open(rel string) (*mmaplog.Log, error) {
	dir, err := r.path(rel)
	if err != nil {
		return nil, err
	}
	if err := r.checkNoLinks(rel); err != nil {
		return nil, err
	}
	// A new log: its missing parents are created here, durably; the log's
	// own directory by mmaplog.Open, which also syncs its parent (so an
	// existing log's open costs one directory fsync, not two).
	var created []string
	if _, err := r.fs.Stat(dir); errors.Is(err, iofs.ErrNotExist) {
		if created, err = vfs.MkdirDurable(r.fs, filepath.Dir(dir)); err != nil {
			r.removeEmpty(created)
			return nil, fmt.Errorf("store: create %s: %w", rel, err)
		}
		created = append([]string{dir}, created...)
	}
	l, err := mmaplog.Open(dir, r.logOpts)
	if err != nil {
		r.removeEmpty(created)
		return nil, err
	}
	return l, nil
}

// Exists reports whether rel holds a log (its directory exists), creating
// nothing.
func (r *Root) Exists(rel string) (bool, error) {
	dir, err := r.path(rel)
	if err != nil {
		return false, err
	}
	if _, err := r.fs.List(dir); err != nil {
		if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return false, nil
		}
		return false, fmt.Errorf("store: look for %s: %w", rel, err)
	}
	return true, nil
}

// path checks rel and returns its absolute directory.
func (r *Root) path(rel string) (string, error) {
	if rel == "" || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w: %q is not inside the logs directory", ErrBadKey, rel)
	}
	for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
		if strings.HasPrefix(part, ".") {
			return "", fmt.Errorf("%w: %q has a hidden component %q", ErrBadKey, rel, part)
		}
	}
	return filepath.Join(r.dir, rel), nil
}

// checkNoLinks refuses a log directory reached through a symbolic link,
// before anything is created: a link inside the logs directory could make
// two keys share one log, or put one outside the directory.
func (r *Root) checkNoLinks(rel string) error {
	if r.fs != vfs.OS {
		return nil // the other file systems have no links
	}
	p := r.dir
	for _, part := range strings.Split(filepath.ToSlash(rel), "/") {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, iofs.ErrNotExist) {
			return nil // created by us, below a checked parent
		}
		if err != nil {
			return fmt.Errorf("store: look at %s: %w", p, err)
		}
		if fi.Mode()&iofs.ModeSymlink != 0 {
			return fmt.Errorf("%w: %s is a symbolic link; refused", ErrBadKey, p)
		}
	}
	return nil
}

// removeEmpty removes the directories a failed Open created, deepest
// first, as long as they are empty.
func (r *Root) removeEmpty(created []string) {
	for _, d := range created {
		if d == r.dir {
			return
		}
		if err := r.fs.Remove(d); err != nil {
			r.log.Warn("store: could not remove a directory left by a failed log open", "dir", d, "err", err)
			return
		}
	}
}

// Close closes the journal (after every log opened through the root has
// been closed: the caller's duty) and releases the logs directory. It
// returns the journal's final checkpoint error, if any.
func (r *Root) Close() error {
	if r.lock == nil {
		return ErrClosed
	}
	var err error
	if r.journal != nil {
		err = r.journal.Close()
	}
	if cerr := r.lock.Close(); err == nil {
		err = cerr
	}
	r.lock = nil
	return err
}

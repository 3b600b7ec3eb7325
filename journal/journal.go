package journal

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/atedb/atedb/internal/vfs"
)

// Journal is a commit journal shared by every log under one root
// directory; the package documentation says how it works. All methods are
// safe for concurrent use.
type Journal struct {
	root string
	dir  string
	fs   vfs.FS
	opts Options
	log  *slog.Logger
	lock io.Closer
	ckf  vfs.File // the checkpoint file
	jf   [2]vfs.File

	mu      sync.Mutex
	idle    sync.Cond // signalled when leading becomes false
	pending []*Group
	leading bool // a committer is writing for everyone (see commit)
	// lastRound is the number of groups the previous round committed.
	lastRound int
	closing   bool
	err       error
	errv      atomic.Pointer[error]

	// Owned by the leading committer.
	cur   int    // the journal file being written
	gen   uint64 // generation of the records in jf[cur]
	pos   int64  // bytes of jf[cur] written (and durable) in this generation
	dirty map[fileRef]struct{}
	ckpt  chan error // result of the checkpoint of jf[1-cur], nil when none runs
	buf   []byte
	spare []*Group
	group []*Group

	st counters
}

// Options configures Open. The zero value gives the defaults, except
// Files, which is required.
type Options struct {
	// FS is the file system; nil means the operating system's. Logs that
	// use the journal must use the same FS.
	FS vfs.FS
	// Files tells replay how the files the records name are named and
	// identified (the log's segments). Required.
	Files Files
	// FileSize is the size of each of the two journal files. When one is
	// full the writer continues in the other, whose checkpoint must have
	// finished. Default 64 MiB; at least MinFileSize.
	FileSize int64
	// MaxGroup is the largest group, in bytes, that a log commits through
	// the journal; larger groups are synced in their own file. Default
	// 1 MiB; at most FileSize/4.
	MaxGroup int64
	// NoDirect makes every group go through the journal, also one alone
	// in its round (which is otherwise synced in its own file, see
	// Commit). For tests that need the journal to fill and checkpoint.
	NoDirect bool
	// Logger receives replays, checkpoints and failures; nil discards.
	Logger *slog.Logger
}

// Files is what the journal knows of the files it commits writes for: how
// the number a record carries names a file, and how to read the identity
// stamped in a file's header. Replay checks that identity before it redoes
// a write, so that a record never lands in a file that replaced the one it
// was written for. mmaplog's segments implement it (mmaplog.SegmentFiles).
type Files interface {
	// Name returns the name, inside its log directory, of file number num.
	Name(num uint64) string
	// ID reads the identity in f's header, or fails if f has none.
	ID(f vfs.File) (uint64, error)
}

// Defaults and limits.
const (
	DefaultFileSize = 64 << 20
	DefaultMaxGroup = 1 << 20
	MinFileSize     = 64 << 10
	MaxFileSize     = 1 << 30
	// DirName is the directory, under the root, that holds the journal.
	// Chain keys cannot name it (they have no hidden segments).
	DirName = ".journal"
)

const (
	// segmentSyncWorkers bounds the fdatasyncs a checkpoint runs at once.
	segmentSyncWorkers = 4
	// syncFSAbove is the number of dirty files above which a checkpoint
	// makes them durable with one syncfs instead of one fdatasync each
	// (measured here: 64 files written, 64 concurrent fdatasyncs 7.5 ms,
	// one syncfs 2.3 ms).
	syncFSAbove = 16
)

// Errors.
var (
	// ErrCorrupt is wrapped by the errors Open and Replay return for a
	// journal that cannot be replayed safely: a damaged record that later
	// durable records vouch for, or a record whose file is missing or was
	// replaced. Nothing is changed when it is returned.
	ErrCorrupt = errors.New("journal: corrupt journal")
	// ErrInvalidOptions is wrapped by the errors of invalid Options.
	ErrInvalidOptions = errors.New("journal: invalid options")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("journal: closed")
)

// fileRef names a file the journal holds records for: a log directory
// relative to the root, and a file name in it.
type fileRef struct{ rel, name string }

type counters struct {
	groups, bytes, syncs, checkpoints, segmentSyncs, fsSyncs, replayed, direct atomic.Uint64
}

// Stats is a snapshot of a journal's counters.
type Stats struct {
	Groups       uint64 // logs' groups committed through the journal
	Direct       uint64 // groups alone in their round, synced in their segment instead
	Syncs        uint64 // journal fdatasyncs (each commits one or more groups)
	Bytes        uint64 // journal bytes written
	Checkpoints  uint64 // journal files checkpointed
	SegmentSyncs uint64 // segment fdatasyncs run by checkpoints
	FSSyncs      uint64 // syncfs calls run by checkpoints (instead of many SegmentSyncs)
	Replayed     uint64 // records replayed by OpenJournal
}

// Stats returns a snapshot of the journal's counters.
func (j *Journal) Stats() Stats {
	return Stats{
		Groups:       j.st.groups.Load(),
		Direct:       j.st.direct.Load(),
		Syncs:        j.st.syncs.Load(),
		Bytes:        j.st.bytes.Load(),
		Checkpoints:  j.st.checkpoints.Load(),
		SegmentSyncs: j.st.segmentSyncs.Load(),
		FSSyncs:      j.st.fsSyncs.Load(),
		Replayed:     j.st.replayed.Load(),
	}
}

// FS returns the file system the journal uses (Options.FS); the logs that
// commit through it must use the same.
func (j *Journal) FS() vfs.FS { return j.fs }

// Root returns the directory whose logs the journal serves.
func (j *Journal) Root() string { return j.root }

// Err returns the error that poisoned the journal (a failed write or
// fdatasync of the journal, or a failed checkpoint), or nil. A poisoned
// journal fails every later commit, so every log using it stops
// acknowledging appends.
func (j *Journal) Err() error {
	if p := j.errv.Load(); p != nil {
		return *p
	}
	return nil
}

func (o Options) withDefaults() (Options, error) {
	if o.FS == nil {
		o.FS = vfs.OS
	}
	if o.FileSize == 0 {
		o.FileSize = DefaultFileSize
	}
	if o.MaxGroup == 0 {
		o.MaxGroup = min(DefaultMaxGroup, o.FileSize/4)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case o.Files == nil:
		return o, fmt.Errorf("%w: Files is required", ErrInvalidOptions)
	case o.FileSize < MinFileSize || o.FileSize > MaxFileSize:
		return o, fmt.Errorf("%w: journal file size %d outside [%d, %d]", ErrInvalidOptions, o.FileSize, MinFileSize, MaxFileSize)
	case o.MaxGroup < 0 || o.MaxGroup > o.FileSize/4:
		return o, fmt.Errorf("%w: journal max group %d outside [0, %d]", ErrInvalidOptions, o.MaxGroup, o.FileSize/4)
	}
	o.FileSize &^= recAlign - 1
	return o, nil
}

// Open opens (creating) the journal of the logs under root, in
// root/.journal, and replays what an earlier run left in it into the logs'
// files. It must be called before any log under root is opened, and
// closed after all of them. Errors: a *CorruptError wrapping ErrCorrupt
// when replay would be unsafe (nothing is changed then), an error wrapping
// vfs.ErrLocked when another process holds the journal, or an I/O error.
func Open(root string, opts Options) (*Journal, error) {
	return open(root, opts, false)
}

// Replay redoes what the journal under root holds and no checkpoint
// covers, then closes it, without creating or growing any file: for a
// root whose logs will now sync themselves (the journal is off, or the
// sync mode does not use it), but whose last run may have acknowledged
// appends through it. A root without a journal directory has nothing to
// replay. It returns the number of records replayed and the same errors as
// Open.
func Replay(root string, opts Options) (int, error) {
	opts.FileSize = 0 // the files' own sizes; nothing is grown
	opts.MaxGroup = 0
	if opts.FS == nil {
		opts.FS = vfs.OS
	}
	if _, err := opts.FS.List(filepath.Join(filepath.Clean(root), DirName)); errors.Is(err, iofs.ErrNotExist) {
		return 0, nil
	}
	j, err := open(root, opts, true)
	if err != nil {
		return 0, err
	}
	n := int(j.st.replayed.Load())
	j.pos = 0 // nothing to checkpoint: replay wrote its own
	return n, j.Close()
}

func open(root string, opts Options, replayOnly bool) (*Journal, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	fs := opts.FS
	root = filepath.Clean(root)
	dir := filepath.Join(root, DirName)
	if !replayOnly {
		if _, err := vfs.MkdirDurable(fs, dir); err != nil {
			return nil, fmt.Errorf("journal: open: %w", err)
		}
	}
	lock, err := fs.Lock(filepath.Join(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", dir, err)
	}
	j := &Journal{
		root:  root,
		dir:   dir,
		fs:    fs,
		opts:  opts,
		log:   opts.Logger,
		lock:  lock,
		dirty: map[fileRef]struct{}{},
	}
	if err := j.open(replayOnly); err != nil {
		j.closeFiles()
		lock.Close()
		return nil, err
	}
	j.idle.L = &j.mu
	return j, nil
}

// open creates missing files (unless replayOnly), replays, and prepares
// the writer.
func (j *Journal) open(replayOnly bool) error {
	names, err := j.fs.List(j.dir)
	if err != nil {
		return fmt.Errorf("journal: list %s: %w", j.dir, err)
	}
	have := map[string]bool{}
	for _, n := range names {
		if strings.HasSuffix(n, vfs.TmpSuffix) {
			if err := j.fs.Remove(filepath.Join(j.dir, n)); err != nil {
				return fmt.Errorf("journal: remove %s: %w", n, err)
			}
			continue
		}
		have[n] = true
	}
	if replayOnly {
		if !have[ckptName] || !have[fmt.Sprintf(fileNameFmt, 0)] || !have[fmt.Sprintf(fileNameFmt, 1)] {
			// A journal that never finished its creation never
			// acknowledged anything: Open creates the files before the
			// first commit.
			return nil
		}
	}
	if !have[ckptName] {
		var b [ckptSize]byte
		putCheckpoint(b[:], 0)
		if err := j.createFile(ckptName, int64(len(b)), b[:]); err != nil {
			return err
		}
	}
	for i := range j.jf {
		name := fmt.Sprintf(fileNameFmt, i)
		if !have[name] {
			if err := j.createFile(name, j.opts.FileSize, nil); err != nil {
				return err
			}
		}
	}
	if j.ckf, err = j.fs.OpenRW(filepath.Join(j.dir, ckptName)); err != nil {
		return fmt.Errorf("journal: open checkpoint: %w", err)
	}
	for i := range j.jf {
		name := fmt.Sprintf(fileNameFmt, i)
		f, err := j.fs.OpenRW(filepath.Join(j.dir, name))
		if err != nil {
			return fmt.Errorf("journal: open %s: %w", name, err)
		}
		j.jf[i] = f
		size, err := f.Size()
		if err != nil {
			return fmt.Errorf("journal: stat %s: %w", name, err)
		}
		if size < j.opts.FileSize && !replayOnly {
			// Made with a smaller FileSize: grow it (zero-filled, so that
			// overwriting changes no metadata).
			if err := vfs.GrowZeroed(f, size, j.opts.FileSize); err != nil {
				return fmt.Errorf("journal: grow %s: %w", name, err)
			}
		}
	}
	return j.replay()
}

// createFile makes name in the journal directory durably: size bytes,
// zero-filled, starting with head.
func (j *Journal) createFile(name string, size int64, head []byte) error {
	if err := vfs.CreateDurably(j.fs, j.dir, name, size, head); err != nil {
		return fmt.Errorf("journal: create file: %w", err)
	}
	return nil
}

func (j *Journal) closeFiles() {
	for i, f := range j.jf {
		if f != nil {
			f.Close()
			j.jf[i] = nil
		}
	}
	if j.ckf != nil {
		j.ckf.Close()
		j.ckf = nil
	}
}

func (j *Journal) poison(err error) {
	j.mu.Lock()
	first := j.err == nil
	if first {
		j.err = err
		j.errv.Store(&err)
	}
	j.mu.Unlock()
	if first {
		j.log.Error("journal: poisoned; no more appends through it", "dir", j.dir, "err", err)
	}
}

// Close stops the journal after the logs using it have been closed: it
// checkpoints everything it holds (so that the next Open has nothing
// to replay) and releases its files and lock. It returns the first error of
// that final checkpoint, or the error that poisoned the journal.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closing {
		j.mu.Unlock()
		return ErrClosed
	}
	j.closing = true
	for j.leading { // queued groups are committed by the leaders
		j.idle.Wait()
	}
	j.mu.Unlock()
	var err error
	if j.ckpt != nil {
		err = <-j.ckpt
		j.ckpt = nil
	}
	if err == nil && j.Err() == nil && j.pos > 0 {
		err = j.checkpoint(j.cur, j.gen, j.dirty)
	}
	if err == nil {
		err = j.Err()
	}
	j.closeFiles()
	if cerr := j.lock.Close(); err == nil {
		err = cerr
	}
	return err
}

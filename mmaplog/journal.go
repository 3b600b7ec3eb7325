package mmaplog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/atedb/atedb/internal/vfs"
)

// A Journal is a commit journal shared by every log under one root
// directory. Without it each log makes its own appends durable with its own
// fdatasync, so N busy logs cost N device flushes where one log with N
// appenders costs one (group commit works only inside a log). With it, a
// log in SyncAlways mode writes a group into its segment without syncing
// it, hands the same bytes to the journal, and acknowledges them once the
// journal's writer has written them, together with the groups of every
// other log, into one journal file with one fdatasync. The segments are
// made durable later, in the background, before the journal space that
// covers them is reused (a checkpoint), and at the latest when a log
// rotates a segment or closes.
//
// Recovery: OpenJournal replays every journal record that no checkpoint
// covers into its segment (the same bytes at the same position: replay is
// idempotent) and syncs those segments, before any log is opened. A log
// directory must therefore be opened with its journal (Options.Journal)
// whenever the journal may hold records for it; the journal's LOCK file
// guards every log under the root, so those logs take no LOCK of their own
// and hold a single file descriptor while open.
//
// Groups larger than JournalOptions.MaxGroup, and groups that span a
// segment rotation, are synced in their segment as without a journal:
// copying them into the journal would cost more than the flush it saves.
//
// The file layout and the recovery rules are in docs/STORAGE.md ("Commit
// journal").
type Journal struct {
	root string
	dir  string
	fs   vfs.FS
	opts JournalOptions
	log  *slog.Logger
	lock io.Closer
	ckf  vfs.File // the checkpoint file
	jf   [2]vfs.File

	mu      sync.Mutex
	idle    sync.Cond // signalled when leading becomes false
	pending []*journalReq
	leading bool // a committer is writing for everyone (see commit)
	// lastRound is the number of groups the previous round committed.
	lastRound int
	noDirect  bool // tests: always write groups to the journal
	closing   bool
	err       error
	errv      atomic.Pointer[error]

	// Owned by the leading committer.
	cur   int    // the journal file being written
	gen   uint64 // generation of the records in jf[cur]
	pos   int64  // bytes of jf[cur] written (and durable) in this generation
	dirty map[segmentRef]struct{}
	ckpt  chan error // result of the checkpoint of jf[1-cur], nil when none runs
	buf   []byte
	spare []*journalReq
	group []*journalReq

	st journalCounters
}

// JournalOptions configures OpenJournal. The zero value gives the defaults.
type JournalOptions struct {
	// FS is the file system; nil means the operating system's. Logs that
	// use the journal must use the same FS.
	FS vfs.FS
	// FileSize is the size of each of the two journal files. When one is
	// full the writer continues in the other, whose checkpoint must have
	// finished. Default 64 MiB; at least MinJournalFileSize.
	FileSize int64
	// MaxGroup is the largest group of records, in bytes, that a log
	// commits through the journal; larger groups are synced in their
	// segment. Default 1 MiB; at most FileSize/4.
	MaxGroup int64
	// Logger receives replays, checkpoints and failures; nil discards.
	Logger *slog.Logger
}

// Journal defaults and limits.
const (
	DefaultJournalFileSize = 64 << 20
	DefaultJournalMaxGroup = 1 << 20
	MinJournalFileSize     = 64 << 10
	// JournalDirName is the directory, under the root, that holds the
	// journal. Chain keys cannot name it (they have no hidden segments).
	JournalDirName = ".journal"
)

// On-disk constants of the journal; docs/STORAGE.md draws them.
const (
	jrecHeaderSize  = 56
	jrecMaxDir      = 4096
	jckptMagic      = "ATEDBJCK"
	jckptSize       = 24 // magic, generation, CRC, reserved
	jckptName       = "checkpoint"
	jfileNameFormat = "journal-%d"
	// segmentSyncWorkers bounds the fdatasyncs a checkpoint runs at once.
	segmentSyncWorkers = 4
	// syncFSAbove is the number of dirty segments above which a
	// checkpoint makes them durable with one syncfs instead of one
	// fdatasync each (measured here: 64 files written, 64 concurrent
	// fdatasyncs 7.5 ms, one syncfs 2.3 ms).
	syncFSAbove = 16
)

// ErrJournalCorrupt is wrapped by the errors OpenJournal returns for a
// journal that cannot be replayed safely: a damaged record that later
// durable records vouch for, or a record whose segment is missing or was
// replaced. Nothing is changed when it is returned.
var ErrJournalCorrupt = errors.New("mmaplog: corrupt journal")

type segmentRef struct{ rel, name string }

// journalReq is one log's group waiting for the journal. Each log owns one
// and reuses it: its writer has at most one group in flight.
type journalReq struct {
	rel   string // log directory relative to the journal's root
	segID uint64
	first uint64 // first offset of the segment (names its file)
	name  string // segment file name
	pos   int64  // position of data in the segment
	data  []byte
	done  chan error // capacity 1
	// direct, called on the log's writer goroutine, syncs the log's
	// active segment itself; the leader uses it for a round with no other
	// group (see Journal.commit) and sets directed.
	direct   func() error
	directed bool
}

type journalCounters struct {
	groups, bytes, syncs, checkpoints, segmentSyncs, fsSyncs, replayed, direct atomic.Uint64
}

// JournalStats is a snapshot of a journal's counters.
type JournalStats struct {
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
func (j *Journal) Stats() JournalStats {
	return JournalStats{
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

func (o JournalOptions) withDefaults() (JournalOptions, error) {
	if o.FS == nil {
		o.FS = vfs.OS
	}
	if o.FileSize == 0 {
		o.FileSize = DefaultJournalFileSize
	}
	if o.MaxGroup == 0 {
		o.MaxGroup = min(DefaultJournalMaxGroup, o.FileSize/4)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case o.FileSize < MinJournalFileSize || o.FileSize > MaxSegmentSize:
		return o, fmt.Errorf("%w: journal file size %d outside [%d, %d]", ErrInvalidOptions, o.FileSize, MinJournalFileSize, MaxSegmentSize)
	case o.MaxGroup < 0 || o.MaxGroup > o.FileSize/4:
		return o, fmt.Errorf("%w: journal max group %d outside [0, %d]", ErrInvalidOptions, o.MaxGroup, o.FileSize/4)
	}
	o.FileSize &^= recAlign - 1
	return o, nil
}

// OpenJournal opens (creating) the journal of the logs under root, in
// root/.journal, and replays what an earlier run left in it into the logs'
// segments. It must be called before any log under root is opened, and
// closed after all of them. Errors: a *JournalError wrapping
// ErrJournalCorrupt when replay would be unsafe (nothing is changed then),
// an error wrapping vfs.ErrLocked when another process holds the journal,
// or an I/O error.
func OpenJournal(root string, opts JournalOptions) (*Journal, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	fs := opts.FS
	root = filepath.Clean(root)
	dir := filepath.Join(root, JournalDirName)
	if err := mkdirDurable(fs, dir); err != nil {
		return nil, fmt.Errorf("mmaplog: open journal: %w", err)
	}
	lock, err := fs.Lock(filepath.Join(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("mmaplog: open journal %s: %w", dir, err)
	}
	j := &Journal{
		root:  root,
		dir:   dir,
		fs:    fs,
		opts:  opts,
		log:   opts.Logger,
		lock:  lock,
		dirty: map[segmentRef]struct{}{},
	}
	if err := j.open(); err != nil {
		j.closeFiles()
		lock.Close()
		return nil, err
	}
	j.idle.L = &j.mu
	return j, nil
}

// open creates missing files, replays, and prepares the writer.
func (j *Journal) open() error {
	names, err := j.fs.List(j.dir)
	if err != nil {
		return fmt.Errorf("mmaplog: list %s: %w", j.dir, err)
	}
	have := map[string]bool{}
	for _, n := range names {
		if strings.HasSuffix(n, tmpSuffix) {
			if err := j.fs.Remove(filepath.Join(j.dir, n)); err != nil {
				return fmt.Errorf("mmaplog: remove %s: %w", n, err)
			}
			continue
		}
		have[n] = true
	}
	if !have[jckptName] {
		var b [jckptSize]byte
		putCheckpoint(b[:], 0)
		if err := j.createFile(jckptName, int64(len(b)), b[:]); err != nil {
			return err
		}
	}
	for i := range j.jf {
		name := fmt.Sprintf(jfileNameFormat, i)
		if !have[name] {
			if err := j.createFile(name, j.opts.FileSize, nil); err != nil {
				return err
			}
		}
	}
	if j.ckf, err = j.fs.OpenRW(filepath.Join(j.dir, jckptName)); err != nil {
		return fmt.Errorf("mmaplog: open journal checkpoint: %w", err)
	}
	for i := range j.jf {
		name := fmt.Sprintf(jfileNameFormat, i)
		f, err := j.fs.OpenRW(filepath.Join(j.dir, name))
		if err != nil {
			return fmt.Errorf("mmaplog: open journal file %s: %w", name, err)
		}
		j.jf[i] = f
		size, err := f.Size()
		if err != nil {
			return fmt.Errorf("mmaplog: stat journal file %s: %w", name, err)
		}
		if size < j.opts.FileSize {
			// Made with a smaller FileSize: grow it (zero-filled, so that
			// overwriting changes no metadata).
			if err := growPrealloc(f, size, j.opts.FileSize); err != nil {
				return fmt.Errorf("mmaplog: grow journal file %s: %w", name, err)
			}
		}
	}
	return j.replay()
}

// createFile makes name in the journal directory durably: size bytes,
// zero-filled, starting with head.
func (j *Journal) createFile(name string, size int64, head []byte) error {
	if err := createFileDurably(j.fs, j.dir, name, size, head); err != nil {
		return fmt.Errorf("mmaplog: create journal file: %w", err)
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

// ---- record format ----

// journal record: length u32, CRC u32, generation u64, durable u64, segment
// ID u64, segment first offset u64, position u64, directory length u16,
// reserved u16, data length u32; then the directory (relative to the root)
// and the data, zero-padded to 8 bytes. The CRC covers the length field and
// every byte after the CRC field up to length.
type jrecHeader struct {
	length  uint32
	crc     uint32
	gen     uint64
	durable int64
	segID   uint64
	first   uint64
	pos     int64
	dirLen  uint16
	dataLen uint32
}

func jrecSize(dirLen, dataLen int) int64 {
	return (int64(jrecHeaderSize+dirLen+dataLen) + recAlign - 1) &^ (recAlign - 1)
}

func appendJournalRecord(dst []byte, h jrecHeader, dir string, data []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, jrecSize(len(dir), len(data)))...)
	r := dst[start:]
	h.dirLen, h.dataLen = uint16(len(dir)), uint32(len(data))
	h.length = uint32(jrecHeaderSize + len(dir) + len(data))
	binary.LittleEndian.PutUint32(r[0:], h.length)
	binary.LittleEndian.PutUint64(r[8:], h.gen)
	binary.LittleEndian.PutUint64(r[16:], uint64(h.durable))
	binary.LittleEndian.PutUint64(r[24:], h.segID)
	binary.LittleEndian.PutUint64(r[32:], h.first)
	binary.LittleEndian.PutUint64(r[40:], uint64(h.pos))
	binary.LittleEndian.PutUint16(r[48:], h.dirLen)
	binary.LittleEndian.PutUint16(r[50:], 0)
	binary.LittleEndian.PutUint32(r[52:], h.dataLen)
	copy(r[jrecHeaderSize:], dir)
	copy(r[jrecHeaderSize+len(dir):], data)
	binary.LittleEndian.PutUint32(r[4:], recordCRC(r[:h.length]))
	return dst
}

// decodeJournalRecord checks the record at b[pos:]; ok is false for
// anything that is not a whole, valid record (zeros included).
func decodeJournalRecord(b []byte, pos int64) (h jrecHeader, dir, data []byte, size int64, ok bool) {
	if pos+jrecHeaderSize > int64(len(b)) {
		return h, nil, nil, 0, false
	}
	r := b[pos:]
	h = jrecHeader{
		length:  binary.LittleEndian.Uint32(r[0:]),
		crc:     binary.LittleEndian.Uint32(r[4:]),
		gen:     binary.LittleEndian.Uint64(r[8:]),
		durable: int64(binary.LittleEndian.Uint64(r[16:])),
		segID:   binary.LittleEndian.Uint64(r[24:]),
		first:   binary.LittleEndian.Uint64(r[32:]),
		pos:     int64(binary.LittleEndian.Uint64(r[40:])),
		dirLen:  binary.LittleEndian.Uint16(r[48:]),
		dataLen: binary.LittleEndian.Uint32(r[52:]),
	}
	if h.gen == 0 || h.dirLen == 0 || h.dirLen > jrecMaxDir || binary.LittleEndian.Uint16(r[50:]) != 0 ||
		int64(h.length) != int64(jrecHeaderSize)+int64(h.dirLen)+int64(h.dataLen) {
		return h, nil, nil, 0, false
	}
	size = jrecSize(int(h.dirLen), int(h.dataLen))
	if pos+size > int64(len(b)) || recordCRC(r[:h.length]) != h.crc {
		return h, nil, nil, 0, false
	}
	if h.durable < 0 || h.durable > pos || h.pos < segHeaderSize || h.pos > MaxSegmentSize {
		return h, nil, nil, 0, false
	}
	dir = r[jrecHeaderSize : jrecHeaderSize+int(h.dirLen)]
	data = r[jrecHeaderSize+int(h.dirLen) : h.length]
	return h, dir, data, size, true
}

// checkpoint file: magic[8] generation u64 CRC u32 reserved u32.
func putCheckpoint(b []byte, gen uint64) {
	copy(b, jckptMagic)
	binary.LittleEndian.PutUint64(b[8:], gen)
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	binary.LittleEndian.PutUint32(b[20:], 0)
}

func readCheckpoint(b []byte) (uint64, error) {
	if len(b) < jckptSize || string(b[:8]) != jckptMagic {
		return 0, errors.New("bad checkpoint magic")
	}
	if crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]) {
		return 0, errors.New("checkpoint checksum mismatch")
	}
	return binary.LittleEndian.Uint64(b[8:]), nil
}

// ---- replay ----

// JournalError reports a journal that cannot be replayed safely. It wraps
// ErrJournalCorrupt.
type JournalError struct {
	File   string // journal file name
	Pos    int64  // position of the record in it
	Reason string
}

func (e *JournalError) Error() string {
	return fmt.Sprintf("mmaplog: corrupt journal %s position %d: %s", e.File, e.Pos, e.Reason)
}

// Unwrap returns ErrJournalCorrupt.
func (e *JournalError) Unwrap() error { return ErrJournalCorrupt }

type journalFileScan struct {
	name string
	gen  uint64
	data []byte
	recs []int64 // positions of the records to replay
}

// replay redoes every record newer than the checkpoint into its segment,
// syncs the segments, advances the checkpoint and sets up the writer.
func (j *Journal) replay() error {
	var cb [jckptSize]byte
	if _, err := j.ckf.ReadAt(cb[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("mmaplog: read journal checkpoint: %w", err)
	}
	done, err := readCheckpoint(cb[:])
	if err != nil {
		// The checkpoint is written in place, within one sector; a bad one
		// means damage. Replaying from generation 0 is safe (replay is
		// idempotent) and loses nothing.
		j.log.Warn("mmaplog: journal checkpoint unreadable; replaying every valid record", "dir", j.dir, "err", err)
		done = 0
	}
	maxGen := done
	var scans []journalFileScan
	for i, f := range j.jf {
		name := fmt.Sprintf(jfileNameFormat, i)
		size, err := f.Size()
		if err != nil {
			return fmt.Errorf("mmaplog: stat journal file %s: %w", name, err)
		}
		// Mapped rather than read: most of a file is usually old or zero,
		// and is only glanced at (scanJournalFile).
		m, err := f.Map(int(size))
		if err != nil {
			return fmt.Errorf("mmaplog: map journal file %s: %w", name, err)
		}
		defer m.Unmap()
		sc := journalFileScan{name: name, data: m.Bytes()}
		if err := scanJournalFile(&sc, done); err != nil {
			return err
		}
		maxGen = max(maxGen, sc.gen)
		if len(sc.recs) > 0 {
			scans = append(scans, sc)
		}
	}
	sort.Slice(scans, func(a, b int) bool { return scans[a].gen < scans[b].gen })

	// Check every record's segment before writing anything.
	type target struct {
		f  vfs.File
		id uint64
	}
	type write struct {
		t    *target
		pos  int64
		data []byte
	}
	targets := map[string]*target{}
	defer func() {
		for _, t := range targets {
			t.f.Close()
		}
	}()
	var writes []write
	for _, sc := range scans {
		for _, pos := range sc.recs {
			h, dir, data, _, _ := decodeJournalRecord(sc.data, pos)
			rel := string(dir)
			if !filepath.IsLocal(rel) {
				return &JournalError{File: sc.name, Pos: pos, Reason: fmt.Sprintf("log directory %q is not inside the root", rel)}
			}
			path := filepath.Join(j.root, rel, segmentName(h.first))
			t := targets[path]
			if t == nil {
				f, err := j.fs.OpenRW(path)
				if err != nil {
					return &JournalError{File: sc.name, Pos: pos, Reason: fmt.Sprintf("segment %s: %v", path, err)}
				}
				var hdr [segHeaderSize]byte
				k, err := f.ReadAt(hdr[:], 0)
				id, herr := readSegmentHeader(hdr[:k])
				if herr != nil {
					f.Close()
					return &JournalError{File: sc.name, Pos: pos, Reason: fmt.Sprintf("segment %s: %v (read: %v)", path, herr, err)}
				}
				t = &target{f: f, id: id}
				targets[path] = t
			}
			if t.id != h.segID {
				return &JournalError{File: sc.name, Pos: pos, Reason: fmt.Sprintf("segment %s has ID %#x, the journal wrote to ID %#x", path, t.id, h.segID)}
			}
			size, err := t.f.Size()
			if err != nil {
				return fmt.Errorf("mmaplog: stat %s: %w", path, err)
			}
			if h.pos+int64(len(data)) > size {
				return &JournalError{File: sc.name, Pos: pos, Reason: fmt.Sprintf("record for %s at %d..%d past the segment's %d bytes", path, h.pos, h.pos+int64(len(data)), size)}
			}
			writes = append(writes, write{t, h.pos, data})
		}
	}
	for _, w := range writes {
		if _, err := w.t.f.WriteAt(w.data, w.pos); err != nil {
			return fmt.Errorf("mmaplog: journal replay into %s: %w", w.t.f.Name(), err)
		}
	}
	n := len(writes)
	for path, t := range targets {
		if err := t.f.Datasync(); err != nil {
			return fmt.Errorf("mmaplog: journal replay: fdatasync %s: %w", path, err)
		}
	}
	if len(scans) > 0 {
		if err := j.writeCheckpoint(maxGen); err != nil {
			return err
		}
		j.st.replayed.Add(uint64(n))
		j.log.Info("mmaplog: journal replayed", "dir", j.dir, "records", n, "segments", len(targets), "generation", maxGen)
	}
	j.cur, j.gen, j.pos = 0, maxGen+1, 0
	return nil
}

// scanJournalFile finds the records of sc.data newer than checkpoint done:
// the run of valid records of one generation from position 0. A valid
// record of that generation after the run that says the run's end was
// already durable means acknowledged data was damaged: an error.
func scanJournalFile(sc *journalFileScan, done uint64) error {
	b := sc.data
	var pos int64
	h, _, _, size, ok := decodeJournalRecord(b, 0)
	if ok && h.gen > done {
		sc.gen = h.gen
		for ok && h.gen == sc.gen {
			sc.recs = append(sc.recs, pos)
			pos += size
			h, _, _, size, ok = decodeJournalRecord(b, pos)
		}
	}
	stop := pos
	for p := stop + recAlign; p+jrecHeaderSize <= int64(len(b)); p += recAlign {
		g := binary.LittleEndian.Uint64(b[p+8:])
		if g <= done || (sc.gen != 0 && g != sc.gen) {
			continue
		}
		h, _, _, _, ok := decodeJournalRecord(b, p)
		if ok && h.durable > stop {
			return &JournalError{File: sc.name, Pos: stop, Reason: fmt.Sprintf("damaged record; the record at %d says the journal was durable up to %d", p, h.durable)}
		}
	}
	return nil
}

func (j *Journal) writeCheckpoint(gen uint64) error {
	var b [jckptSize]byte
	putCheckpoint(b[:], gen)
	if _, err := j.ckf.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("mmaplog: write journal checkpoint: %w", err)
	}
	if err := j.ckf.Datasync(); err != nil {
		return fmt.Errorf("mmaplog: fdatasync journal checkpoint: %w", err)
	}
	return nil
}

// ---- commits ----

// relDir returns dir relative to the journal's root, or an error if dir is
// not inside it.
func (j *Journal) relDir(dir string) (string, error) {
	rel, err := filepath.Rel(j.root, filepath.Clean(dir))
	if err != nil || !filepath.IsLocal(rel) || rel == "." {
		return "", fmt.Errorf("%w: log %s is not inside the journal's root %s", ErrInvalidOptions, dir, j.root)
	}
	if len(rel) > jrecMaxDir {
		return "", fmt.Errorf("%w: log directory %s is longer than %d bytes", ErrInvalidOptions, rel, jrecMaxDir)
	}
	return rel, nil
}

// errLead tells a waiting committer to take over as leader.
var errLead = errors.New("mmaplog: journal: lead")

// commit queues r and returns once its data is durable in the journal, or
// failed. There is no journal goroutine: the first committer to arrive
// leads, writing and syncing every queued group (its own and those of the
// other logs), then hands the lead to the first committer that queued
// meanwhile, or gives it up. A lone log thus syncs on its own writer
// goroutine with no hand-off, and a leader never works for others beyond
// one round, so that its own log moves on.
func (j *Journal) commit(r *journalReq) error {
	j.mu.Lock()
	if j.err != nil {
		err := j.err
		j.mu.Unlock()
		return err
	}
	if j.closing {
		j.mu.Unlock()
		return fmt.Errorf("mmaplog: journal: %w", ErrClosed)
	}
	j.pending = append(j.pending, r)
	if j.leading {
		j.mu.Unlock()
		if err := <-r.done; err != errLead {
			return err
		}
		j.mu.Lock()
	}
	j.leading = true
	if j.lastRound > 1 {
		j.mu.Unlock()
		j.gather()
		j.mu.Lock()
	}
	rs := j.pending
	j.pending = j.spare[:0]
	j.lastRound = len(rs)
	j.mu.Unlock()

	if len(rs) == 1 && rs[0] == r && r.direct != nil && !j.noDirect {
		// Alone in the round: sync the log's own segment instead. The
		// same one fdatasync makes the group durable, without writing it
		// twice and leaving the segment dirty for a checkpoint; earlier
		// journal records of this log stay valid (replay is idempotent).
		r.directed = true
		r.done <- r.direct()
		j.st.direct.Add(1)
	} else {
		j.write(rs) // completes every request of rs, r included
	}
	clear(rs)

	j.mu.Lock()
	j.spare = rs[:0]
	if len(j.pending) > 0 {
		j.pending[0].done <- errLead
	} else {
		j.leading = false
		j.idle.Broadcast()
	}
	j.mu.Unlock()
	return <-r.done
}

// gather lets the logs whose groups the previous round just acknowledged
// queue their next group before the leader takes the queue, as the log's
// writer does (Log.gather): without it, busy logs split into several
// staggered rounds, each syncing a fraction of them. It yields while the
// queue keeps growing, a few times and 200 µs at most, and only after a
// round of several groups (a lone log waits for nothing).
func (j *Journal) gather() { yieldWhileGrowing(&j.mu, &j.pending) }

// write commits the groups of rs with as few write+fdatasync rounds as the
// file's free space allows (one, unless the active file fills up).
func (j *Journal) write(rs []*journalReq) {
	j.buf = j.buf[:0]
	j.group = j.group[:0]
	for _, r := range rs {
		if err := j.Err(); err != nil {
			r.done <- err
			continue
		}
		size := jrecSize(len(r.rel), len(r.data))
		if j.pos+int64(len(j.buf))+size > j.opts.FileSize {
			j.flush()
			if err := j.switchFile(); err != nil {
				j.poison(err)
				r.done <- j.Err()
				continue
			}
		}
		j.buf = appendJournalRecord(j.buf, jrecHeader{
			gen: j.gen, durable: j.pos, segID: r.segID, first: r.first, pos: r.pos,
		}, r.rel, r.data)
		j.group = append(j.group, r)
	}
	j.flush()
	if cap(j.buf) > 2*int(j.opts.MaxGroup)+(1<<20) {
		j.buf = nil // a burst passed: do not keep its buffer
	}
}

// flush writes and syncs j.buf and completes the groups in j.group.
func (j *Journal) flush() {
	if len(j.group) == 0 {
		return
	}
	err := j.Err()
	if err == nil {
		var n int
		n, err = j.jf[j.cur].WriteAt(j.buf, j.pos)
		if err == nil && n != len(j.buf) {
			err = errors.New("short write")
		}
		if err == nil {
			err = j.jf[j.cur].Datasync()
			j.st.syncs.Add(1)
		}
		if err != nil {
			j.poison(fmt.Errorf("mmaplog: journal %s: %w", fmt.Sprintf(jfileNameFormat, j.cur), err))
			err = j.Err()
		}
	}
	if err == nil {
		j.pos += int64(len(j.buf))
		j.st.bytes.Add(uint64(len(j.buf)))
		j.st.groups.Add(uint64(len(j.group)))
		for _, r := range j.group {
			j.dirty[segmentRef{r.rel, r.name}] = struct{}{}
		}
	}
	for _, r := range j.group {
		r.done <- err
	}
	clear(j.group)
	j.group = j.group[:0]
	j.buf = j.buf[:0]
}

// switchFile continues in the other journal file, once its checkpoint has
// finished, and starts the checkpoint of the one just filled.
func (j *Journal) switchFile() error {
	if j.ckpt != nil {
		err := <-j.ckpt
		j.ckpt = nil
		if err != nil {
			return err
		}
	}
	full, gen, dirty := j.cur, j.gen, j.dirty
	j.cur, j.gen, j.pos = 1-j.cur, j.gen+1, 0
	j.dirty = make(map[segmentRef]struct{}, len(dirty))
	ch := make(chan error, 1)
	j.ckpt = ch
	go func() { ch <- j.checkpoint(full, gen, dirty) }()
	return nil
}

// checkpoint makes the segments that journal file idx covers durable and
// then records that generation gen needs no replay.
func (j *Journal) checkpoint(idx int, gen uint64, dirty map[segmentRef]struct{}) error {
	if len(dirty) > syncFSAbove {
		// One syncfs (through the checkpoint file, open since OpenJournal,
		// so that it reports any write-back error since then) instead of
		// an fdatasync, and a device flush, per segment.
		err := j.ckf.SyncFS()
		if err == nil {
			j.st.fsSyncs.Add(1)
			return j.finishCheckpoint(gen)
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			return fmt.Errorf("mmaplog: journal checkpoint of %s: %w", fmt.Sprintf(jfileNameFormat, idx), err)
		}
	}
	refs := make(chan segmentRef)
	errs := make(chan error, segmentSyncWorkers)
	var wg sync.WaitGroup
	for range min(segmentSyncWorkers, max(len(dirty), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first error
			for ref := range refs {
				if first != nil {
					continue
				}
				first = j.syncSegment(ref)
			}
			errs <- first
		}()
	}
	for ref := range dirty {
		refs <- ref
	}
	close(refs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return fmt.Errorf("mmaplog: journal checkpoint of %s: %w", fmt.Sprintf(jfileNameFormat, idx), err)
		}
	}
	return j.finishCheckpoint(gen)
}

// finishCheckpoint records that generation gen needs no replay.
func (j *Journal) finishCheckpoint(gen uint64) error {
	if err := j.writeCheckpoint(gen); err != nil {
		return err
	}
	j.st.checkpoints.Add(1)
	return nil
}

func (j *Journal) syncSegment(ref segmentRef) error {
	path := filepath.Join(j.root, ref.rel, ref.name)
	f, err := j.fs.Open(path)
	if err != nil {
		return err
	}
	err = f.Datasync()
	j.st.segmentSyncs.Add(1)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fdatasync %s: %w", path, err)
	}
	return nil
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
		j.log.Error("mmaplog: journal poisoned; no more appends through it", "dir", j.dir, "err", err)
	}
}

// Close stops the journal after the logs using it have been closed: it
// checkpoints everything it holds (so that the next OpenJournal has nothing
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

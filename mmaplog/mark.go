package mmaplog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	iofs "io/fs"
	"path/filepath"
)

// The head mark ("HEAD.mark" in the log directory) is a durable lower
// bound of the log's head: every offset below mark.head was acknowledged
// and made durable. Close writes it after its final sync (flag clean); the
// writer writes it when it finds its active segment removed or replaced
// (flag lost). Open refuses a log whose records end below it, instead of
// cutting a "torn tail" and assigning the lost offsets again, unless
// Options.RepairBelowMark. It never needs invalidating: a log that works as
// designed never ends below a head it once made durable, whatever the sync
// mode, since later appends only add above it. docs/STORAGE.md §"Head mark"
// has the layout.
const (
	markName    = "HEAD.mark"
	markMagic   = "ATEDBMRK"
	markVersion = 1
	markSize    = 44 // magic, version, flags, head, segment first, segment ID, CRC

	markClean = 1 << 0 // written by Close after the final sync
	markLost  = 1 << 1 // written when the active segment vanished under the log
)

// headMark is the content of the head mark.
type headMark struct {
	flags    uint32
	head     uint64 // every offset below it was durable
	segFirst uint64 // first offset of the active segment when written
	segID    uint64 // its segment ID
}

func encodeMark(m headMark) []byte {
	b := make([]byte, markSize)
	copy(b, markMagic)
	binary.LittleEndian.PutUint32(b[8:], markVersion)
	binary.LittleEndian.PutUint32(b[12:], m.flags)
	binary.LittleEndian.PutUint64(b[16:], m.head)
	binary.LittleEndian.PutUint64(b[24:], m.segFirst)
	binary.LittleEndian.PutUint64(b[32:], m.segID)
	binary.LittleEndian.PutUint32(b[40:], crc32.Checksum(b[:40], castagnoli))
	return b
}

var errBadMark = errors.New("mmaplog: bad head mark")

func decodeMark(b []byte) (headMark, error) {
	switch {
	case len(b) != markSize:
		return headMark{}, fmt.Errorf("%w: %d bytes, want %d", errBadMark, len(b), markSize)
	case string(b[:8]) != markMagic:
		return headMark{}, fmt.Errorf("%w: magic %q", errBadMark, b[:8])
	case crc32.Checksum(b[:40], castagnoli) != binary.LittleEndian.Uint32(b[40:]):
		return headMark{}, fmt.Errorf("%w: checksum mismatch", errBadMark)
	case binary.LittleEndian.Uint32(b[8:]) != markVersion:
		return headMark{}, fmt.Errorf("%w: version %d", errBadMark, binary.LittleEndian.Uint32(b[8:]))
	}
	return headMark{
		flags:    binary.LittleEndian.Uint32(b[12:]),
		head:     binary.LittleEndian.Uint64(b[16:]),
		segFirst: binary.LittleEndian.Uint64(b[24:]),
		segID:    binary.LittleEndian.Uint64(b[32:]),
	}, nil
}

// readMark reads the head mark of the log; ok is false if there is none.
func (l *Log) readMark() (m headMark, ok bool, err error) {
	f, err := l.fs.Open(filepath.Join(l.dir, markName))
	if errors.Is(err, iofs.ErrNotExist) {
		return headMark{}, false, nil
	}
	if err != nil {
		return headMark{}, false, fmt.Errorf("mmaplog: open %s: %w", markName, err)
	}
	defer f.Close()
	var b [markSize + 1]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return headMark{}, false, fmt.Errorf("mmaplog: read %s: %w", markName, err)
	}
	m, err = decodeMark(b[:n])
	if err != nil {
		return headMark{}, false, &CorruptionError{Dir: l.dir, Segment: markName, Reason: err.Error()}
	}
	return m, true, nil
}

// writeMark makes the head mark say m, durably (temp file, fsync, rename,
// directory fsync).
func (l *Log) writeMark(m headMark) error {
	if err := l.writeFileAtomic(markName, encodeMark(m)); err != nil {
		return fmt.Errorf("mmaplog: %w", err)
	}
	return nil
}

// removeMark removes the head mark durably (after a repair below it).
func (l *Log) removeMark() error {
	err := l.fs.Remove(filepath.Join(l.dir, markName))
	if err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("mmaplog: remove %s: %w", markName, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("mmaplog: sync %s: %w", l.dir, err)
	}
	return nil
}

// belowMark is the error of a log whose records end at head, below the
// head mark m: acknowledged records are missing.
func (l *Log) belowMark(m headMark, head uint64, segment string, pos int64) *CorruptionError {
	why := "closed cleanly"
	if m.flags&markLost != 0 {
		why = "stopped when its active segment vanished"
	}
	return &CorruptionError{Dir: l.dir, Segment: segment, Pos: pos, Offset: head,
		Reason: fmt.Sprintf("records end at offset %d but the log %s at head %d (%s, active segment %s): offsets %d to %d are missing; refusing to reuse them (Options.RepairBelowMark accepts the loss)",
			head, why, m.head, markName, segmentName(m.segFirst), head, m.head-1)}
}

// markClean writes the clean-close head mark, after the writer's final
// sync: nothing below the head can be torn from here on. It skips a log
// that failed or is read-only, and a mark that would not change.
func (l *Log) markClean() error {
	w := &l.w
	if l.Err() != nil || w.seg == nil {
		return nil
	}
	m := headMark{flags: markClean, head: l.head.Load(), segFirst: w.seg.first, segID: w.seg.id}
	if l.mark != nil && *l.mark == m {
		return nil
	}
	return l.writeMark(m)
}

// checkMark compares the log as recovered with its head mark: a log that
// ends below it is refused (cerr), unless Options.RepairBelowMark, which
// logs the loss and removes the mark.
func (l *Log) checkMark() (*CorruptionError, error) {
	m := l.mark
	head := l.head.Load()
	if m == nil || head >= m.head {
		return nil, nil
	}
	segs := *l.segs.Load()
	last := ""
	if len(segs) > 0 {
		last = segs[len(segs)-1].name
	}
	cerr := l.belowMark(*m, head, last, 0)
	if !l.opts.RepairBelowMark {
		return cerr, nil
	}
	l.log.Warn("mmaplog: repair: acknowledged records are lost; their offsets will be assigned again",
		"dir", l.dir, "lost_from", head, "lost_to", m.head-1, "mark", markName, "err", cerr)
	l.mark = nil
	return nil, l.removeMark()
}

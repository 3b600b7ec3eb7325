package mmaplog

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/atedb/atedb/internal/vfs"
	"github.com/atedb/atedb/journal"
)

// Open opens the log in dir, creating the directory and the first segment if
// needed, and recovers it: sealed segments are checked through their
// checksummed indexes (rebuilt from the segment when missing or invalid),
// and the active segment is scanned. A torn tail (an incomplete last batch,
// or garbage after it that no later durable record vouches for) is cut: its
// bytes are copied to a side file "<segment>.torn-<position>", then zeroed,
// and the repair is logged and counted in Stats.Repairs.
//
// Damage that is not a torn tail is reported as a *CorruptionError (wrapping
// ErrCorrupt) naming the segment and position, and nothing is changed or
// deleted. By default Open then releases everything and returns a nil *Log.
// With Options.OpenCorrupt it returns a usable read-only *Log together with
// the error: records before the damage are readable, appends fail with the
// same error (also returned by Err); the caller must Close it. Any other
// error (I/O, another process holding the directory's LOCK file, invalid
// options) returns a nil *Log.
//
// Only one Log may have a directory open at a time; the LOCK file enforces
// this between processes on platforms with flock.
func Open(dir string, opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	fs := opts.FS
	if _, err := vfs.MkdirDurable(fs, dir); err != nil {
		return nil, fmt.Errorf("mmaplog: open %s: %w", dir, err)
	}
	var l *Log
	var jg *journal.Group
	if j := opts.Journal; j != nil {
		// Alone in a journal round, a group is synced in its segment.
		if jg, err = j.NewGroup(dir, func() error { return l.datasync() }); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
		}
	}
	var lock io.Closer
	if !opts.RootLocked {
		if lock, err = fs.Lock(filepath.Join(dir, lockName)); err != nil {
			return nil, fmt.Errorf("mmaplog: open %s: %w", dir, err)
		}
	}
	l = &Log{
		dir:        dir,
		opts:       opts,
		fs:         fs,
		log:        opts.Logger,
		lock:       lock,
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		lone:       true,
	}
	l.jg = jg
	l.w.lastIdx = -1
	empty := []*segment{}
	l.segs.Store(&empty)
	cerr, err := l.recoverMarked()
	if err != nil {
		if l.w.f != nil {
			l.w.f.Close()
		}
		l.unmapAllLocked()
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	if cerr != nil {
		l.err = cerr
		l.errv.Store(&l.err)
		l.nch.Store(&closedChan)
		l.log.Error("mmaplog: corruption found; log is read-only", "dir", dir, "segment", cerr.Segment,
			"pos", cerr.Pos, "offset", cerr.Offset, "reason", cerr.Reason)
		if l.w.f != nil {
			l.w.f.Close()
			l.w.f = nil
		}
	} else {
		l.bg = newBackground(l) // asked for the next segment after the first commit past half-full
	}
	go l.run()
	if cerr != nil {
		if !opts.OpenCorrupt {
			l.Close()
			return nil, cerr
		}
		return l, cerr
	}
	return l, nil
}

// recoverMarked is recover checked against the head mark: the mark is
// read first, so that checkTail refuses to cut a tail below it, and the
// recovered head is compared with it afterwards.
func (l *Log) recoverMarked() (*CorruptionError, error) {
	m, ok, err := l.readMark()
	if ce, bad := isCorruption(err); bad && l.opts.RepairBelowMark {
		l.log.Warn("mmaplog: repair: ignoring an unreadable head mark", "dir", l.dir, "err", ce)
		err = nil
	}
	if err != nil {
		return nil, err
	}
	if ok {
		l.mark = &m
	}
	cerr, err := l.recover()
	if err != nil || cerr != nil {
		return cerr, err
	}
	return l.checkMark()
}

func isCorruption(err error) (*CorruptionError, bool) {
	ce, ok := errors.AsType[*CorruptionError](err)
	return ce, ok
}

// recover lists the directory, loads every segment and prepares the writer.
func (l *Log) recover() (*CorruptionError, error) {
	names, err := l.fs.List(l.dir)
	if err != nil {
		return nil, fmt.Errorf("mmaplog: list %s: %w", l.dir, err)
	}
	var firsts []uint64
	idxFiles := map[string]bool{}
	removed := false
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, tmpSuffix):
			// A preallocated segment or an index never put in service:
			// neither holds records.
			if err := l.fs.Remove(filepath.Join(l.dir, n)); err != nil {
				return nil, fmt.Errorf("mmaplog: remove %s: %w", n, err)
			}
			removed = true
		case strings.HasSuffix(n, idxSuffix):
			idxFiles[n] = true
		default:
			if f, ok := parseSegmentName(n); ok {
				firsts = append(firsts, f)
			}
		}
	}
	if removed {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return nil, fmt.Errorf("mmaplog: sync %s: %w", l.dir, err)
		}
	}
	if len(firsts) == 0 {
		if m := l.mark; m != nil && m.head > 0 && !l.opts.RepairBelowMark {
			return l.belowMark(*m, 0, segmentName(m.segFirst), 0), nil // every segment is gone
		}
		if err := l.createFirst(); err != nil {
			return nil, err
		}
		firsts = []uint64{0}
	}
	// names are sorted and zero-padded, so firsts ascend
	var segs []*segment
	var cerr *CorruptionError
	minOff := uint64(0) // the next record must have at least this offset
	haveRecords := false
	for i, first := range firsts {
		name := segmentName(first)
		if i == 0 && first != 0 {
			cerr = missingRange(l.dir, segmentName(0), 0, first, "", name)
			break
		}
		if haveRecords && first != minOff {
			cerr = missingRange(l.dir, name, minOff, first, segmentName(firsts[i-1]), name)
			break
		}
		minOff = max(minOff, first)
		var s *segment
		if i < len(firsts)-1 {
			s, cerr, err = l.openSealed(first, minOff, idxFiles[indexName(first)])
		} else {
			s, cerr, err = l.openActive(first, minOff)
		}
		if err != nil {
			for _, s := range segs {
				s.unmap()
			}
			return nil, err
		}
		segs = append(segs, s)
		count, _, lastOff, _, lastTime := s.stats()
		l.st.records.Add(count)
		l.st.bytes.Add(uint64(s.end.Load() - segHeaderSize))
		if count > 0 {
			minOff, haveRecords = lastOff+1, true
			l.w.lastTime = max(l.w.lastTime, lastTime)
		}
		if cerr != nil {
			break
		}
	}
	l.segs.Store(&segs)
	l.st.segments.Store(int64(len(segs)))
	l.head.Store(minOff)
	l.next = minOff
	return cerr, nil
}

// missingRange reports offsets [from, to) that no segment file holds: the
// file that held them was removed. Until the log can drop its oldest
// segments, a log starts at offset 0, so a first file named otherwise is a
// gap too. at names the segment reported (the missing first one, or the one
// after the gap), prev and next the files around the gap.
func missingRange(dir, at string, from, to uint64, prev, next string) *CorruptionError {
	around := "before " + next
	if prev != "" {
		around = "between " + prev + " and " + next
	}
	return &CorruptionError{Dir: dir, Segment: at, Pos: 0, Offset: from,
		Reason: fmt.Sprintf("missing records: offsets %d to %d are in no segment file (%s); a segment file was removed", from, to-1, around)}
}

// createFirst creates segment 0 of a new log durably.
func (l *Log) createFirst() error {
	f, _, err := l.preallocate(min(firstSegmentSize, l.opts.SegmentSize), nil)
	if err != nil {
		return fmt.Errorf("mmaplog: create first segment: %w", err)
	}
	err = f.Close()
	if err == nil {
		err = l.fs.Rename(filepath.Join(l.dir, preallocName), filepath.Join(l.dir, segmentName(0)))
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		return fmt.Errorf("mmaplog: create first segment: %w", err)
	}
	return nil
}

// readHeader reads and checks a segment header.
func (l *Log) readHeader(f vfs.File, name string, first uint64) (uint64, *CorruptionError, error) {
	var hdr [segHeaderSize]byte
	n, err := f.ReadAt(hdr[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, fmt.Errorf("mmaplog: read %s: %w", name, err)
	}
	id, herr := readSegmentHeader(hdr[:n])
	if herr != nil {
		return 0, &CorruptionError{Dir: l.dir, Segment: name, Pos: 0, Offset: first, Reason: herr.Error()}, nil
	}
	return id, nil, nil
}

// openSealed loads a sealed segment from its index, or rebuilds the index
// by scanning the segment, which must then be intact to its end.
func (l *Log) openSealed(first, minOff uint64, haveIdx bool) (*segment, *CorruptionError, error) {
	name := segmentName(first)
	f, err := l.fs.Open(filepath.Join(l.dir, name))
	if err != nil {
		return nil, nil, fmt.Errorf("mmaplog: open %s: %w", name, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, nil, fmt.Errorf("mmaplog: stat %s: %w", name, err)
	}
	s := &segment{first: first, name: name, size: size}
	s.end.Store(segHeaderSize)
	id, cerr, err := l.readHeader(f, name, minOff)
	if err != nil || cerr != nil {
		return s, cerr, err
	}
	s.id = id
	if haveIdx {
		ix, err := l.readIndex(first, id, size)
		if err == nil && ix.count > 0 && ix.firstOff != minOff {
			err = fmt.Errorf("%w: first offset %d, want %d", errBadIndex, ix.firstOff, minOff)
		}
		if err == nil {
			s.idx, s.count, s.firstOff, s.lastOff = ix.entries, ix.count, ix.firstOff, ix.lastOff
			s.firstTime, s.lastTime = ix.firstTime, ix.lastTime
			s.end.Store(ix.end)
			return s, nil, nil
		}
		l.log.Warn("mmaplog: invalid index; rebuilding", "dir", l.dir, "segment", name, "err", err)
	}
	data, err := s.bytes(l.fs, l.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("mmaplog: map %s: %w", name, err)
	}
	r := scanSegment(data, minOff, l.opts.MaxRecordSize)
	s.apply(&r)
	s.markVerified(r.commitEnd)
	if r.stop != r.commitEnd || r.status != recEmpty || !allZero(data[r.stop:]) {
		reason := r.reason
		if reason == "" {
			reason = "data after the end of a sealed segment"
		}
		return s, &CorruptionError{Dir: l.dir, Segment: name, Pos: r.stop, Offset: r.nextOff, Reason: reason}, nil
	}
	l.st.rebuilds.Add(1)
	l.writeIndex(s)
	return s, nil, nil
}

// readIndex reads and validates a sealed segment's index file.
func (l *Log) readIndex(first, id uint64, segSize int64) (*segIndex, error) {
	name := indexName(first)
	f, err := l.fs.Open(filepath.Join(l.dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	// At most one entry per indexEvery bytes, plus the first record's.
	limit := int64(idxHeaderSize) + (segSize/indexEvery+2)*idxEntrySize + idxTrailer
	if size > limit {
		return nil, fmt.Errorf("%w: %d bytes (at most %d for this segment)", errBadIndex, size, limit)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return decodeIndex(b, id, first, segSize)
}

// openActive opens the last segment for appending and recovers its tail.
func (l *Log) openActive(first, minOff uint64) (_ *segment, _ *CorruptionError, retErr error) {
	name := segmentName(first)
	f, err := l.fs.OpenRW(filepath.Join(l.dir, name))
	if err != nil {
		return nil, nil, fmt.Errorf("mmaplog: open %s: %w", name, err)
	}
	var s *segment
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
		if retErr != nil && s != nil {
			s.unmap()
		}
	}()
	size, err := f.Size()
	if err != nil {
		return nil, nil, fmt.Errorf("mmaplog: stat %s: %w", name, err)
	}
	s = &segment{first: first, name: name, size: size}
	s.end.Store(segHeaderSize)
	id, cerr, err := l.readHeader(f, name, minOff)
	if err != nil || cerr != nil {
		return s, cerr, err
	}
	s.id = id
	data, err := s.bytes(l.fs, l.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("mmaplog: map %s: %w", name, err)
	}
	r := scanSegment(data, minOff, l.opts.MaxRecordSize)
	s.apply(&r)
	cerr, err = l.checkTail(s, f, data, &r)
	if err != nil || cerr != nil {
		return s, cerr, err
	}
	ok = true
	s.markVerified(r.commitEnd)
	w := &l.w
	w.seg, w.f = s, f
	w.pos, w.acked, w.synced, w.segSynced = r.commitEnd, r.commitEnd, r.commitEnd, r.commitEnd
	w.nextSize = min(max(2*s.size, firstSegmentSize), l.opts.SegmentSize)
	if len(s.idx) > 0 {
		w.lastIdx = s.idx[len(s.idx)-1].pos
	}
	return s, nil, nil
}

// checkTail decides what follows the last complete batch of the active
// segment: nothing (clean), a torn tail (cut and kept in a side file), or
// damage that a later durable record proves is not a torn write.
func (l *Log) checkTail(s *segment, f vfs.File, data []byte, r *scanResult) (*CorruptionError, error) {
	if r.stop == r.commitEnd && r.status == recEmpty {
		// Clean end. Look a bounded distance ahead for bytes that should
		// not be there (a zeroed page over the next record's header).
		limit := min(int64(len(data)), r.stop+2*recordSize(l.opts.MaxRecordSize)+indexEvery)
		if firstNonZero(data, r.stop, limit) < 0 {
			return nil, nil
		}
	}
	if m := l.mark; m != nil && r.commitNext < m.head && !l.opts.RepairBelowMark {
		// Not torn: the log was durable up to the mark.
		return l.belowMark(*m, r.commitNext, s.name, r.commitEnd), nil
	}
	if p := findProof(data, r.commitEnd, r.commitNext, l.opts.MaxRecordSize); p >= 0 {
		reason := r.reason
		if reason == "" {
			reason = "zeroed record header"
		}
		return &CorruptionError{Dir: l.dir, Segment: s.name, Pos: r.stop, Offset: r.nextOff,
			Reason: fmt.Sprintf("%s, but the record at position %d was written after this position was durable", reason, p)}, nil
	}
	return nil, l.cutTail(s, f, data, r)
}

// cutTail copies the bytes after the last complete batch to a side file,
// then zeroes them in the segment.
func (l *Log) cutTail(s *segment, f vfs.File, data []byte, r *scanResult) error {
	last := lastNonZero(data, r.commitEnd)
	if last < 0 {
		return nil
	}
	cutEnd := min((last+recAlign)&^(recAlign-1), int64(len(data)))
	cut := data[r.commitEnd:cutEnd]
	side := fmt.Sprintf("%s%s%d", s.name, tornInfix, r.commitEnd)
	for i := 1; ; i++ {
		if _, err := l.fs.Open(filepath.Join(l.dir, side)); err != nil {
			break
		}
		side = fmt.Sprintf("%s%s%d.%d", s.name, tornInfix, r.commitEnd, i)
	}
	sf, err := l.fs.Create(filepath.Join(l.dir, side))
	if err != nil {
		return fmt.Errorf("mmaplog: create %s: %w", side, err)
	}
	_, err = sf.WriteAt(cut, 0)
	if err == nil {
		err = sf.Sync()
	}
	if cerr := sf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		return fmt.Errorf("mmaplog: save torn tail to %s: %w", side, err)
	}
	zeros := make([]byte, min(int64(len(cut)), 1<<20))
	for p := r.commitEnd; p < cutEnd; p += int64(len(zeros)) {
		n := min(int64(len(zeros)), cutEnd-p)
		if _, err := f.WriteAt(zeros[:n], p); err != nil {
			return fmt.Errorf("mmaplog: zero torn tail of %s: %w", s.name, err)
		}
	}
	if err := f.Datasync(); err != nil {
		return fmt.Errorf("mmaplog: sync %s: %w", s.name, err)
	}
	l.st.repairs.Add(1)
	l.log.Warn("mmaplog: torn tail cut", "dir", l.dir, "segment", s.name, "pos", r.commitEnd,
		"bytes", len(cut), "saved_to", side, "incomplete_records", r.uncommitted,
		"first_dropped_offset", r.commitNext, "reason", r.reason)
	return nil
}

// scanResult describes a segment scanned record by record.
type scanResult struct {
	// State at the end of the last complete batch.
	commitEnd  int64
	commitNext uint64 // offset the next record must at least have
	count      uint64
	firstOff   uint64
	lastOff    uint64
	firstTime  int64
	lastTime   int64
	entries    []indexEntry

	// Where and why the scan stopped.
	stop        int64
	status      recordStatus
	reason      string // empty for a clean stop
	nextOff     uint64 // offset expected at stop
	uncommitted int    // valid records after commitEnd (an incomplete batch)
}

// scanSegment walks the records of data from the segment header on. Every
// record must pass its checksum and carry an offset at least minOff and
// above the previous one, and a time not below the previous one.
func scanSegment(data []byte, minOff uint64, maxRecord int) scanResult {
	r := scanResult{commitEnd: segHeaderSize, commitNext: minOff, nextOff: minOff}
	pos := int64(segHeaderSize)
	lastIdx := int64(-1)
	var n uint64
	var firstOff, lastOff uint64
	var firstTime, lastTime int64
	for {
		h, size, st := decodeRecord(data, pos, maxRecord)
		if st == recOK {
			switch {
			case h.offset < r.nextOff:
				st, r.reason = recBadField, fmt.Sprintf("record offset %d, want at least %d", h.offset, r.nextOff)
			case n > 0 && h.time < lastTime:
				st, r.reason = recBadField, fmt.Sprintf("record time %d before previous %d", h.time, lastTime)
			}
		} else if st != recEmpty {
			r.reason = st.String()
		}
		if st != recOK {
			r.stop, r.status = pos, st
			break
		}
		if n == 0 {
			firstOff, firstTime = h.offset, h.time
		}
		n++
		lastOff, lastTime = h.offset, h.time
		if lastIdx < 0 || pos-lastIdx >= indexEvery {
			r.entries = append(r.entries, indexEntry{offset: h.offset, time: h.time, pos: pos})
			lastIdx = pos
		}
		pos += size
		r.nextOff = h.offset + 1
		if h.flags&flagCommit != 0 {
			r.commitEnd, r.commitNext = pos, h.offset+1
			r.count, r.firstOff, r.lastOff, r.firstTime, r.lastTime = n, firstOff, lastOff, firstTime, lastTime
			r.uncommitted = 0
		} else {
			r.uncommitted++
		}
	}
	if r.uncommitted > 0 && r.reason == "" {
		r.reason = "incomplete batch"
	}
	for len(r.entries) > 0 && r.entries[len(r.entries)-1].pos >= r.commitEnd {
		r.entries = r.entries[:len(r.entries)-1]
	}
	return r
}

// apply sets a segment's index and counters from a scan (committed part).
func (s *segment) apply(r *scanResult) {
	s.mu.Lock()
	s.idx, s.count = r.entries, r.count
	s.firstOff, s.lastOff, s.firstTime, s.lastTime = r.firstOff, r.lastOff, r.firstTime, r.lastTime
	s.mu.Unlock()
	s.end.Store(r.commitEnd)
}

// findProof looks after from for a valid record that was written when the
// segment was already durable beyond from (its synced field). Such a record
// proves that the bytes at from were once durable, so damage there is
// corruption, not a torn write. It returns the record's position or -1.
func findProof(data []byte, from int64, minOff uint64, maxRecord int) int64 {
	const block = 4 << 10
	p := (from + recAlign - 1) &^ (recAlign - 1)
	for p+recHeaderSize <= int64(len(data)) {
		if p%block == 0 && p+block <= int64(len(data)) && allZero(data[p:p+block]) {
			p += block
			continue
		}
		if data[p+28] == recTypeData {
			h, _, st := decodeRecord(data, p, maxRecord)
			if st == recOK && int64(h.synced) > from && h.offset >= minOff {
				return p
			}
		}
		p += recAlign
	}
	return -1
}

// firstNonZero returns the position of the first non-zero byte in
// data[from:to], or -1.
func firstNonZero(data []byte, from, to int64) int64 {
	const block = 4 << 10
	for p := from; p < to; p += block {
		e := min(p+block, to)
		if !allZero(data[p:e]) {
			for i := p; i < e; i++ {
				if data[i] != 0 {
					return i
				}
			}
		}
	}
	return -1
}

// lastNonZero returns the position of the last non-zero byte in data[from:],
// or -1.
func lastNonZero(data []byte, from int64) int64 {
	const block = 4 << 10
	for e := int64(len(data)); e > from; {
		p := max(from, e-block)
		if !allZero(data[p:e]) {
			for i := e - 1; i >= p; i-- {
				if data[i] != 0 {
					return i
				}
			}
		}
		e = p
	}
	return -1
}

package mmaplog

import (
	"fmt"
	"runtime/debug"
	"sort"
)

// Cursor reads records in offset order from a position in the log. It never
// returns a record at or beyond Head, so it never sees unacknowledged data.
// A Cursor is not safe for concurrent use; use one per reader. It pins the
// log's memory maps until Close: always close cursors.
type Cursor struct {
	l      *Log
	next   uint64   // offset of the next record to return
	segi   int      // index of seg in the log's segment list, -1 if unpositioned
	seg    *segment // segment holding the cursor position
	data   []byte   // seg's mapping
	pos    int64    // position of the next record to examine in seg
	pinned bool
	closed bool
	probe  byte // sink for the page probe in read
}

// NewCursor returns a cursor whose first record is the first one with
// offset >= from (records below the log's first offset are skipped; an
// offset at or beyond Head waits for that record to be appended). It returns
// ErrClosed if the log is closed.
func (l *Log) NewCursor(from uint64) (*Cursor, error) {
	if err := l.pin(); err != nil {
		return nil, err
	}
	return &Cursor{l: l, next: from, segi: -1, pinned: true}, nil
}

func (l *Log) pin() error {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	l.pins++
	return nil
}

func (l *Log) unpin() {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	l.pins--
	if l.pins == 0 && l.closed.Load() {
		l.unmapAllLocked()
	}
}

// Next returns the next records from the cursor position, appended to
// dst[:0]: at most cap(dst) records (DefaultCursorBatch if cap(dst) is 0),
// and no more payload bytes than maxBytes (no limit if maxBytes <= 0), but
// always at least one record when one is available, however large. It never
// returns a record at or beyond Head.
//
// Payloads alias the log's read-only memory map: they must not be written
// to, and stay valid until the next call to Next or Close on this cursor
// (in fact until the cursor is closed, but do not rely on more).
//
// When the cursor has caught up with Head, Next returns dst[:0] and nil, or
// the log's error (Err) if the log is poisoned or corrupt, so a tailer that
// waits on Notify learns that no more records will come. It returns ErrClosed
// once the log or the cursor is closed, and a *CorruptionError if a record
// fails its checksum (the cursor then stays at that record).
func (c *Cursor) Next(dst []Record, maxBytes int) ([]Record, error) {
	out := dst[:0]
	if c.closed {
		return out, ErrClosed
	}
	l := c.l
	if l.closed.Load() {
		c.release()
		return out, ErrClosed
	}
	h := l.head.Load()
	if c.next >= h {
		return out, l.Err()
	}
	return c.read(out, cap(dst), maxBytes, h)
}

// read is the part of Next that touches the mapped segments. A read of a
// mapping whose file was cut short underneath (truncated by someone else,
// or an I/O error of the backing device) raises SIGBUS or SIGSEGV, which
// would kill the process: here it becomes a *CorruptionError for this log
// only (see catchFault). Payloads of records whose CRC is skipped (see
// segment.verified) are probed on their last byte, so that a cut is
// noticed here rather than where the caller copies them.
func (c *Cursor) read(out []Record, limit, maxBytes int, h uint64) (_ []Record, err error) {
	l := c.l
	prev := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(prev)
		if r := recover(); r != nil {
			out, err = out[:0], l.catchFault(r, c.seg, c.pos, c.next)
		}
	}()
	segs := *l.segs.Load()
	if c.seg != nil && (c.segi >= len(segs) || segs[c.segi] != c.seg) {
		c.seg = nil // the segment was replaced: find the position again
	}
	if c.seg == nil {
		if err := c.seek(segs, h); err != nil {
			return out, err
		}
	}
	if limit == 0 {
		limit = DefaultCursorBatch
	}
	total := 0
	start, ver := c.pos, c.seg.verified.Load()
	for len(out) < limit && c.next < h {
		end := c.seg.end.Load()
		if c.pos >= end {
			if c.segi+1 >= len(segs) {
				break // unreachable: segs was loaded after h
			}
			c.noteVerified(start, ver)
			if err := c.enter(segs, c.segi+1, segHeaderSize); err != nil {
				return out, err
			}
			start, ver = c.pos, c.seg.verified.Load()
			continue
		}
		hd, size, st := decodeRecordCRC(c.data[:end], c.pos, l.opts.MaxRecordSize, c.pos >= ver)
		if st == recOK && c.pos < ver && c.pos+size > ver {
			// Straddles the verified mark (cannot happen: marks fall
			// on record ends); check it in full.
			hd, size, st = decodeRecord(c.data[:end], c.pos, l.opts.MaxRecordSize)
		}
		if st != recOK {
			c.noteVerified(start, ver)
			return out, &CorruptionError{Dir: l.dir, Segment: c.seg.name, Pos: c.pos, Offset: c.next, Reason: st.String()}
		}
		if hd.offset < c.next {
			c.pos += size // seeking: skip records before the start
			continue
		}
		if hd.offset >= h {
			break
		}
		if len(out) > 0 && maxBytes > 0 && total+int(hd.length) > maxBytes {
			break
		}
		p := c.pos + recHeaderSize
		q := p + int64(hd.length)
		out = append(out, Record{Offset: hd.offset, Time: hd.time, Payload: c.data[p:q:q]})
		total += int(hd.length)
		c.pos += size
		c.next = hd.offset + 1
	}
	c.noteVerified(start, ver)
	if n := len(out); n > 0 {
		// A file is cut from its end: if the last payload byte is
		// mapped, so is everything returned before it.
		if p := out[n-1].Payload; len(p) > 0 {
			c.probe ^= p[len(p)-1]
		}
	}
	return out, nil
}

// noteVerified records that the cursor checked every record of its
// segment from start (at or below the verified mark ver, so the checked
// range joins the verified one) to its position.
func (c *Cursor) noteVerified(start, ver int64) {
	if start <= ver && c.pos > ver {
		c.seg.markVerified(c.pos)
	}
}

// seek positions the cursor at the segment and index entry for c.next.
func (c *Cursor) seek(segs []*segment, head uint64) error {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].first > c.next })
	if i > 0 {
		i--
	}
	return c.enter(segs, i, segs[i].seekOffset(c.next, head))
}

func (c *Cursor) enter(segs []*segment, i int, pos int64) error {
	s := segs[i]
	data, err := s.bytes(c.l.fs, c.l.dir)
	if err != nil {
		return fmt.Errorf("mmaplog: read %s: %w", s.name, err)
	}
	c.segi, c.seg, c.data, c.pos = i, s, data, pos
	return nil
}

// Offset returns the offset the cursor will read next (the one after the
// last record returned).
func (c *Cursor) Offset() uint64 { return c.next }

// Close releases the cursor; payloads it returned must no longer be used.
// Close is idempotent and returns nil.
func (c *Cursor) Close() error {
	c.closed = true
	c.release()
	return nil
}

func (c *Cursor) release() {
	if c.pinned {
		c.pinned = false
		c.data = nil
		c.l.unpin()
	}
}

// SeekTime returns the offset of the first acknowledged record whose server
// time is >= t, or Head if there is none yet. Safe for concurrent use;
// returns ErrClosed after Close, or an I/O or *CorruptionError while reading
// the segment.
func (l *Log) SeekTime(t int64) (off uint64, err error) {
	if err := l.pin(); err != nil {
		return 0, err
	}
	defer l.unpin()
	var s *segment
	var pos int64
	prev := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(prev)
		if r := recover(); r != nil {
			off, err = 0, l.catchFault(r, s, pos, 0)
		}
	}()
	h := l.head.Load()
	segs := *l.segs.Load()
	i := sort.Search(len(segs), func(i int) bool {
		n, _, _, _, last := segs[i].stats()
		return n == 0 || last >= t // only the last segment can be empty
	})
	if i == len(segs) {
		return h, nil
	}
	s = segs[i]
	if n, _, _, _, _ := s.stats(); n == 0 {
		return h, nil
	}
	data, err := s.bytes(l.fs, l.dir)
	if err != nil {
		return 0, fmt.Errorf("mmaplog: read %s: %w", s.name, err)
	}
	end := s.end.Load()
	for pos = s.seekTime(t, h); pos < end; {
		hd, size, st := decodeRecord(data[:end], pos, l.opts.MaxRecordSize)
		if st != recOK {
			return 0, &CorruptionError{Dir: l.dir, Segment: s.name, Pos: pos, Reason: st.String()}
		}
		if hd.offset >= h {
			break
		}
		if hd.time >= t {
			return hd.offset, nil
		}
		pos += size
	}
	return h, nil
}

package mmaplog

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/atedb/atedb/internal/gather"
	"github.com/atedb/atedb/internal/vfs"
)

// maxWriteChunk bounds the buffer of one write call; a group larger than this
// is written in several calls and synced once.
const maxWriteChunk = 4 << 20

// writerState belongs to the writer goroutine (and to Open before it starts).
type writerState struct {
	seg       *segment
	f         vfs.File
	pos       int64 // bytes written to seg (all acknowledged once the group completes)
	acked     int64 // bytes acknowledged in seg
	synced    int64 // bytes of seg made durable, in seg or in the journal
	segSynced int64 // bytes of seg made durable by fdatasync of seg itself
	lastTime  int64 // newest time stamp written
	lastIdx   int64 // position of seg's newest index entry, -1 if none
	nextSize  int64 // size of the next segment to prepare
	requested bool  // the next segment was asked of the background goroutine
	buf       []byte
	spare     []batch
	nextCheck time.Time // checkActive's next check at a group commit
}

// run is the writer goroutine: it takes every pending batch and commits the
// group with one write and one fdatasync.
func (l *Log) run() {
	defer close(l.writerDone)
	var tick <-chan time.Time
	if l.opts.Sync == SyncInterval && l.Err() == nil {
		t := time.NewTicker(l.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-l.wake:
		case <-tick:
			l.syncInterval()
			continue
		}
		l.mu.Lock()
		if l.committing {
			// A Commit caller holds the writer state; it wakes us again
			// when it is done if anything is left to do.
			l.mu.Unlock()
			continue
		}
		l.committing = true
		l.mu.Unlock()
		l.gather()
		l.mu.Lock()
		bs := l.pending
		l.pending = l.w.spare[:0]
		closing := l.closing
		l.mu.Unlock()
		l.commitGroup(bs)
		if closing {
			l.closeErr = l.finish()
			return
		}
	}
}

// commitGroup commits bs, taken from the queue by the holder of the writer
// state (l.committing), then gives the state up.
func (l *Log) commitGroup(bs []batch) {
	if len(bs) > 0 {
		l.commit(bs)
	}
	clear(bs) // drop payload references
	l.w.spare = bs[:0]
	l.mu.Lock()
	l.committing = false
	if len(bs) > 0 {
		l.lone = len(bs) < 2
	}
	l.mu.Unlock()
}

// Commit makes sure the batches queued by Enqueue get committed, and
// decides where. When the log is quiet (SyncAlways, no group being
// committed, and the previous group held a single batch) and the caller
// says it has nothing else to do (callerIdle, if not nil, returns true),
// it commits the queue itself, on the calling goroutine: done callbacks run
// there, before Commit returns, after the fdatasync. A lone appender, such
// as a client waiting for each confirmation, then pays no hand-off to the
// writer goroutine and back (measured here: about 15 µs of wake-up latency
// per append). Otherwise, or when the log is closing, it wakes the writer
// goroutine and returns at once: under concurrency the writer's group
// commit gathers more, and a caller with more work queued (a connection
// with further requests buffered) must not wait for an fdatasync that
// would commit its batches one at a time.
//
// The caller must hold no lock that a done callback takes.
func (l *Log) Commit(callerIdle func() bool) {
	if callerIdle == nil || !callerIdle() {
		l.wakeWriter()
		return
	}
	l.mu.Lock()
	if l.committing || l.closing || len(l.pending) == 0 || !l.lone || l.opts.Sync != SyncAlways {
		l.mu.Unlock()
		l.wakeWriter()
		return
	}
	l.committing = true
	bs := l.pending
	l.pending = l.w.spare[:0]
	l.mu.Unlock()
	l.st.inlineCommits.Add(1)
	l.commitGroup(bs)
	l.mu.Lock()
	more := len(l.pending) > 0 || l.closing
	l.mu.Unlock()
	if more {
		l.wakeWriter()
	}
}

func (l *Log) wakeWriter() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// gather lets appenders that the previous group commit just woke enqueue
// their next batch before the writer takes the queue: without it, concurrent
// appenders split into two alternating half-size groups (one queues while
// the other syncs), and each fdatasync commits half as much. It yields the
// processor while the queue keeps growing, a few times and 200 µs at most,
// and only after a group of several batches (a lone appender waits for
// nothing).
func (l *Log) gather() {
	// Only the holder of committing writes lone: no lock needed to read it.
	if l.lone {
		return
	}
	gather.WhileGrowing(&l.mu, &l.pending)
}

// finish is the writer's last step at Close.
func (l *Log) finish() error {
	w := &l.w
	if w.f == nil {
		return nil
	}
	var err error
	if l.Err() == nil && w.pos > w.segSynced {
		err = l.datasync()
		if err != nil {
			l.poison(err)
		}
	}
	if cerr := w.f.Close(); err == nil && cerr != nil && l.Err() == nil {
		err = fmt.Errorf("close segment: %w", cerr)
	}
	w.f = nil
	return err
}

func (l *Log) syncInterval() {
	w := &l.w
	if l.Err() != nil || w.f == nil || w.pos <= w.segSynced {
		return
	}
	err := l.datasync()
	if err == nil {
		err = l.checkActive(true)
	}
	if err != nil {
		l.poison(err)
	}
}

// datasync makes everything written to the active segment durable.
func (l *Log) datasync() error {
	w := &l.w
	t0 := time.Now()
	err := w.f.Datasync()
	l.st.syncs.Add(1)
	if d := time.Since(t0); d > slowSync {
		l.log.Warn("mmaplog: slow fdatasync", "dir", l.dir, "segment", w.seg.name, "took", d)
	}
	if err != nil {
		return fmt.Errorf("mmaplog: fdatasync %s: %w", w.seg.name, err)
	}
	w.synced, w.segSynced = w.pos, w.pos
	w.seg.markVerified(w.pos)
	return nil
}

// journalCommit makes the group just written at pos durable through the
// journal instead of an fdatasync of the segment.
func (l *Log) journalCommit(pos int64, data []byte) error {
	w := &l.w
	g := l.jg
	g.FileNum, g.FileName, g.FileID, g.Pos, g.Data = w.seg.first, w.seg.name, w.seg.id, pos, data
	err := l.opts.Journal.Commit(g)
	g.Data = nil
	if g.Directed() {
		return err // l.datasync ran, and says what failed
	}
	if err != nil {
		return fmt.Errorf("mmaplog: journal commit of %s: %w", w.seg.name, err)
	}
	l.st.journalCommits.Add(1)
	w.synced = w.pos
	w.seg.markVerified(w.pos)
	return nil
}

// write writes w.buf at w.pos.
func (l *Log) write() error {
	w := &l.w
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.f.WriteAt(w.buf, w.pos)
	l.st.writes.Add(1)
	if err == nil && n != len(w.buf) {
		err = errors.New("short write")
	}
	if err != nil {
		return fmt.Errorf("mmaplog: write %s at %d: %w", w.seg.name, w.pos, err)
	}
	w.pos += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

func failAll(bs []batch, err error) {
	for i := range bs {
		bs[i].done(bs[i].first, err)
	}
}

// commit writes, syncs and acknowledges a group of batches.
func (l *Log) commit(bs []batch) {
	if err := l.Err(); err != nil {
		failAll(bs, err)
		return
	}
	w := &l.w
	now := l.opts.Now().UnixNano()
	if now < w.lastTime {
		now = w.lastTime
	}
	w.lastTime = now
	acked := 0
	w.buf = w.buf[:0]
	groupPos := w.pos
	split := false // part of the group was written before its last write
	for i := range bs {
		var need int64
		for _, p := range bs[i].payloads {
			need += recordSize(len(p))
		}
		if w.pos+int64(len(w.buf))+need > w.seg.size {
			split = true
			if err := l.write(); err != nil {
				l.fail(bs[acked:], err)
				return
			}
			// Always sync before rotating, in every mode and also when the
			// journal holds the data: sealed segments are durable by
			// themselves, so journal records only ever name active ones.
			if w.pos > w.segSynced {
				if err := l.datasync(); err != nil {
					l.fail(bs[acked:], err)
					return
				}
			}
			l.ack(bs[acked:i])
			acked = i
			if err := l.rotate(bs[i].first, need); err != nil {
				if _, ok := errors.AsType[*UnavailableError](err); ok {
					l.retreat(bs[acked:], err)
				} else {
					l.fail(bs[acked:], err)
				}
				return
			}
			if w.pos+need > w.seg.size { // cannot happen: checked by AppendAsync and Open
				l.fail(bs[acked:], fmt.Errorf("mmaplog: internal error: %d-byte batch does not fit segment %s", need, w.seg.name))
				return
			}
		}
		l.encode(&bs[i], now)
		if len(w.buf) >= maxWriteChunk {
			split = true
			if err := l.write(); err != nil {
				l.fail(bs[acked:], err)
				return
			}
		}
	}
	data := w.buf // the group's bytes, unless split; valid until the next encode
	if err := l.write(); err != nil {
		l.fail(bs[acked:], err)
		return
	}
	if l.opts.Sync == SyncAlways {
		var err error
		if j := l.opts.Journal; j != nil && !split && int64(len(data)) <= j.MaxGroup() {
			err = l.journalCommit(groupPos, data)
		} else {
			err = l.datasync()
		}
		if err == nil {
			err = l.checkActive(false)
		}
		if err != nil {
			l.fail(bs[acked:], err)
			return
		}
	}
	l.ack(bs[acked:])
	l.maybePrepare()
	if cap(w.buf) > 2*maxWriteChunk {
		w.buf = nil // a huge batch passed: do not keep its buffer
	}
	l.st.commits.Add(1)
	if g := uint64(len(bs)); g > l.st.maxGroup.Load() {
		l.st.maxGroup.Store(g)
	}
}

func (l *Log) fail(bs []batch, err error) {
	l.poison(err)
	failAll(bs, l.Err())
}

// encode appends the records of b to w.buf.
func (l *Log) encode(b *batch, now int64) {
	w := &l.w
	for j, p := range b.payloads {
		pos := w.pos + int64(len(w.buf))
		var flags uint8
		if j == len(b.payloads)-1 {
			flags = flagCommit
		}
		off := b.first + uint64(j)
		w.buf = appendRecord(w.buf, off, now, uint32(w.synced), flags, p)
		if w.lastIdx < 0 || pos-w.lastIdx >= indexEvery {
			w.seg.mu.Lock()
			w.seg.idx = append(w.seg.idx, indexEntry{offset: off, time: now, pos: pos})
			w.seg.mu.Unlock()
			w.lastIdx = pos
		}
	}
}

// ack publishes the batches written so far in the active segment: it
// advances the segment's readable end and the head, completes the waiters
// and wakes the tailers.
func (l *Log) ack(bs []batch) {
	if len(bs) == 0 {
		return
	}
	w := &l.w
	s := w.seg
	var n uint64
	for i := range bs {
		n += uint64(len(bs[i].payloads))
	}
	last := bs[len(bs)-1].first + uint64(len(bs[len(bs)-1].payloads)) - 1
	s.mu.Lock()
	if s.count == 0 {
		s.firstOff, s.firstTime = bs[0].first, w.lastTime
	}
	s.count += n
	s.lastOff, s.lastTime = last, w.lastTime
	s.mu.Unlock()
	s.end.Store(w.pos)
	l.st.bytes.Add(uint64(w.pos - w.acked))
	w.acked = w.pos
	l.st.records.Add(n)
	l.st.appends.Add(uint64(len(bs)))
	l.head.Store(last + 1)
	for i := range bs {
		bs[i].done(bs[i].first, nil)
	}
	l.notify(false)
}

// rotate continues in a new segment, named after first, taken from the
// background preallocator and grown if need bytes of records would not fit.
// A non-empty active segment (already durable) is sealed; an empty one (a
// new log's first segment, too small for the batch) is replaced by the
// rename, which is atomic.
//
// A segment that cannot be prepared or put in place returns an
// *UnavailableError: nothing was written and the active segment is
// unchanged, so the log need not be poisoned; the background goroutine
// keeps trying. Only a failed directory fsync poisons.
func (l *Log) rotate(first uint64, need int64) error {
	w := &l.w
	old := w.seg
	replace := w.pos == segHeaderSize
	if replace && old.first != first {
		return fmt.Errorf("mmaplog: internal error: empty segment %s does not start at %d", old.name, first)
	}
	name := segmentName(first)
	unavailable := func(err error) error { return &UnavailableError{Dir: l.dir, Segment: name, Err: err} }
	if !w.requested { // a batch that jumped past the half-way mark
		l.bg.request(w.nextSize, l.minSegment())
		w.requested = true
	}
	pa, err := l.bg.take()
	if err != nil {
		return unavailable(err) // still requested: the background goroutine retries
	}
	w.requested = false
	tmp := filepath.Join(l.dir, preallocName)
	size := pa.size
	// retry drops the prepared file and asks for one of at least want bytes.
	retry := func(want int64, err error) error {
		pa.f.Close()
		l.fs.Remove(tmp)
		l.bg.request(max(want, w.nextSize), want)
		w.requested = true
		return unavailable(err)
	}
	if segHeaderSize+need > size {
		grown := size
		for segHeaderSize+need > grown {
			grown *= 2
		}
		grown = min(grown, l.opts.SegmentSize)
		if err := vfs.GrowZeroed(pa.f, size, grown); err != nil {
			return retry(grown, fmt.Errorf("grow to %d bytes: %w", grown, err))
		}
		size = grown
	}
	if err := l.fs.Rename(tmp, filepath.Join(l.dir, name)); err != nil {
		return retry(size, fmt.Errorf("rename: %w", err))
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		pa.f.Close()
		return fmt.Errorf("mmaplog: sync directory after creating %s: %w", name, err)
	}
	if err := w.f.Close(); err != nil {
		l.log.Warn("mmaplog: close segment", "dir", l.dir, "segment", old.name, "err", err)
	}
	s := &segment{first: first, name: name, id: pa.id, size: size}
	s.end.Store(segHeaderSize)
	segs := append([]*segment(nil), *l.segs.Load()...)
	if replace {
		segs[len(segs)-1] = s
		l.rmu.Lock()
		l.retired = append(l.retired, old) // unmapped at Close: a cursor may hold its map
		l.rmu.Unlock()
	} else {
		segs = append(segs, s)
		l.st.segments.Add(1)
	}
	l.segs.Store(&segs)
	w.seg, w.f = s, pa.f
	w.pos, w.acked, w.synced, w.segSynced, w.lastIdx = segHeaderSize, segHeaderSize, segHeaderSize, segHeaderSize, -1
	w.nextSize = min(2*size, l.opts.SegmentSize)
	if !replace {
		l.bg.seal(old)
	}
	return nil
}

// minSegment is the smallest segment the background goroutine prepares
// when space runs short.
func (l *Log) minSegment() int64 { return min(firstSegmentSize, l.opts.SegmentSize) }

// retreat fails bs (the rest of the group being committed) and every batch
// queued after them with err, an *UnavailableError: none of them was
// written. Their offsets are given back (the next append gets bs[0].first),
// and Enqueue refuses with err until every done callback has returned, so
// that a caller that tracks offsets (chain) sees them in order: first the
// failures, then appends at the reused offsets.
func (l *Log) retreat(bs []batch, err error) {
	l.mu.Lock()
	queued := l.pending
	l.pending = nil
	l.next = bs[0].first
	l.refuse = err
	l.mu.Unlock()
	l.log.Warn("mmaplog: appends failed, log not poisoned", "dir", l.dir,
		"batches", len(bs)+len(queued), "first_offset", bs[0].first, "err", err)
	failAll(bs, err)
	failAll(queued, err)
	clear(queued)
	l.mu.Lock()
	l.refuse = nil
	l.mu.Unlock()
}

// maybePrepare asks the background goroutine for the next segment once the
// active one is half full: early enough that rotation never waits for it
// under a steady load, late enough that a small, idle log never makes one.
func (l *Log) maybePrepare() {
	w := &l.w
	if !w.requested && w.pos-segHeaderSize >= (w.seg.size-segHeaderSize)/2 {
		l.bg.request(w.nextSize, l.minSegment())
		w.requested = true
	}
}

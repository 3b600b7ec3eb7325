package mmaplog

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atedb/atedb/internal/vfs"
	"github.com/atedb/atedb/journal"
)

// Record is one record read from the log.
type Record struct {
	Offset  uint64
	Time    int64  // server time in Unix nanoseconds, non-decreasing along the log
	Payload []byte // aliases the read-only memory map; see Cursor.Next
}

// Log is one durable, segmented, append-only log in a directory. All methods
// are safe for concurrent use. Appends are committed by a single writer
// goroutine that groups every pending batch into one write and one
// fdatasync (group commit).
type Log struct {
	dir  string
	opts Options
	fs   vfs.FS
	log  *slog.Logger
	lock io.Closer

	// Append queue, guarded by mu.
	mu      sync.Mutex
	pending []batch
	next    uint64 // next offset to assign
	closing bool
	err     error // first write/sync failure, or corruption found at open
	refuse  error // while retreat fails batches: Enqueue refuses with it
	wake    chan struct{}
	// committing is held by whoever owns the writer state (w, jr): the
	// writer goroutine, or a Commit caller committing on its own goroutine.
	committing bool
	// lone: the previous group held at most one batch (Commit may commit
	// inline; the writer does not gather). Written under mu by the holder
	// of committing only.
	lone bool

	errv atomic.Pointer[error] // copy of err for lock-free readers

	head atomic.Uint64              // next offset to be acknowledged
	segs atomic.Pointer[[]*segment] // append-only list, replaced on rotation

	// nch is the channel Notify hands out, closed when head advances: nil
	// until Notify asks, &closedChan once the log is closed or poisoned.
	// Lock-free, so that idle tailers never contend with the writer.
	nch atomic.Pointer[chan struct{}]

	rmu     sync.Mutex // guards pins, retired and unmapping
	pins    int        // open cursors and SeekTime calls
	retired []*segment // replaced segments, unmapped at Close
	closed  atomic.Bool

	mark *headMark // the head mark found at Open, nil if none

	jg *journal.Group // this log's group for opts.Journal, reused (holder of committing only)

	w          writerState // owned by the holder of committing
	writerDone chan struct{}
	closeErr   error // set by the writer before writerDone is closed
	bg         *background

	st counters
}

type counters struct {
	records, bytes, appends, commits, syncs, writes, repairs, rebuilds, preallocs, maxGroup, journalCommits, inlineCommits atomic.Uint64
	segments                                                                                                               atomic.Int64
}

// Stats is a snapshot of a log's counters.
type Stats struct {
	Head     uint64 // next offset to be acknowledged
	Segments int    // segment files in the readable log
	Records  uint64 // acknowledged records in the log
	Bytes    int64  // bytes of acknowledged records on disk, headers and padding included
	Appends  uint64 // batches acknowledged since Open
	Commits  uint64 // group commits (one write round and, in SyncAlways, one fdatasync)
	Syncs    uint64 // fdatasync calls of the log's segments since Open
	// JournalCommits counts group commits made durable through the
	// journal (Options.Journal) instead of an fdatasync of the segment.
	JournalCommits uint64
	// InlineCommits counts group commits run by Commit on its caller's
	// goroutine instead of the writer goroutine.
	InlineCommits uint64
	Writes        uint64 // write calls since Open
	MaxGroup      uint64 // most batches committed by one group commit
	Repairs       uint64 // torn tails cut at Open
	IndexRebuilds uint64 // sealed-segment indexes rebuilt at Open
	Preallocs     uint64 // segment files preallocated since Open
}

// batch is one AppendAsync call waiting for the writer.
type batch struct {
	payloads [][]byte
	first    uint64
	done     func(first uint64, err error)
}

// Head returns the next offset to be acknowledged: the last durable offset
// plus one, or 0 for an empty log. Records below Head are readable.
func (l *Log) Head() uint64 { return l.head.Load() }

// Err returns the error that poisoned the log (a failed write or fdatasync,
// or corruption found by Open), or nil.
func (l *Log) Err() error {
	if p := l.errv.Load(); p != nil {
		return *p
	}
	return nil
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// Notify returns a channel that is closed the next time Head advances, or
// when the log is closed or poisoned. To wait for new records without
// missing one, take the channel before checking Head (or calling
// Cursor.Next), then wait on it.
func (l *Log) Notify() <-chan struct{} {
	for {
		if p := l.nch.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if l.nch.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// closedChan is what Notify returns once the log is closed or poisoned.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// notify wakes the tailers waiting on Notify; after a final notify (close
// or poison), Notify returns a closed channel. It costs one atomic load
// when nobody waits.
func (l *Log) notify(final bool) {
	if final {
		if p := l.nch.Swap(&closedChan); p != nil && p != &closedChan {
			close(*p)
		}
		return
	}
	p := l.nch.Load()
	if p == nil || p == &closedChan {
		return
	}
	if l.nch.CompareAndSwap(p, nil) {
		close(*p)
	}
}

// AppendAsync enqueues a batch of records and returns at once, without
// waiting for I/O. The records get the offsets first, first+1, ...,
// first+len(payloads)-1, assigned in call order. done is called exactly once,
// from the goroutine that commits the batch (the log's writer goroutine, or
// a Commit caller after Enqueue), when the whole batch is durable (per the
// sync mode) or has failed; a batch is never partly acknowledged, and after a
// crash recovery keeps it whole or not at all. done must not block and must
// not call Append, Commit or Close (AppendAsync and Enqueue are fine). The
// log reads the payloads until done is called: the caller must not modify
// them before.
//
// If AppendAsync returns an error, done is never called. Errors:
// ErrEmptyBatch, ErrRecordTooLarge, ErrBatchTooLarge, ErrClosed, the error
// that poisoned the log, or an *UnavailableError while batches that needed
// an unavailable segment are being failed. done gets nil, the poisoning
// error, or an *UnavailableError (retryable: the log is not poisoned and
// the batch's offsets are assigned again to later appends).
func (l *Log) AppendAsync(payloads [][]byte, done func(first uint64, err error)) (first uint64, err error) {
	first, err = l.Enqueue(payloads, done)
	if err == nil {
		l.wakeWriter()
	}
	return first, err
}

// Enqueue is AppendAsync without starting the commit: the caller must call
// Commit afterwards (typically once it has released the locks its done
// callbacks take), which commits on the caller's goroutine when the log is
// quiet. Until some Commit, AppendAsync or Close, the batch only waits.
func (l *Log) Enqueue(payloads [][]byte, done func(first uint64, err error)) (first uint64, err error) {
	if len(payloads) == 0 {
		return 0, ErrEmptyBatch
	}
	var total int64
	for i, p := range payloads {
		if len(p) > l.opts.MaxRecordSize {
			return 0, fmt.Errorf("%w: record %d is %d bytes (max %d)", ErrRecordTooLarge, i, len(p), l.opts.MaxRecordSize)
		}
		total += recordSize(len(p))
	}
	if total > l.opts.SegmentSize-segHeaderSize {
		return 0, fmt.Errorf("%w: %d bytes (segment holds %d)", ErrBatchTooLarge, total, l.opts.SegmentSize-segHeaderSize)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return 0, l.err
	}
	if l.closing {
		return 0, ErrClosed
	}
	if l.refuse != nil {
		return 0, l.refuse
	}
	first = l.next
	l.next += uint64(len(payloads))
	l.pending = append(l.pending, batch{payloads: payloads, first: first, done: done})
	return first, nil
}

// waiter turns AppendAsync into a blocking call without allocating.
type waiter struct {
	ch   chan error
	done func(uint64, error)
}

var waiterPool = sync.Pool{New: func() any {
	w := &waiter{ch: make(chan error, 1)}
	w.done = func(_ uint64, err error) { w.ch <- err }
	return w
}}

// Append appends a batch and waits until it is durable (per the sync mode).
// It returns the offset of the first record; the others follow densely. It
// returns the same errors as AppendAsync, or the write/sync error that
// poisoned the log while the batch was pending; then none of the batch was
// acknowledged.
func (l *Log) Append(payloads [][]byte) (first uint64, err error) {
	w := waiterPool.Get().(*waiter)
	first, err = l.AppendAsync(payloads, w.done)
	if err == nil {
		err = <-w.ch
	}
	waiterPool.Put(w)
	return first, err
}

// Stats returns a snapshot of the log's counters.
func (l *Log) Stats() Stats {
	return Stats{
		Head:           l.head.Load(),
		Segments:       int(l.st.segments.Load()),
		Records:        l.st.records.Load(),
		Bytes:          int64(l.st.bytes.Load()),
		Appends:        l.st.appends.Load(),
		Commits:        l.st.commits.Load(),
		Syncs:          l.st.syncs.Load(),
		JournalCommits: l.st.journalCommits.Load(),
		InlineCommits:  l.st.inlineCommits.Load(),
		Writes:         l.st.writes.Load(),
		MaxGroup:       l.st.maxGroup.Load(),
		Repairs:        l.st.repairs.Load(),
		IndexRebuilds:  l.st.rebuilds.Load(),
		Preallocs:      l.st.preallocs.Load(),
	}
}

// poison records the first write-path failure: every pending and later
// append fails with it and nothing more is acknowledged.
func (l *Log) poison(err error) {
	l.mu.Lock()
	first := l.err == nil
	if first {
		l.err = err
		l.errv.Store(&err)
	}
	l.mu.Unlock()
	if first {
		l.log.Error("mmaplog: log poisoned; no more appends", "dir", l.dir, "err", err)
		l.notify(true)
	}
}

// Close flushes and acknowledges every pending append, makes it durable,
// writes pending indexes and closes the files. Memory maps are released once
// every Cursor is closed; payloads returned by a cursor stay valid until
// then. Later calls return ErrClosed. Close returns the first error of its
// own final flush or sync (a poisoned log's error is returned by Err).
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closing = true
	l.mu.Unlock()
	l.wakeWriter()
	<-l.writerDone
	err := l.closeErr
	if err == nil {
		err = l.markClean()
	}
	if l.bg != nil {
		l.bg.stop()
	}
	l.notify(true)
	if l.lock != nil {
		if cerr := l.lock.Close(); err == nil {
			err = cerr
		}
	}
	l.rmu.Lock()
	l.closed.Store(true)
	if l.pins == 0 {
		l.unmapAllLocked()
	}
	l.rmu.Unlock()
	return err
}

func (l *Log) unmapAllLocked() {
	for _, s := range append(*l.segs.Load(), l.retired...) {
		if err := s.unmap(); err != nil {
			l.log.Warn("mmaplog: unmap failed", "dir", l.dir, "segment", s.name, "err", err)
		}
	}
}

// slowSync is the fdatasync duration above which a warning is logged.
const slowSync = time.Second

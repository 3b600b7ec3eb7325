// Package memlog is an in-memory [chain.Log] for tests: it keeps records in
// a slice, makes them "durable" from a writer goroutine in batches (group
// commit, as the real log does), and lets a test hold durability back,
// poison the log, or count what it did.
//
//	l := memlog.New(memlog.Options{})
//	first, err := l.Enqueue([][]byte{[]byte("e")}, func(first uint64, err error) { ... })
//	l.Commit(nil)
//
// Records start at offset 0. Nothing is persisted.
package memlog

import (
	"errors"
	"sync"
	"time"

	"github.com/atedb/atedb/chain"
)

// ErrClosed is returned by every call on a closed Log.
var ErrClosed = errors.New("memlog: closed")

// Options configure a Log. The zero value is ready to use.
type Options struct {
	// Hold makes appends wait for a call to Release before they become
	// durable, so tests can observe in-flight state.
	Hold bool
	// Delay is slept by the writer goroutine before each group commit.
	Delay time.Duration
	// Now returns the server time stamped on records (default time.Now).
	Now func() time.Time
}

type pending struct {
	first uint64
	n     int
	done  func(uint64, error)
}

// Log is an in-memory chain.Log. It is safe for concurrent use.
type Log struct {
	opts Options

	mu       sync.Mutex
	recs     []chain.Record
	head     uint64
	notify   chan struct{}
	err      error
	closed   bool
	queue    []pending
	released int // how many queued batches may become durable (Hold mode)
	poison   error
	commits  int
	kick     chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
}

var _ chain.Log = (*Log)(nil)

// New returns an empty Log and starts its writer goroutine; Close stops it.
func New(opts Options) *Log {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Log{
		opts:   opts,
		notify: make(chan struct{}),
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	l.wg.Add(1)
	go l.writer()
	return l
}

// AppendAsync is Enqueue followed by Commit(nil).
func (l *Log) AppendAsync(payloads [][]byte, done func(first uint64, err error)) (uint64, error) {
	first, err := l.Enqueue(payloads, done)
	if err == nil {
		l.Commit(nil)
	}
	return first, err
}

// Commit implements chain.Log: the writer goroutine commits what Enqueue
// queued (memlog never commits on the caller's goroutine).
func (l *Log) Commit(func() bool) {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Enqueue implements chain.Log. It copies payloads before returning; the
// batch waits for Commit.
func (l *Log) Enqueue(payloads [][]byte, done func(first uint64, err error)) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if l.err != nil {
		return 0, l.err
	}
	first := uint64(len(l.recs))
	now := l.opts.Now().UnixNano()
	for i, p := range payloads {
		l.recs = append(l.recs, chain.Record{Offset: first + uint64(i), Time: now, Payload: append([]byte(nil), p...)})
	}
	l.queue = append(l.queue, pending{first: first, n: len(payloads), done: done})
	return first, nil
}

// Release lets n more held batches become durable (Hold mode); n < 0
// releases every batch from now on.
func (l *Log) Release(n int) {
	l.mu.Lock()
	if n < 0 {
		l.opts.Hold = false
	} else {
		l.released += n
	}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Poison makes the next group commit fail with err, as a failed fsync does:
// the batches in it and every later call fail with err.
func (l *Log) Poison(err error) {
	l.mu.Lock()
	l.poison = err
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Pending returns how many appended batches are not yet durable.
func (l *Log) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}

// Commits returns how many group commits the writer has done.
func (l *Log) Commits() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.commits
}

func (l *Log) writer() {
	defer l.wg.Done()
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		}
		if l.opts.Delay > 0 {
			time.Sleep(l.opts.Delay)
		}
		l.flush()
	}
}

// flush makes the queued (and, in Hold mode, released) batches durable or
// fails them, then calls their done functions in order.
func (l *Log) flush() {
	l.mu.Lock()
	n := len(l.queue)
	if l.opts.Hold && l.poison == nil {
		n = min(n, l.released)
		l.released -= n
	}
	batch := append([]pending(nil), l.queue[:n]...)
	l.queue = l.queue[n:]
	var err error
	if l.poison != nil && (len(batch) > 0 || len(l.queue) > 0) {
		batch = append(batch, l.queue...)
		l.queue = nil
		err, l.err, l.poison = l.poison, l.poison, nil
		l.recs = l.recs[:l.head]
	} else if len(batch) > 0 {
		last := batch[len(batch)-1]
		l.head = last.first + uint64(last.n)
		l.commits++
	}
	if len(batch) > 0 {
		close(l.notify)
		l.notify = make(chan struct{})
	}
	l.mu.Unlock()
	for _, p := range batch {
		p.done(p.first, err)
	}
}

// Head implements chain.Log.
func (l *Log) Head() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// Notify implements chain.Log.
func (l *Log) Notify() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.notify
}

// SeekTime implements chain.Log.
func (l *Log) SeekTime(t int64) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	for _, r := range l.recs[:l.head] {
		if r.Time >= t {
			return r.Offset, nil
		}
	}
	return l.head, nil
}

// Err implements chain.Log.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close implements chain.Log: it fails batches still held back and stops
// the writer.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.opts.Hold = false
	l.mu.Unlock()
	l.flush()
	l.mu.Lock()
	l.closed = true
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()
	return nil
}

// NewCursor implements chain.Log.
func (l *Log) NewCursor(from uint64) (chain.Cursor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if from > l.head {
		return nil, errors.New("memlog: cursor beyond head")
	}
	return &cursor{l: l, next: from}, nil
}

type cursor struct {
	l    *Log
	next uint64
}

func (c *cursor) Next(dst []chain.Record, maxBytes int) ([]chain.Record, error) {
	dst = dst[:0]
	limit := cap(dst)
	if limit == 0 {
		limit = 1
	}
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	if c.l.closed {
		return dst, ErrClosed
	}
	size := 0
	for c.next < c.l.head && len(dst) < limit {
		r := c.l.recs[c.next]
		if len(dst) > 0 && size+len(r.Payload) > maxBytes {
			break
		}
		size += len(r.Payload)
		dst = append(dst, r)
		c.next++
	}
	return dst, nil
}

func (c *cursor) Close() error { return nil }

package chain

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atedb/atedb/proto"
)

// Validator is the hook through which the trust work checks every batch
// before it is appended. It is called with the chain's append lock held,
// in append order, after the structural checks, the duplicate check and
// the expected-offset condition have passed, so it sees batches exactly in
// the order they will be stored. It must be quick and must not block on I/O.
// events and their slices are valid only until Validate returns (they are
// recycled for the next append): copy what must be kept.
// To refuse a batch it returns a *RejectError naming the failing event; any
// other error refuses the batch as a whole. A nil Validator accepts all.
type Validator interface {
	Validate(key Key, w *Writer, events []Event) error
}

// Writer is the append state of one writer: one channel of one connection.
// Pipelined batches of a writer commit in the order they were given to
// [Chain.Append]; once one of them fails, every later one fails with
// CodeAborted until [Writer.Reset], so a writer's order is never broken.
// A Writer is safe for concurrent use; the zero value is not usable, call
// [NewWriter].
type Writer struct {
	Owner *Owner // the connection; lock owner and (later) proven keys

	// idle, if set, reports whether the goroutine that calls Append for
	// this writer has nothing else to do (see NewIdleWriter).
	idle func() bool

	failed atomic.Pointer[writerFailure]

	// Results are delivered in the order the batches were given, whether
	// they were refused at once or confirmed later by the log.
	mu        sync.Mutex
	issued    uint64
	delivered uint64
	ready     map[uint64]readyResult // results waiting for earlier ones
	draining  bool
}

// readyResult is a result that arrived before an earlier one of its writer.
type readyResult struct {
	done func(Result)
	r    Result
}

// ticket reserves the next place in w's delivery order.
func (w *Writer) ticket() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.issued
	w.issued++
	return t
}

// complete delivers r to done in ticket order: at once if every earlier
// ticket has been delivered (the usual case: the log confirms in order),
// otherwise once they have. Exactly one goroutine delivers at a time; the
// others only hand over.
func (w *Writer) complete(t uint64, done func(Result), r Result) {
	w.mu.Lock()
	if w.draining || t != w.delivered {
		if w.ready == nil {
			w.ready = make(map[uint64]readyResult)
		}
		w.ready[t] = readyResult{done: done, r: r}
		w.mu.Unlock()
		return // the goroutine draining, or the one completing ticket delivered, delivers it
	}
	w.draining = true
	w.delivered++
	w.mu.Unlock()
	done(r)
	w.mu.Lock()
	for len(w.ready) > 0 {
		next, ok := w.ready[w.delivered]
		if !ok {
			break
		}
		delete(w.ready, w.delivered)
		w.delivered++
		w.mu.Unlock()
		next.done(next.r)
		w.mu.Lock()
	}
	w.draining = false
	w.mu.Unlock()
}

type writerFailure struct {
	seq    uint64 // the writer's sequence number of the failed batch
	reason string
}

// NewWriter returns a Writer owned by o.
func NewWriter(o *Owner) *Writer { return &Writer{Owner: o} }

// NewIdleWriter returns a Writer owned by o whose caller can tell, at each
// Append, whether it has nothing else to do: idle is called on the
// appending goroutine (netio passes "no other request is buffered on this
// connection"). The chain's log may then commit the batch on that
// goroutine when the log is quiet, so that a lone appender skips the
// hand-off to the log's writer goroutine and back; whether it does is the
// log's decision (see Log.Commit). idle must be cheap and must not block.
func NewIdleWriter(o *Owner, idle func() bool) *Writer { return &Writer{Owner: o, idle: idle} }

// Failed reports whether a batch of w has failed since the last Reset.
func (w *Writer) Failed() bool { return w.failed.Load() != nil }

// Reset clears w's failure so that the batches given to Append from now
// on are handled normally again. Batches already given are not affected.
// The caller decides when the client has seen the failure: netio resets
// when an Append carries the restart flag (proto.Append.Restart).
func (w *Writer) Reset() { w.failed.Store(nil) }

func (w *Writer) fail(seq uint64, reason string) {
	w.failed.CompareAndSwap(nil, &writerFailure{seq: seq, reason: reason})
}

// Owner identifies a connection: it owns locks and writers. Compare owners
// by pointer. The zero value is ready to use.
type Owner struct {
	// Name is used in log lines only (for example the remote address).
	Name string
}

// AppendRequest is one batch to append.
type AppendRequest struct {
	// Events are encoded events (proto's canonical encoding). They are
	// read during Append and copied by the log; the caller may reuse them
	// once Append returns.
	Events [][]byte
	// Expect, when HasExpect is set, is the offset the caller expects the
	// batch's first event to get; if the chain's next offset differs the
	// batch is refused with CodeConflict and the current next offset.
	Expect    uint64
	HasExpect bool
	// Seq is the writer's sequence number for this batch (for example the
	// commit id); it only appears in the reason of later aborted batches.
	Seq uint64
}

// Result is the outcome of one [Chain.Append]. If Err is nil the batch's
// events have offsets First, First+1, ... First+Count-1 and are durable.
type Result struct {
	First     uint64
	Count     int
	Duplicate bool // the batch was a retry of stored events: First is their original offset
	Err       *CommitError
}

// batch is an appended batch that is not durable yet. It carries
// everything its confirmation needs, so that an append costs few
// allocations.
type batch struct {
	c       *Chain
	first   uint64
	n       int
	w       *Writer
	ticket  uint64 // its place in w's delivery order
	seq     uint64 // AppendRequest.Seq
	done    func(Result)
	waiters []func(error) // duplicate retries and barriers waiting for this batch

	payloads [][]byte // handed to the log: copies of the events, in one block
	one      [1][]byte
}

// logDone is the log's done callback.
func (b *batch) logDone(first uint64, err error) { b.c.committed(b, first, err) }

// Chain is one open chain: its log, its write path, its subscribers'
// source and its locks. Chains are obtained from a [Registry]; all methods
// are safe for concurrent use.
type Chain struct {
	key Key
	log Log
	cfg *Config

	// mu serializes appends: validation under the lock, dedup window,
	// condition, offset assignment. Lock order: mu, then pmu.
	mu    sync.Mutex
	next  uint64 // next offset the log will assign
	dedup dedupWindow
	// dedupLoaded: the window holds the stored tail (loadDedupLocked ran).
	dedupLoaded bool
	closed      bool

	// pmu guards the in-flight batches and the poisoned state. It is never
	// held while calling into the log, so the log's done callbacks (which
	// take it) cannot deadlock with an AppendAsync that waits for the log.
	pmu      sync.Mutex
	pending  []*batch // in offset order from phead; confirmed from the front
	phead    int
	poisoned error
	inflight sync.WaitGroup

	lockMu sync.Mutex
	locks  map[uint64]*Owner
	users  map[*Owner]int // handles per owner, to release locks when the last one goes

	subs atomic.Int64 // open subscriptions, for stats
}

func openChain(key Key, log Log, cfg *Config) (*Chain, error) {
	c := &Chain{
		key:   key,
		log:   log,
		cfg:   cfg,
		next:  log.Head(),
		locks: make(map[uint64]*Owner),
		users: make(map[*Owner]int),
	}
	c.dedup.init(cfg.DedupWindow)
	return c, nil
}

// loadDedupLocked fills the duplicate window from the last DedupWindow
// stored events, so that a retry after a server restart is still
// recognised. It runs before the chain's first append rather than at open:
// hashing up to DedupWindow events (tens of MiB) would otherwise delay every
// open, also for readers that never append. c.mu must be held.
//
// A stored event that cannot be read (a corrupt record: the log reports
// damage in the middle of its history only when a reader reaches it) does
// not block appends: the window is an aid to recognise retries, not part
// of what the write path needs. The read resumes after the damage (see
// loadDedupFrom), the events left out are logged with their offsets, and
// a retry of one of them would be stored again rather than recognised.
// Readers still get the records before the damage, then the log's error
// naming the corrupt offset.
func (c *Chain) loadDedupLocked() error {
	head := c.next
	from := uint64(0)
	if w := uint64(c.cfg.DedupWindow); head > w {
		from = head - w
	}
	skipped := 0
	for from < head {
		bad, err := c.loadDedupFrom(from, head, &skipped)
		if err == nil {
			break
		}
		if bad >= head || c.log.Err() != nil {
			return fmt.Errorf("chain %s: read dedup window: %w", c.key, err)
		}
		// Resume past the damage: cursors start from a sparse index, so
		// the first start that reads is found by doubling the step.
		resumed := false
		for step := uint64(1); bad+step < head; step *= 2 {
			if c.readable(bad + step) {
				c.cfg.Logger.Warn("stored events that cannot be read were left out of the duplicate window; retries of them will not be recognised",
					"chain", c.key.String(), "from_offset", bad, "to_offset", bad+step-1, "err", err)
				from, resumed = bad+step, true
				break
			}
		}
		if !resumed {
			c.cfg.Logger.Warn("stored events that cannot be read were left out of the duplicate window; retries of them will not be recognised",
				"chain", c.key.String(), "from_offset", bad, "to_offset", head-1, "err", err)
			break
		}
	}
	if skipped > 0 {
		c.cfg.Logger.Warn("stored events that do not decode were left out of the duplicate window",
			"chain", c.key.String(), "count", skipped)
	}
	return nil
}

// loadDedupFrom adds the events at offsets [from, to) to the duplicate
// window. On a read error it returns the offset it could not read.
func (c *Chain) loadDedupFrom(from, to uint64, skipped *int) (uint64, error) {
	cur, err := c.log.NewCursor(from)
	if err != nil {
		return to, err // not damage: give up
	}
	defer cur.Close()
	buf := make([]Record, 0, 256)
	next := from
	for next < to {
		recs, rerr := cur.Next(buf, 1<<20) // records before the damage come with its error
		if rerr == nil && len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Offset >= to {
				return next, nil
			}
			next = r.Offset + 1
			h, err := proto.EventHash(r.Payload)
			if err != nil {
				*skipped++
				continue
			}
			c.dedup.add(h, r.Offset)
		}
		if rerr != nil {
			return next, rerr
		}
	}
	return next, nil
}

// readable reports whether a cursor starting at off reads a record.
func (c *Chain) readable(off uint64) bool {
	cur, err := c.log.NewCursor(off)
	if err != nil {
		return false
	}
	defer cur.Close()
	_, err = cur.Next(make([]Record, 0, 1), 0)
	return err == nil
}

// Key returns the chain's key.
func (c *Chain) Key() Key { return c.key }

// Head returns the next offset to be acknowledged: every event below it is
// durable and visible to subscribers.
func (c *Chain) Head() uint64 { return c.log.Head() }

// Err returns the error that poisoned the chain's log, or nil.
func (c *Chain) Err() error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.poisoned
}

// Append validates req and appends it as one atomic batch. done is called
// exactly once with the outcome: either before Append returns (refusals,
// retries of durable events, and batches the log committed on the
// caller's goroutine, see NewIdleWriter), or later from the log's
// goroutine once the batch is durable or has failed. done must not block. The results of one
// Writer's batches are delivered in the order the batches were given to
// Append (a refusal waits for the answers to the batches before it), and
// batches given one after the other get increasing offsets.
func (c *Chain) Append(w *Writer, req AppendRequest, done func(Result)) {
	t := w.ticket()
	if f := w.failed.Load(); f != nil {
		w.complete(t, done, Result{Err: &CommitError{Code: CodeAborted, Index: -1, Head: c.nextOffset(),
			Reason: fmt.Sprintf("an earlier batch (%d) of this writer failed: %s", f.seq, f.reason)}})
		return
	}
	res, wait, queued := c.append(w, t, req, done)
	switch {
	case queued:
		// c.committed reports the result, maybe from here: c.mu is free.
		c.log.Commit(w.idle)
	case res.Err != nil:
		w.fail(req.Seq, res.Err.Reason)
		w.complete(t, done, res)
	case wait >= 0:
		c.waitFor(uint64(wait), res, w, t, req.Seq, done)
	default:
		w.complete(t, done, res)
	}
}

func (c *Chain) nextOffset() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

// append checks req and, if it passes, hands it to the log. It returns a
// final result (wait < 0, !queued), a result to deliver once every offset
// below wait is durable (wait >= 0), or queued when the batch is in the log
// and its done callback will report.
func (c *Chain) append(w *Writer, t uint64, req AppendRequest, done func(Result)) (res Result, wait int64, queued bool) {
	refuse := func(code Code, index int, head uint64, reason string) (Result, int64, bool) {
		return Result{Err: &CommitError{Code: code, Index: index, Head: head, Reason: reason}}, -1, false
	}
	// Refusals before c.mu is taken still carry the chain's next offset:
	// a client reads Head on every CommitError, whatever the code.
	if len(req.Events) > c.cfg.MaxBatchEvents {
		return refuse(CodeTooLarge, -1, c.nextOffset(), fmt.Sprintf("batch of %d events, at most %d allowed", len(req.Events), c.cfg.MaxBatchEvents))
	}
	scratch := getEvents(len(req.Events))
	defer putEvents(scratch)
	events := scratch.ev
	limit := c.cfg.Now().Add(c.cfg.MaxClockSkew)
	size := 0
	for i, p := range req.Events {
		size += len(p)
		ev := &events[i]
		if err := inspect(p, ev); err != nil {
			return refuse(CodeInvalid, i, c.nextOffset(), err.Error())
		}
		if t, ok := ev.Time(); ok && t.After(limit) {
			return refuse(CodeFuture, i, c.nextOffset(), fmt.Sprintf("client timestamp %s is more than %s ahead of the server clock",
				t.UTC().Format(time.RFC3339Nano), c.cfg.MaxClockSkew))
		}
		for j := range i {
			if events[j].Hash == ev.Hash {
				return refuse(CodeDuplicate, i, c.nextOffset(), fmt.Sprintf("same event as event %d of the batch", j))
			}
		}
	}
	if size > c.cfg.MaxBatchBytes {
		return refuse(CodeTooLarge, -1, c.nextOffset(), fmt.Sprintf("batch of %d bytes, at most %d allowed", size, c.cfg.MaxBatchBytes))
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return refuse(CodeClosed, -1, c.next, "chain is closing")
	}
	if err := c.Err(); err != nil {
		return refuse(CodeStorage, -1, c.next, "log failed: "+err.Error())
	}
	if !c.dedupLoaded {
		if err := c.loadDedupLocked(); err != nil {
			return refuse(CodeStorage, -1, c.next, err.Error())
		}
		c.dedupLoaded = true
	}
	// A batch whose every event is already stored, at consecutive offsets
	// in the same order, is a retry: answer with the original offsets once
	// they are durable. A batch mixing stored and new events is refused.
	if len(events) > 0 {
		first, firstDup, exact := uint64(0), -1, true
		for i, ev := range events {
			off, ok := c.dedup.lookup(ev.Hash)
			if !ok {
				exact = false
				continue
			}
			if firstDup < 0 {
				firstDup = i
				first = off - uint64(i)
			}
			if i < firstDup || off != first+uint64(i) {
				exact = false
			}
		}
		switch {
		case firstDup == 0 && exact:
			return Result{First: first, Count: len(events), Duplicate: true}, int64(first + uint64(len(events))), false
		case firstDup >= 0:
			off, _ := c.dedup.lookup(events[firstDup].Hash)
			return refuse(CodeDuplicate, firstDup, c.next, fmt.Sprintf(
				"event already stored at offset %d (a batch must be entirely new or an exact retry)", off))
		}
	}
	if req.HasExpect && req.Expect != c.next {
		return refuse(CodeConflict, -1, c.next, fmt.Sprintf(
			"expected next offset %d but the chain's next offset is %d", req.Expect, c.next))
	}
	if c.cfg.Validator != nil {
		if err := c.cfg.Validator.Validate(c.key, w, events); err != nil {
			if re, ok := errors.AsType[*RejectError](err); ok {
				return refuse(CodeRejected, re.Index, c.next, re.Reason)
			}
			return refuse(CodeRejected, -1, c.next, err.Error())
		}
	}
	if len(events) == 0 {
		// A barrier: confirmed once everything appended before it is durable.
		return Result{First: c.next}, int64(c.next), false
	}

	b := &batch{c: c, first: c.next, n: len(events), w: w, ticket: t, seq: req.Seq, done: done}
	// The log reads the payloads until the batch is durable, but they
	// alias the caller's (reused) read buffer: copy them, into one block.
	block := make([]byte, 0, size)
	b.payloads = b.one[:0]
	if len(events) > len(b.one) {
		b.payloads = make([][]byte, 0, len(events))
	}
	for i := range events {
		start := len(block)
		block = append(block, events[i].Payload...)
		b.payloads = append(b.payloads, block[start:len(block):len(block)])
	}
	c.pmu.Lock()
	c.pending = append(c.pending, b)
	c.pmu.Unlock()
	c.inflight.Add(1)
	first, err := c.log.Enqueue(b.payloads, b.logDone) // Append calls Commit once c.mu is released
	if err != nil {
		c.inflight.Done()
		c.pmu.Lock()
		c.removePendingLocked(b)
		poisoned := c.log.Err() != nil
		if poisoned && c.poisoned == nil {
			c.poisoned = c.log.Err()
		}
		c.pmu.Unlock()
		switch {
		case poisoned:
			return refuse(CodeStorage, -1, c.next, "log failed: "+err.Error())
		case temporary(err):
			// The log is failing the batches queued before this one
			// and gives their offsets back (see committed).
			return refuse(CodeUnavailable, -1, c.next, "log temporarily unavailable, retry later: "+err.Error())
		}
		// Refused by the log without harm (a size limit of the log
		// that the chain's own limits should have caught first).
		return refuse(CodeStorage, -1, c.next, "log refused the batch: "+err.Error())
	}
	if first != b.first {
		// Someone else appended to this log: offsets can no longer be
		// predicted, so stop accepting rather than confirm wrong ones.
		c.pmu.Lock()
		b.first = first
		if c.poisoned == nil {
			c.poisoned = fmt.Errorf("log assigned offset %d where the chain expected %d", first, c.next)
		}
		c.pmu.Unlock()
		c.cfg.Logger.Error("log offsets diverged from the chain's", "chain", c.key.String(), "got", first, "want", c.next)
	}
	for i := range events {
		c.dedup.add(events[i].Hash, first+uint64(i))
	}
	c.next = first + uint64(len(events))
	return Result{}, -1, true
}

// committed is the log's done callback for b: it answers b, then the
// retries and barriers that waited for it.
//
// A retryable failure (see temporary) does not poison the chain: the log
// failed b and every batch queued after it, gave their offsets back and
// refuses new batches until all their callbacks have returned, so b's
// callback can rewind the chain's next offset and forget b's events in the
// duplicate window before any later append is assigned an offset.
func (c *Chain) committed(b *batch, first uint64, err error) {
	temp := err != nil && temporary(err)
	if temp {
		c.mu.Lock()
		c.next = min(c.next, b.first)
		c.dedup.truncate(b.first)
		c.mu.Unlock()
	}
	c.pmu.Lock()
	if err != nil && !temp && c.poisoned == nil {
		c.poisoned = err
	}
	if err == nil && first != b.first && c.poisoned == nil {
		c.poisoned = fmt.Errorf("log confirmed offset %d where the chain expected %d", first, b.first)
	}
	c.removePendingLocked(b)
	waiters := b.waiters
	b.waiters = nil
	c.pmu.Unlock()
	b.payloads, b.one[0] = nil, nil // the log is done with them
	switch {
	case temp:
		c.cfg.Logger.Warn("append failed; it may be retried", "chain", c.key.String(), "offset", b.first, "err", err)
	case err != nil:
		c.cfg.Logger.Error("append failed; the chain accepts no more writes", "chain", c.key.String(), "err", err)
	}
	if err != nil {
		ce := storageError(err, b.first)
		b.w.fail(b.seq, ce.Reason)
		b.w.complete(b.ticket, b.done, Result{Err: ce})
	} else {
		b.w.complete(b.ticket, b.done, Result{First: b.first, Count: b.n})
	}
	for _, f := range waiters {
		f(err)
	}
	c.inflight.Done()
}

// removePendingLocked takes b out of the in-flight list: from the front
// in O(1) in the usual case (the log confirms in offset order).
func (c *Chain) removePendingLocked(b *batch) {
	if c.phead < len(c.pending) && c.pending[c.phead] == b {
		c.pending[c.phead] = nil
		c.phead++
		switch {
		case c.phead == len(c.pending):
			c.pending, c.phead = c.pending[:0], 0
		case c.phead >= 1024 && 2*c.phead >= len(c.pending):
			n := copy(c.pending, c.pending[c.phead:])
			clear(c.pending[n:])
			c.pending, c.phead = c.pending[:n], 0
		}
		return
	}
	for i := c.phead; i < len(c.pending); i++ {
		if c.pending[i] == b {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			return
		}
	}
}

// waitFor delivers res (ticket t of w) once every offset below end is
// durable.
func (c *Chain) waitFor(end uint64, res Result, w *Writer, t, seq uint64, done func(Result)) {
	deliver := func(err error) {
		if err != nil {
			ce := storageError(err, end)
			w.fail(seq, ce.Reason)
			w.complete(t, done, Result{Err: ce})
			return
		}
		w.complete(t, done, res)
	}
	c.pmu.Lock()
	if c.poisoned != nil {
		err := c.poisoned
		c.pmu.Unlock()
		deliver(err)
		return
	}
	// The batch holding offset end-1, if it is still in flight.
	for _, b := range c.pending[c.phead:] {
		if end > b.first && end <= b.first+uint64(b.n) {
			b.waiters = append(b.waiters, deliver)
			c.pmu.Unlock()
			return
		}
	}
	c.pmu.Unlock()
	deliver(nil)
}

// eventScratch is the per-append scratch of decoded events, recycled
// through eventsPool.
type eventScratch struct{ ev []Event }

var eventsPool = sync.Pool{New: func() any { return new(eventScratch) }}

// maxPooledEvents bounds the scratch kept in eventsPool.
const maxPooledEvents = 256

// getEvents returns scratch holding n zeroed events for one append.
func getEvents(n int) *eventScratch {
	s := eventsPool.Get().(*eventScratch)
	if cap(s.ev) < n {
		s.ev = make([]Event, n)
	}
	s.ev = s.ev[:n]
	return s
}

// putEvents recycles s once the append no longer reads its events (the
// validator hook sees them only during Validate).
func putEvents(s *eventScratch) {
	clear(s.ev) // drop references to payloads; zero for the next use
	if cap(s.ev) > maxPooledEvents {
		s.ev = nil
	}
	s.ev = s.ev[:0]
	eventsPool.Put(s)
}

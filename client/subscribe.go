package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atedb/atedb/proto"
)

// SubscribeOptions says which events a [Subscription] delivers.
type SubscribeOptions struct {
	// History replays stored events, starting at offset From, or, when
	// FromTime is not zero, at the first event stored at or after that
	// server time. Without History, From and FromTime must be zero.
	History  bool
	From     uint64
	FromTime time.Time
	// Live delivers events confirmed after the history, as they are
	// confirmed. Without Live, the subscription ends (io.EOF) after the
	// last event that was stored when it started. At least one of History
	// and Live must be set.
	Live bool
	// BufferBytes bounds the events buffered for a consumer that reads
	// slower than the server sends (default from [WithSubscribeBuffer]).
	// When the buffer is full the client pauses the server's stream and
	// resumes it, from the next offset, once the consumer has read half of
	// it: memory stays bounded and no event is lost or repeated.
	BufferBytes int
	// ReuseBuffers recycles the blocks that hold received events instead
	// of allocating one per Events frame, for consumers that handle each
	// event as it comes: an [Event]'s byte slices (Raw, Data and the other
	// fields) then stay valid only until the next call to Next (the next
	// iteration of Events) or Close; keep an event with [Event.Clone].
	// Up to half of BufferBytes of emptied blocks are kept for reuse. A
	// replay then makes no garbage per event (measured: about 1.8 times
	// the events per second of the default on a 2-core machine, where
	// the default's per-frame blocks keep the garbage collector busy).
	ReuseBuffers bool
}

// Event is one stored event as delivered by a [Subscription]: its offset
// in the chain, the server time at which it was stored, and the decoded
// event (embedded, so ev.Data and ev.DataKey work).
//
// Its byte slices (Raw, Data and the other fields) stay valid and are
// never written to, but they are not copied for each event: they point
// into one block holding the events that came in the same Events frame
// (at most a frame, 8 MiB by default), and the block stays allocated as
// long as any of its events is referenced. To keep a few events of a
// large replay for long, copy what you keep ([Event.Clone]). With
// [SubscribeOptions.ReuseBuffers] the block is recycled instead, and the
// slices are valid only until the subscription's next Next.
type Event struct {
	Offset uint64
	Time   time.Time
	proto.Event
	// Raw is the event's canonical encoding, as stored.
	Raw []byte
}

// Clone returns a copy of ev that shares no memory with the
// subscription's buffers, to keep an event beyond the validity of the
// original's slices.
func (ev Event) Clone() (Event, error) {
	c := Event{Offset: ev.Offset, Time: ev.Time, Raw: bytes.Clone(ev.Raw)}
	if err := c.Event.Decode(c.Raw); err != nil {
		return Event{}, err
	}
	return c, nil
}

// subState is where a subscription stands with the server.
type subState uint8

const (
	subIdle     subState = iota // nothing sent on the current connection
	subStarting                 // Subscribe sent, StartOfHistory not yet received
	subRunning                  // streaming
	subPausing                  // Unsubscribe sent because the buffer is full
	subPaused                   // server stream stopped; resume when drained
	subDone                     // no more events will come
)

// Subscription is a stream of events of one chain, in strictly ascending
// offset order without duplicates, across pauses and reconnects. Read it
// with [Subscription.Next] or range over [Subscription.Events]. One
// goroutine should read (concurrent Next calls are serialised); Close may
// be called from any goroutine.
//
// Received Events frames are buffered as they came, one block of bytes
// per frame; Next decodes one event at a time from the block it is
// reading, without allocating (events with public keys or signatures
// allocate their lists).
type Subscription struct {
	c     *Client
	chain *Chain
	num   uint32 // channel number
	opts  SubscribeOptions
	limit int

	started     chan struct{} // closed at the first StartOfHistory or failure
	historyDone chan struct{} // closed when the consumer reached the end of the history
	notify      chan struct{} // capacity 1: buffer or state changed

	// The chunk Next is reading, taken off the buffer: guarded by rmu,
	// which Next holds. left mirrors rd.left for Buffered.
	rmu       sync.Mutex
	rd        subReader
	reading   []byte // block of rd, recycled at the next take with ReuseBuffers
	left      atomic.Int64
	closedNow atomic.Bool // closed, for Next to see without c.mu

	// Guarded by c.mu.
	state    subState
	startErr error
	head     uint64 // chain's next offset when the subscription started
	next     uint64 // offset after the last event buffered
	haveNext bool
	buf      []subChunk
	bufHead  int
	bufBytes int
	// bufEvents counts the events (not markers) in buf.
	bufEvents int
	marked    bool  // the end-of-history marker was buffered
	err       error // terminal error, reported after the buffer drains
	finished  bool  // nothing more will be buffered
	closed    bool
	// free holds recycled blocks (ReuseBuffers), freeBytes their capacity.
	free      [][]byte
	freeBytes int
}

// subChunk is a run of consecutive items of one Events frame, copied out
// of the connection's read buffer in one block (or decrypted straight into
// one, which the subscription took over), or the end-of-history marker.
type subChunk struct {
	items  []byte // packed Events items (proto.Events.Items)
	block  []byte // the block items lie in, recycled with ReuseBuffers
	n      int    // number of items
	marker bool   // end of history
}

// subReader walks the chunk Next is reading.
type subReader struct {
	it   proto.EventsIter
	left int
}

// subChunkOverhead is what one buffered chunk costs beyond its bytes.
const subChunkOverhead = 64

// Subscribe starts a subscription and returns once the server has accepted
// it. Errors: an error for invalid options, a *[ServerError] when the
// server refuses (for example CodeConflict for a From beyond the chain's
// head), ctx's error, ErrClosed.
func (ch *Chain) Subscribe(ctx context.Context, opts SubscribeOptions) (*Subscription, error) {
	c := ch.c
	if !opts.History && !opts.Live {
		return nil, errors.New("client: subscribe needs History, Live or both")
	}
	if !opts.History && (opts.From != 0 || !opts.FromTime.IsZero()) {
		return nil, errors.New("client: a start point (From, FromTime) needs History")
	}
	if !opts.FromTime.IsZero() && opts.From != 0 {
		return nil, errors.New("client: give From or FromTime, not both")
	}
	if !opts.FromTime.IsZero() && opts.FromTime.UnixNano() < 0 {
		return nil, errors.New("client: FromTime before 1970")
	}
	limit := opts.BufferBytes
	if limit <= 0 {
		limit = c.o.subBuffer
	}
	if err := c.lockConnected(ctx); err != nil {
		return nil, err
	}
	if ch.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	num, err := c.allocChanLocked()
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	s := &Subscription{
		c:           c,
		chain:       ch,
		num:         num,
		opts:        opts,
		limit:       limit,
		started:     make(chan struct{}),
		historyDone: make(chan struct{}),
		notify:      make(chan struct{}, 1),
	}
	c.chans[num] = &channel{kind: chanSub, chain: ch, sub: s}
	s.attachLocked(c.cur)
	c.mu.Unlock()

	select {
	case <-s.started:
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
	c.mu.Lock()
	err = s.startErr
	c.mu.Unlock()
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// attachLocked (re)starts the subscription on a new connection: it opens
// its channel and, unless paused by a buffer still over half full,
// subscribes from the resume point. A paused subscription whose consumer
// drained the buffer while no connection was up resumes here: Next had no
// connection to resume it on, and will not try again once it waits on an
// empty buffer.
func (s *Subscription) attachLocked(cn *conn) {
	if s.closed || s.state == subDone {
		return
	}
	cn.send(&proto.Open{Channel: s.num, ChainKey: s.chain.key})
	if s.state == subPaused || s.state == subPausing {
		s.state = subPaused
		if s.bufBytes > s.limit/2 {
			return // Next resumes it once the consumer has read half
		}
	}
	s.subscribeLocked(cn)
}

// subscribeLocked sends Subscribe: the original request the first time,
// then (once an offset is known) history from the resume point.
func (s *Subscription) subscribeLocked(cn *conn) {
	m := proto.Subscribe{Channel: s.num, History: s.opts.History, Live: s.opts.Live}
	switch {
	case s.haveNext:
		m.History, m.From = true, s.next
	case !s.opts.FromTime.IsZero():
		m.FromTime, m.From = true, uint64(s.opts.FromTime.UnixNano())
	default:
		m.From = s.opts.From
	}
	cn.send(&m)
	s.state = subStarting
}

// detachLocked notes that the connection is gone.
func (s *Subscription) detachLocked() {
	switch s.state {
	case subStarting, subRunning:
		s.state = subIdle
	case subPausing:
		s.state = subPaused
	}
}

// failLocked ends the subscription with err after the buffered events.
func (s *Subscription) failLocked(err error) {
	if s.finished {
		return
	}
	s.finished = true
	s.err = err
	s.state = subDone
	if s.startErr == nil {
		s.startErr = err
	}
	s.closeStartedLocked()
	s.wake()
}

func (s *Subscription) closeStartedLocked() {
	select {
	case <-s.started:
	default:
		close(s.started)
	}
}

func (s *Subscription) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// endLocked marks the subscription as complete (history only) and frees
// its channel on the server.
func (s *Subscription) endLocked() {
	if !s.marked {
		s.buf = append(s.buf, subChunk{marker: true})
		s.marked = true
	}
	s.finished = true
	s.state = subDone
	s.releaseChannelLocked()
	s.wake()
}

// pushLocked buffers n items as one chunk. The items alias the read
// buffer and are copied here, unless own is not nil: then they lie in
// *own, a buffer the subscription takes as it is (no copy), leaving in
// *own a recycled block for the next frame (or nil).
func (s *Subscription) pushLocked(items []byte, n int, own *[]byte) {
	if n == 0 {
		return
	}
	var block []byte
	if own != nil {
		block, *own = *own, s.spareLocked()
	} else {
		items = s.blockLocked(items)
		block = items
	}
	s.buf = append(s.buf, subChunk{items: items, block: block, n: n})
	s.bufBytes += len(items) + subChunkOverhead
	s.bufEvents += n
}

// spareLocked hands out the most recently recycled block, emptied, or nil
// (without ReuseBuffers there is none).
func (s *Subscription) spareLocked() []byte {
	if len(s.free) == 0 {
		return nil
	}
	b := s.free[len(s.free)-1]
	s.free[len(s.free)-1] = nil
	s.free = s.free[:len(s.free)-1]
	s.freeBytes -= cap(b)
	return b[:0]
}

// blockLocked returns a copy of items: in a recycled block with
// ReuseBuffers, otherwise in a new one.
func (s *Subscription) blockLocked(items []byte) []byte {
	if s.opts.ReuseBuffers {
		for i := len(s.free) - 1; i >= 0; i-- {
			b := s.free[i]
			if cap(b) < len(items) {
				continue
			}
			s.free[i] = s.free[len(s.free)-1]
			s.free[len(s.free)-1] = nil
			s.free = s.free[:len(s.free)-1]
			s.freeBytes -= cap(b)
			return append(b[:0], items...)
		}
	}
	return bytes.Clone(items)
}

// recycleLocked keeps block b (its events are no longer valid) for
// blockLocked, as long as the free blocks stay within half the buffer
// bound.
func (s *Subscription) recycleLocked(b []byte) {
	if b == nil || s.closed || s.freeBytes+cap(b) > s.limit/2 {
		return
	}
	s.free = append(s.free, b)
	s.freeBytes += cap(b)
}

func (s *Subscription) releaseChannelLocked() {
	c := s.c
	st := c.chans[s.num]
	if st == nil || st.sub != s || st.closing {
		return
	}
	st.closing = true
	if c.cur != nil {
		c.cur.send(&proto.Close{Channel: s.num})
	} else {
		delete(c.chans, s.num)
	}
}

// onStart handles StartOfHistory.
func (s *Subscription) onStart(m *proto.StartOfHistory) {
	if s.state != subStarting {
		return
	}
	first := false
	select {
	case <-s.started:
	default:
		first = true
	}
	if first {
		s.head = m.Head
	}
	if !s.haveNext {
		if s.opts.History {
			s.next = m.Head - m.Count
		} else {
			s.next = m.Head
		}
		s.haveNext = true
	}
	s.state = subRunning
	s.closeStartedLocked()
	if !s.opts.History && !s.marked {
		s.marked = true
		close(s.historyDone)
	}
	if !s.opts.Live && s.next >= s.head {
		s.endLocked()
	}
}

// onEvents buffers the items of an Events message: it decides which
// items to keep by their offsets (dropping what a resumed replay repeats,
// ending a history-only subscription at its head, pausing when the buffer
// is full) and copies the kept run in one block, or, when own is not nil,
// takes over *own, the buffer m was decrypted into, as that block (see
// pushLocked). Events are decoded by Next, in the consumer's goroutine.
func (s *Subscription) onEvents(m *proto.Events, own *[]byte) {
	if s.state != subRunning {
		return // pausing: the rest is fetched again on resume
	}
	items := m.Items
	it := m.Iter()
	start, end, n := 0, 0, 0
	for {
		item, ok := it.Next()
		if !ok {
			break
		}
		size := proto.EventsItemSize(len(item.Event))
		if s.haveNext && item.Offset < s.next {
			start += size // already delivered (a resumed replay overlaps)
			end = start
			continue
		}
		if !s.opts.Live && item.Offset >= s.head {
			s.pushLocked(items[start:end], n, own)
			s.endLocked()
			return
		}
		end += size
		n++
		s.next, s.haveNext = item.Offset+1, true
		if !s.opts.Live && s.next >= s.head {
			s.pushLocked(items[start:end], n, own)
			s.endLocked()
			return
		}
		if s.bufBytes+end-start+subChunkOverhead >= s.limit && s.c.cur != nil {
			s.c.cur.send(&proto.Unsubscribe{Channel: s.num})
			s.state = subPausing
			break // the rest is fetched again on resume
		}
	}
	s.pushLocked(items[start:end], n, own)
	s.wake()
}

// failNowLocked ends the subscription at once with err, dropping what is
// buffered (the consumer found an event that does not decode).
func (s *Subscription) failNowLocked(err error) {
	s.finished = true
	s.err = err
	s.state = subDone
	clear(s.buf)
	s.buf, s.bufHead, s.bufBytes, s.bufEvents = s.buf[:0], 0, 0, 0
	s.closeStartedLocked()
	s.releaseChannelLocked()
}

// onEndOfHistory handles EndOfHistory.
func (s *Subscription) onEndOfHistory(m *proto.EndOfHistory) {
	if s.state != subRunning {
		return
	}
	if m.Next > s.next {
		s.next = m.Next
	}
	if !s.opts.Live {
		s.endLocked()
		return
	}
	if !s.marked {
		s.buf = append(s.buf, subChunk{marker: true})
		s.marked = true
		s.wake()
	}
}

// onUnsubscribed handles the end of the server's stream.
func (s *Subscription) onUnsubscribed(m *proto.Unsubscribed) {
	if s.state == subDone {
		return
	}
	if !s.haveNext {
		s.next, s.haveNext = m.Next, true
	}
	switch m.Code {
	case proto.CodeOK:
		if s.state == subPausing {
			s.state = subPaused
			s.maybeResumeLocked()
		}
	case proto.CodeLagging:
		// The server dropped us for reading too slowly: start again from
		// where the buffer ends.
		s.state = subPaused
		s.maybeResumeLocked()
	case proto.CodeShuttingDown:
		s.state = subIdle // resumed on the next connection
	default:
		s.failLocked(&ServerError{Op: "subscription", Code: m.Code, Reason: m.Reason})
		s.releaseChannelLocked()
	}
}

// onError handles an Error for the subscription's Open or Subscribe.
func (s *Subscription) onError(m *proto.Error) {
	switch m.Request {
	case proto.TypeUnsubscribe:
		if s.state == subPausing { // the stream had already ended
			s.state = subPaused
			s.maybeResumeLocked()
		}
		return
	case proto.TypeClose:
		return
	}
	select {
	case <-s.started:
		if m.Code == proto.CodeShuttingDown {
			// A resume refused by a server that is stopping: resume on
			// the next connection instead.
			s.state = subIdle
			return
		}
	default:
	}
	err := &ServerError{Op: "subscribe", Code: m.Code, Reason: m.Reason}
	s.failLocked(err)
	s.releaseChannelLocked()
}

// maybeResumeLocked restarts a paused stream once the consumer has read
// half of the buffer.
func (s *Subscription) maybeResumeLocked() {
	if s.state != subPaused || s.closed || s.c.cur == nil || s.bufBytes > s.limit/2 {
		return
	}
	s.subscribeLocked(s.c.cur)
}

// Next returns the next event. It returns io.EOF after the last event of
// a subscription without Live, ErrClosed after Close, and otherwise the
// error that ended the subscription (a *[ServerError], a *[ProtocolError]
// for an event that does not decode, or the client's terminal error) once
// the events buffered before it are read. ctx bounds the wait only. Next
// does not allocate for an event without public keys or signatures.
func (s *Subscription) Next(ctx context.Context) (ev Event, err error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		if s.closedNow.Load() {
			return Event{}, ErrClosed
		}
		if s.rd.left > 0 {
			// Decoded in place into the result: an Event is a few hundred
			// bytes, not worth copying around per event.
			item, ok := s.rd.it.Next()
			s.rd.left--
			s.left.Add(-1)
			if !ok { // not reached: Events.Decode checked every item
				return Event{}, s.failNext(&ProtocolError{Msg: "Events", Reason: "item does not parse"})
			}
			ev.Offset, ev.Time, ev.Raw = item.Offset, time.Unix(0, item.Time), item.Event
			if err := ev.Event.Decode(item.Event); err != nil {
				return Event{}, s.failNext(&ProtocolError{Msg: "Events",
					Reason: fmt.Sprintf("event at offset %d does not decode", item.Offset), Err: err})
			}
			return ev, nil
		}
		if err, done := s.take(); done {
			return Event{}, err
		}
		if s.rd.left > 0 {
			continue
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// failNext ends the subscription with err, found by Next. Called with rmu
// held.
func (s *Subscription) failNext(err error) error {
	s.rd = subReader{}
	s.left.Store(0)
	s.c.mu.Lock()
	s.failNowLocked(err)
	s.c.mu.Unlock()
	return err
}

// take moves the next buffered chunk to s.rd, handling end-of-history
// markers on the way. It returns done with the error Next must return
// (io.EOF, ErrClosed, the terminal error) when nothing more will come;
// otherwise s.rd.left == 0 means nothing is buffered yet. Called with rmu
// held.
func (s *Subscription) take() (err error, done bool) {
	c := s.c
	for {
		c.mu.Lock()
		if s.closed {
			c.mu.Unlock()
			return ErrClosed, true
		}
		if s.reading != nil {
			// Next has returned every event of the block it was reading:
			// with ReuseBuffers they are no longer valid.
			if s.opts.ReuseBuffers {
				s.recycleLocked(s.reading)
			}
			s.reading = nil
		}
		if s.bufHead < len(s.buf) {
			ch := s.buf[s.bufHead]
			s.buf[s.bufHead] = subChunk{}
			s.bufHead++
			if s.bufHead == len(s.buf) {
				s.buf, s.bufHead = s.buf[:0], 0
			} else if s.bufHead > 64 && s.bufHead*2 > len(s.buf) {
				n := copy(s.buf, s.buf[s.bufHead:])
				clear(s.buf[n:])
				s.buf, s.bufHead = s.buf[:n], 0
			}
			if !ch.marker {
				s.bufBytes -= len(ch.items) + subChunkOverhead
				s.bufEvents -= ch.n
			}
			s.maybeResumeLocked()
			c.mu.Unlock()
			if ch.marker {
				close(s.historyDone)
				continue
			}
			s.rd = subReader{it: (&proto.Events{Items: ch.items}).Iter(), left: ch.n}
			s.reading = ch.block
			s.left.Store(int64(ch.n))
			return nil, false
		}
		finished, err := s.finished, s.err
		c.mu.Unlock()
		if !finished {
			return nil, false
		}
		if err == nil {
			err = io.EOF
		}
		return err, true
	}
}

// Events returns an iterator over the subscription's events. It stops at
// the end of a subscription without Live; any other end yields one final
// (zero Event, error) pair. Breaking out of the loop leaves the
// subscription open: Close it.
func (s *Subscription) Events(ctx context.Context) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for {
			ev, err := s.Next(ctx)
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(Event{}, err)
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}
}

// Head returns the chain's next offset when the subscription started:
// the history holds the events before it.
func (s *Subscription) Head() uint64 {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.head
}

// Buffered returns how many events Next can return without waiting.
func (s *Subscription) Buffered() int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.bufEvents + int(s.left.Load())
}

// HistoryDone returns a channel closed once Next has returned the last
// event of the history (at once for a subscription without History).
func (s *Subscription) HistoryDone() <-chan struct{} { return s.historyDone }

// Close ends the subscription: Next returns ErrClosed, and the server
// stops streaming. Safe to call more than once, from any goroutine.
func (s *Subscription) Close() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.closeLocked()
	return nil
}

func (s *Subscription) closeLocked() {
	if s.closed {
		return
	}
	s.closed = true
	s.closedNow.Store(true)
	s.finished = true
	s.state = subDone
	s.buf, s.bufHead, s.bufBytes, s.bufEvents = nil, 0, 0, 0
	s.free, s.freeBytes = nil, 0
	s.releaseChannelLocked()
	if s.startErr == nil {
		s.startErr = ErrClosed
	}
	s.closeStartedLocked()
	s.wake()
}

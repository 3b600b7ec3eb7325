package client

import (
	"context"
	"fmt"
	"sync"

	"github.com/atedb/atedb/proto"
)

// Chain is one chain of a [Client]'s connection: the URL's chain
// ([Client.Chain]) or one opened with [Client.OpenChain]. It appends,
// subscribes and locks on that chain.
//
// Appends of one Chain form a pipeline on the chain's channel: batches are
// committed in the order their AppendAsync (or Append) calls returned, at
// most the window size (see [WithWindow]) are in flight at once, and once
// one fails, the later ones already sent fail too ([ErrAborted]), so the
// order is never broken. The first batch sent after the client has
// received the failure carries the protocol's restart flag, so it and the
// batches after it are accepted again (PROTOCOL.md §5).
//
// All methods are safe for concurrent use.
type Chain struct {
	c      *Client
	key    string
	base   uint32        // the chain's own channel
	window chan struct{} // one token per batch in flight

	// Guarded by c.mu.
	locks   map[uint64]uint64 // held lock keys -> connection generation
	closed  bool
	opening *request // pending Open of base, until Opened or Error
	// epoch counts the pipelines of the channel on the current
	// connection: it grows with every batch sent with the restart flag
	// (and with every new connection). restart is set when a batch of the
	// current epoch has failed: the next batch sent carries the flag.
	epoch   uint64
	restart bool
}

func (c *Client) newChain(key string, base uint32) *Chain {
	ch := &Chain{
		c:      c,
		key:    key,
		base:   base,
		window: make(chan struct{}, c.o.window),
		locks:  make(map[uint64]uint64),
	}
	if base == 0 {
		c.chains[ch] = struct{}{}
	}
	return ch
}

// Key returns the chain key.
func (ch *Chain) Key() string { return ch.key }

// Batch is one atomic append: all of its events are stored, or none.
type Batch struct {
	// Events to append, in order. Their encodings are copied before
	// AppendAsync returns; an empty batch is a barrier (see [Chain.Sync]).
	Events []proto.Event
	// Conditional, with ExpectedNext, stores the batch only if the chain's
	// next offset is ExpectedNext; otherwise it fails with [ErrConflict]
	// and the error's Head holds the current next offset.
	Conditional  bool
	ExpectedNext uint64
}

// Future is the pending result of [Chain.AppendAsync]. Its methods are
// safe for concurrent use; every caller gets the same offsets slice: do
// not modify it.
type Future struct {
	done    chan struct{}
	offsets []uint64
	err     error

	// Guarded by Client.mu.
	chain    *Chain
	id       uint64
	cond     bool
	expect   uint64
	events   [][]byte
	oneEvent [1][]byte // events of a one-event batch
	oneOff   [1]uint64 // offsets of a one-event batch

	ch      uint32 // channel it was last sent on
	gen     uint64 // connection generation it was last sent on
	epoch   uint64 // the chain's epoch when it was last sent
	restart bool   // it was last sent with the restart flag
	doomed  bool   // an earlier batch of its pipeline failed: it will be aborted
	body    []byte // encoded Append as last sent
}

// Done returns a channel closed once the result is known.
func (f *Future) Done() <-chan struct{} { return f.done }

// Wait waits for the result: the offsets of the batch's events, in order
// (a resent batch that the server had already stored gets its original
// offsets), or the error: a *[CommitError] when the server refused the
// batch, ErrClosed, [ErrConnectionLost] without reconnect, or ctx's
// error (the batch may then still be committed; it is not cancelled).
func (f *Future) Wait(ctx context.Context) ([]uint64, error) {
	select {
	case <-f.done:
		return f.offsets, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Result returns the result once Done is closed; before that it returns
// nil, nil.
func (f *Future) Result() ([]uint64, error) {
	select {
	case <-f.done:
		return f.offsets, f.err
	default:
		return nil, nil
	}
}

// completeLocked records the result, frees the window slot and forgets
// the batch. Only the first call has an effect.
func (f *Future) completeLocked(offsets []uint64, err error) {
	select {
	case <-f.done:
		return
	default:
	}
	delete(f.chain.c.appends, f.id)
	f.offsets, f.err = offsets, err
	f.events, f.body = nil, nil
	close(f.done)
	<-f.chain.window
}

// sendLocked sends the batch on cn, on the chain's channel, with the
// restart flag if a batch of the chain's current epoch has failed.
func (f *Future) sendLocked(cn *conn) {
	ch := f.chain
	restart := ch.restart
	if restart {
		ch.restart = false
		ch.epoch++
	}
	if f.body == nil || restart != f.restart {
		m := proto.Append{Channel: ch.base, CommitID: f.id, Restart: restart, HasCondition: f.cond,
			ExpectedNext: f.expect, Events: f.events}
		// A fresh slice: an earlier body may still sit in a dead
		// connection's queue.
		f.body, _ = m.AppendBinary(nil)
	}
	f.ch, f.gen, f.epoch, f.restart, f.doomed = ch.base, ch.c.gen, ch.epoch, restart, false
	cn.out.push(f.body)
}

// sendQuietLocked is sendLocked for a new batch: the body is queued
// without waking the writer; the caller calls cn.kick once Client.mu is
// released.
func (f *Future) sendQuietLocked(cn *conn) {
	ch := f.chain
	if ch.restart {
		f.sendLocked(cn) // re-encodes with the restart flag, and wakes the writer
		return
	}
	f.ch, f.gen, f.epoch, f.restart, f.doomed = ch.base, ch.c.gen, ch.epoch, false, false
	cn.out.pushQuiet(f.body)
}

// AppendAsync starts appending one batch and returns its [Future]. It
// waits while the chain's window of in-flight batches is full (bounded by
// ctx), encodes the events, and sends the batch: from the calling
// goroutine when it is the client's only append in flight and the
// connection is not busy writing (so it may then wait while the server
// does not read its socket; Close ends that wait), otherwise through the
// connection's writer, which batches pipelined appends. It does not wait
// for the server's answer. While the client is reconnecting, the
// batch is queued and sent on the next connection.
//
// Errors (the batch was not sent): an *proto.EncodeError for an event with
// no valid encoding, an error when the encoded batch exceeds the frame
// size, ctx's error, ErrClosed.
func (ch *Chain) AppendAsync(ctx context.Context, b Batch) (*Future, error) {
	c := ch.c
	if !b.Conditional && b.ExpectedNext != 0 {
		return nil, fmt.Errorf("client: ExpectedNext set without Conditional")
	}
	// The events are encoded into pooled scratch, then copied once into
	// the Append body, which the batch keeps (to resend it) and its event
	// list points into: one allocation for all the bytes.
	size := 0
	for i := range b.Events {
		size += b.Events[i].EncodedSize()
	}
	sp := scratchPool.Get().(*[]byte)
	defer putScratch(sp)
	scratch := (*sp)[:0]
	if cap(scratch) < size {
		scratch = make([]byte, 0, size)
	}
	f := &Future{done: make(chan struct{}), chain: ch, cond: b.Conditional, expect: b.ExpectedNext}
	events := f.oneEvent[:0]
	if len(b.Events) > len(f.oneEvent) {
		events = make([][]byte, 0, len(b.Events))
	}
	for i := range b.Events {
		start := len(scratch)
		var err error
		scratch, err = b.Events[i].AppendBinary(scratch)
		if err != nil {
			*sp = scratch
			return nil, fmt.Errorf("client: event %d: %w", i, err)
		}
		events = append(events, scratch[start:len(scratch):len(scratch)])
	}
	*sp = scratch
	select {
	case ch.window <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.dead:
		return nil, c.Err()
	}
	c.mu.Lock()
	cn, err := ch.queueLocked(f, events)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if cn != nil {
		cn.kick()
	}
	return f, nil
}

// queueLocked gives f its id and body and queues it on the current
// connection. It returns the connection when the caller must kick its
// writer (f is the only append in flight), nil when the writer goroutine
// was woken or while reconnecting (the batch is sent on the next
// connection). On error the window slot is given back.
func (ch *Chain) queueLocked(f *Future, events [][]byte) (*conn, error) {
	c := ch.c
	if c.isDeadLocked() || ch.closed {
		<-ch.window
		if ch.closed && c.err == nil {
			return nil, ErrClosed
		}
		return nil, c.err
	}
	f.id = c.newIDLocked()
	m := proto.Append{Channel: ch.base, CommitID: f.id, HasCondition: f.cond, ExpectedNext: f.expect, Events: events}
	maxBody := c.o.maxFrame
	if c.cur != nil {
		maxBody = c.cur.maxBody
	}
	n := m.EncodedSize()
	if n > maxBody {
		<-ch.window
		return nil, fmt.Errorf("client: batch of %d events encodes to %d bytes, more than the %d-byte frame limit: split it",
			len(events), n, maxBody)
	}
	body, err := m.AppendBinary(make([]byte, 0, n))
	if err != nil { // not reached: the events encoded and the count is checked by the frame limit
		<-ch.window
		return nil, fmt.Errorf("client: encode batch: %w", err)
	}
	f.body, f.events = body, pointInto(body, events)
	c.appends[f.id] = f
	if c.cur == nil {
		return nil, nil
	}
	if len(c.appends) > 1 {
		// A pipeline: the writer goroutine batches the appends that
		// arrive while it writes into one write call.
		f.sendLocked(c.cur)
		return nil, nil
	}
	// A lone append (Append and wait, the common case of one producer):
	// the caller writes it at once.
	f.sendQuietLocked(c.cur)
	return c.cur, nil
}

// scratchPool holds buffers for encoding a batch's events.
var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledScratch bounds the scratch kept in scratchPool.
const maxPooledScratch = 1 << 20

func putScratch(sp *[]byte) {
	if cap(*sp) > maxPooledScratch {
		*sp = nil
	}
	*sp = (*sp)[:0]
	scratchPool.Put(sp)
}

// pointInto makes events, which body ends with (each after its uvarint
// length, as proto.Append encodes them), point into body instead, and
// returns them.
func pointInto(body []byte, events [][]byte) [][]byte {
	total := 0
	for _, e := range events {
		total += uvarintLen(len(e)) + len(e)
	}
	pos := len(body) - total
	for i, e := range events {
		pos += uvarintLen(len(e))
		events[i] = body[pos : pos+len(e) : pos+len(e)]
		pos += len(e)
	}
	return events
}

func uvarintLen(x int) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// Append appends events as one atomic batch and waits until the server
// has confirmed it (validated and durable). It returns the events'
// offsets. Errors are those of [Chain.AppendAsync] and [Future.Wait]; a
// *[CommitError] carries the server's code, reason and failing event.
func (ch *Chain) Append(ctx context.Context, events ...proto.Event) ([]uint64, error) {
	f, err := ch.AppendAsync(ctx, Batch{Events: events})
	if err != nil {
		return nil, err
	}
	return f.Wait(ctx)
}

// AppendIf appends events only if the chain's next offset is expectedNext
// (optimistic concurrency). When another writer got there first it
// returns a *[CommitError] matching [ErrConflict] whose Head is the
// chain's current next offset.
func (ch *Chain) AppendIf(ctx context.Context, expectedNext uint64, events ...proto.Event) ([]uint64, error) {
	f, err := ch.AppendAsync(ctx, Batch{Events: events, Conditional: true, ExpectedNext: expectedNext})
	if err != nil {
		return nil, err
	}
	return f.Wait(ctx)
}

// Sync waits until every batch appended on this chain before the call is
// answered: it sends an empty batch, which the server confirms after the
// batches before it.
func (ch *Chain) Sync(ctx context.Context) error {
	_, err := ch.Append(ctx)
	return err
}

// Lock takes the advisory lock on object key of this chain. The lock is
// owned by this connection: the server releases it on Unlock or when the
// connection ends (including a reconnect; see [ErrLockLost]). A key held
// by another connection fails with a *[ServerError] of code
// proto.CodeLockHeld; Lock does not wait for it to be released.
func (ch *Chain) Lock(ctx context.Context, key uint64) error {
	return ch.lockOp(ctx, reqLock, key)
}

// Unlock releases a lock taken with [Chain.Lock]. Errors: [ErrLockLost]
// if the connection that took it has ended since, a *[ServerError] of
// code proto.CodeNotLockOwner if this connection does not hold it.
func (ch *Chain) Unlock(ctx context.Context, key uint64) error {
	return ch.lockOp(ctx, reqUnlock, key)
}

func (ch *Chain) lockOp(ctx context.Context, kind reqKind, key uint64) error {
	c := ch.c
	if err := c.lockConnected(ctx); err != nil {
		return err
	}
	if ch.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if kind == reqUnlock {
		if gen, ok := ch.locks[key]; ok && gen != c.gen {
			delete(ch.locks, key)
			c.mu.Unlock()
			return ErrLockLost
		}
	}
	id := c.newIDLocked()
	r := &request{kind: kind, chain: ch, key: key, done: make(chan error, 1)}
	c.reqs[id] = r
	r.sendLocked(c.cur, id)
	c.mu.Unlock()
	return c.wait(ctx, id, r)
}

// Close releases the chain's channel on the server (and with it the locks
// taken through this handle) and ends its subscriptions. Batches already
// sent are still answered. Closing the URL's chain ([Client.Chain]) closes
// the Client.
func (ch *Chain) Close() error {
	c := ch.c
	if ch.base == 0 {
		return c.Close()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch.closed {
		return nil
	}
	ch.closed = true
	delete(c.chains, ch)
	for num, st := range c.chans {
		if st.chain != ch || st.closing {
			continue
		}
		if st.kind == chanSub {
			st.sub.closeLocked()
			continue
		}
		st.closing = true
		if c.cur != nil {
			c.cur.send(&proto.Close{Channel: num})
		} else {
			delete(c.chans, num)
		}
	}
	if ch.opening != nil {
		ch.opening.done <- ErrClosed
		ch.opening = nil
	}
	return nil
}

// failedLocked records that batch f, sent on the current connection, was
// refused with code. Unless a restart has been sent since f (a stale
// reply), the server now aborts every later batch of f's pipeline: those
// in flight are doomed, and the next batch sent restarts the pipeline.
// CodeUnknownChannel aborts nothing on the server (there is no pipeline on
// a channel that is not open).
func (ch *Chain) failedLocked(f *Future, code proto.ErrorCode) {
	if code == proto.CodeUnknownChannel || f.epoch != ch.epoch {
		return
	}
	ch.restart = true
	for _, g := range ch.c.appends {
		if g.chain == ch && g.gen == f.gen && g.epoch == f.epoch && g.id > f.id {
			g.doomed = true
		}
	}
}

package netio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// The outgoing path of a connection. Exactly one goroutine, the writer,
// writes to the socket once the handshake is over. Everything else hands
// it what to send through one queue, in the order it is to go out:
//
//   - replies (the reader, the appends' done callbacks, channel closers)
//     are encoded straight into conn.out, each holding a reply slot
//     (MaxPending) taken before the request was handled, so the queue is
//     bounded and nobody blocks producing a reply;
//   - a subscription queues a *frame and waits for the writer to have
//     written it (the frame's records point into the log's memory map, and
//     the subscription reads its next batch only once the socket took
//     this one), so each subscription holds at most one frame.
//
// The writer takes the whole queue at once, writes it into the frame
// writer (which flushes by itself past its buffer size) and flushes once
// per round. Its first write error is sticky: the connection is closed
// (stateClosed) and the writer goes on taking the queue and dropping it,
// so that no producer waits for it.

// outItem is one entry of the outgoing queue: a reply, whose body ends at
// end in conn.out (it starts where the previous reply ended), or, when f
// is not nil, a subscription's frame.
type outItem struct {
	end int
	f   *frame
}

// frame is what a subscription sends: either a ready body, or (recs !=
// nil) an Events message that the writer builds from the records straight
// into the outgoing buffer, so that an event is copied once, from the
// log's memory map to the socket buffer (or sealed once, when encrypted).
// The writer answers on done, true if it wrote the frame; until then the
// frame and its records must stay as they are.
type frame struct {
	body    []byte
	recs    []chain.Record
	channel uint32
	done    chan bool // buffered (1), reused from frame to frame
}

func newFrame() *frame { return &frame{done: make(chan bool, 1)} }

// frameBuilder is implemented by proto.Stream and kex.Conn: frames built
// in place (and, by kex.Conn, sealed where they were built).
type frameBuilder interface {
	BeginFrame() []byte
	EndFrame(buf []byte) error
}

var (
	_ frameBuilder = (*proto.Stream)(nil)
	_ frameBuilder = (*kex.Conn)(nil)
)

func appendEvents(dst []byte, ch uint32, recs []chain.Record) []byte {
	dst = proto.AppendEventsHeader(dst, ch)
	for _, r := range recs {
		dst = proto.AppendEventsItem(dst, r.Offset, r.Time, r.Payload)
	}
	return dst
}

// acquireSlot takes a reply slot, waiting while MaxPending replies are
// outstanding. It returns false if the connection is closed meanwhile.
func (c *conn) acquireSlot() bool {
	select {
	case c.slots <- struct{}{}: // the usual case, without a two-way select
		return true
	default:
	}
	select {
	case c.slots <- struct{}{}:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// reply queues m, which holds a slot taken with acquireSlot. It never
// blocks.
func (c *conn) reply(m proto.Message) {
	c.outMu.Lock()
	start := len(c.out)
	var err error
	if c.out, err = m.AppendBinary(c.out); err != nil {
		c.encodeFailedLocked(start, m.Type(), err)
	}
	wake := c.queueReplyLocked()
	c.outMu.Unlock()
	if wake {
		c.wakeWriter()
	}
}

// queueReplyLocked ends the reply just encoded at the end of c.out and
// reports whether the writer is to be woken for it.
func (c *conn) queueReplyLocked() bool {
	c.items = append(c.items, outItem{end: len(c.out)})
	return !c.deferWake
}

// encodeFailedLocked replaces a reply that failed to encode, from start
// in c.out, with a Fatal: our own message failed to encode, a bug. Say so
// rather than leave the request unanswered, and end the connection.
func (c *conn) encodeFailedLocked(start int, t proto.MsgType, err error) {
	c.log.Error("reply failed to encode", "type", t.String(), "err", err)
	c.out, _ = (&proto.Fatal{Code: proto.CodeInternal, Reason: "server failed to encode a reply"}).AppendBinary(c.out[:start])
	c.fatalQueued = true
	c.advance(stateDraining)
}

// replyConfirmed queues Confirmed for count events from offset first; like
// reply, it holds a slot and never blocks. It allocates nothing once the
// connection's buffers have grown.
func (c *conn) replyConfirmed(ch uint32, id, first uint64, count int) {
	c.outMu.Lock()
	c.offs = c.offs[:0]
	for i := range count {
		c.offs = append(c.offs, first+uint64(i))
	}
	m := proto.Confirmed{Channel: ch, CommitID: id, Offsets: c.offs}
	start := len(c.out)
	var err error
	if c.out, err = m.AppendBinary(c.out); err != nil { // a concrete call: m stays on the stack
		c.encodeFailedLocked(start, proto.TypeConfirmed, err)
	}
	if cap(c.offs) > maxKeptOffsets {
		c.offs = nil
	}
	wake := c.queueReplyLocked()
	c.outMu.Unlock()
	if wake {
		c.wakeWriter()
	}
}

// maxKeptOffsets bounds the Confirmed scratch a connection keeps.
const maxKeptOffsets = 1024

// deferReplies makes replies queued from now on wait for
// writeDeferredReplies instead of waking the writer. Reader only.
func (c *conn) deferReplies() {
	c.outMu.Lock()
	c.deferWake = true
	c.outMu.Unlock()
}

// writeDeferredReplies ends deferReplies and hands the replies queued
// meanwhile to the writer with one wake-up: after an inline commit the
// Confirmed and whatever came with it leave in one write.
// Reader only.
func (c *conn) writeDeferredReplies() {
	c.outMu.Lock()
	c.deferWake = false
	queued := len(c.items) > 0
	c.outMu.Unlock()
	if queued {
		c.wakeWriter()
	}
}

func (c *conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sendFrame hands a subscription's frame to the writer and waits until it
// is written. It returns false, having sent nothing, if ctx has ended or
// the writer has stopped taking frames, and false if the connection
// failed to write. The wait is bounded by WriteTimeout (a client that does
// not read) and ends at once when the connection is closed.
func (c *conn) sendFrame(ctx context.Context, f *frame) bool {
	if ctx.Err() != nil {
		return false
	}
	c.outMu.Lock()
	if c.outClosed {
		c.outMu.Unlock()
		return false
	}
	c.items = append(c.items, outItem{f: f})
	c.outMu.Unlock()
	c.wakeWriter() // also while the reader defers replies: events do not wait for an fsync
	return <-f.done
}

// closeQueue tells the writer to end once it has written what is queued.
// Nothing may be queued afterwards: the caller has stopped every producer.
func (c *conn) closeQueue() {
	c.outMu.Lock()
	c.outClosed = true
	c.outMu.Unlock()
	c.wakeWriter()
}

// writer is the connection's only socket writer after the handshake. It
// ends once closeQueue was called and the queue is written.
func (c *conn) writer() {
	defer c.writerWG.Done()
	for {
		<-c.wake
		if !c.writeRound() {
			return
		}
	}
}

// writeRound writes everything queued and flushes. It reports false once
// the queue is closed and empty.
func (c *conn) writeRound() bool {
	// Writes inside the round (the buffer flushes itself when full) must
	// not run under the deadline of the last round, which may be long past
	// after an idle spell.
	c.armWriteDeadline()
	for {
		c.outMu.Lock()
		out, items, closed := c.out, c.items, c.outClosed
		c.out, c.items = c.spareOut[:0], c.spareItems[:0]
		c.outMu.Unlock()
		c.writeItems(out, items)
		if cap(out) > maxKeptReplies {
			out = nil // a burst of long replies passed: do not keep its buffer
		}
		n := len(items)
		clear(items) // no frame stays referenced
		c.spareOut, c.spareItems = out[:0], items[:0]
		if n == 0 {
			c.flush()
			return !closed
		}
	}
}

// writeItems writes one take of the queue, releasing the replies' slots
// and answering the frames. A panic (a bug) closes the connection; the
// items not written yet are answered as dropped, so nobody waits for them.
func (c *conn) writeItems(out []byte, items []outItem) {
	i := 0
	defer func() {
		if p := recover(); p != nil {
			c.s.stats.panics.Add(1)
			c.log.Error("connection writer panicked; closing the connection", "panic", p, "stack", string(debug.Stack()))
			c.werr = fmt.Errorf("writer panicked: %v", p)
			c.kill()
			for _, it := range items[i:] {
				c.itemDone(it, false)
			}
		}
	}()
	start := 0
	for ; i < len(items); i++ {
		it := items[i]
		if it.f != nil {
			c.writeFrame(it.f)
		} else {
			c.write(out[start:it.end])
			start = it.end
		}
		c.itemDone(it, c.werr == nil)
	}
}

// itemDone answers a frame, or releases a reply's slot.
func (c *conn) itemDone(it outItem, written bool) {
	if it.f != nil {
		it.f.done <- written
		return
	}
	<-c.slots
}

// writeFrame writes a subscription frame.
func (c *conn) writeFrame(f *frame) {
	if f.recs == nil {
		c.write(f.body)
		return
	}
	if c.werr != nil {
		return
	}
	if fb, ok := c.fc.(frameBuilder); ok {
		if err := fb.EndFrame(appendEvents(fb.BeginFrame(), f.channel, f.recs)); err != nil {
			c.writeFailed(err)
		}
		return
	}
	// Both FrameConns of this package build in place (kex.Conn seals the
	// body where it was built); this is for any other: build in the
	// connection's scratch buffer, then write it.
	c.scratch = appendEvents(c.scratch[:0], f.channel, f.recs)
	c.write(c.scratch)
}

func (c *conn) write(body []byte) {
	if c.werr != nil {
		return
	}
	if err := c.fc.WriteFrame(body); err != nil {
		c.writeFailed(err)
	}
}

func (c *conn) flush() {
	if c.werr != nil {
		return
	}
	c.armWriteDeadline()
	if err := c.fc.Flush(); err != nil {
		c.writeFailed(err)
	}
}

// armWriteDeadline gives the writes that follow WriteTimeout. Moving the
// deadline costs a timer update: it moves only once a sixty-fourth of the
// timeout has passed since the last move.
func (c *conn) armWriteDeadline() {
	wt := c.s.cfg.WriteTimeout
	if now := time.Now(); c.writeDL.Sub(now) < wt-wt/deadlineSlack {
		c.writeDL = now.Add(wt)
		_ = c.nc.SetWriteDeadline(c.writeDL)
	}
}

// writeFailed records the writer's first error and closes the connection:
// a client that does not read for WriteTimeout, or a broken socket. The
// writer goes on taking the queue and dropping it, so nobody waits on it.
func (c *conn) writeFailed(err error) {
	if c.werr != nil {
		return
	}
	c.werr = err
	if c.state() != stateClosed {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.log.Warn("client stopped reading; closing its connection", "timeout", c.s.cfg.WriteTimeout)
		} else {
			c.log.Debug("write failed", "err", err)
		}
	}
	c.kill()
	if testHookWriteFailed != nil {
		testHookWriteFailed()
	}
}

// testHookWriteFailed, when set (by tests, before any server starts), runs
// after writeFailed has closed the connection: a writer slowed down there
// must not let the reader outlive the connection.
var testHookWriteFailed func()

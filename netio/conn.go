package netio

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// maxHelloSize bounds the first frame: a hello is a few hundred bytes.
const maxHelloSize = 16 << 10

// aLongTimeAgo is a deadline in the past, to wake a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// deadlineSlack: socket deadlines are moved forward only once timeout /
// deadlineSlack has passed since they were set.
const deadlineSlack = 64

// maxKeptReplies bounds the reply buffer a connection keeps between bursts.
const maxKeptReplies = 256 << 10

// maxKeptEvents bounds the event list of the reused Append message.
const maxKeptEvents = 1024

// conn is one client connection. Its goroutines:
//
//   - serve: hello, key exchange, then the reader loop, then the teardown;
//   - the writer: it drains the reply queue, batches the replies and
//     flushes once;
//   - one per subscription, reading its chain cursor and writing its
//     frames itself (with the replies queued meanwhile); wmu serialises
//     the writes of all of them.
//
// Replies never block the goroutine producing them: each one holds a slot
// of the pending semaphore (MaxPending), taken by the reader before it
// handles a request, so the queue is bounded and a client that does not
// read its socket only stalls itself.
type conn struct {
	s     *Server
	nc    net.Conn
	fc    proto.FrameConn
	owner chain.Owner
	log   *slog.Logger
	nonce [proto.NonceSize]byte

	ctx    context.Context // ends when the connection is torn down
	cancel context.CancelFunc

	stopping atomic.Bool // Shutdown asked for a graceful end
	killed   atomic.Bool

	// existingOnly: the client asked (proto.FeatureExistingOnly) that its
	// channels open only chains that exist. Set by the handshake.
	existingOnly bool
	// peerClosed: the client ended the stream cleanly (io.EOF) and the
	// connection was not stopped otherwise. Set by finish.
	peerClosed bool
	// stream is the plain frame stream under fc, and sess the session
	// sealing it (nil without wire encryption): release hands the
	// stream's buffers back to proto's pools and wipes the session's keys
	// once nothing reads or writes any more.
	stream *proto.Stream
	sess   *kex.Session

	// Owned by the reader goroutine.
	channels  map[uint32]*channel
	appendMsg proto.Append // decoded Append, reused

	// Channels being closed: Close was received, Closed not yet sent.
	closeMu sync.Mutex
	closing map[uint32]struct{}
	closers sync.WaitGroup // their goroutines

	// Outgoing path. Replies are encoded straight into out (guarded by
	// outMu), one body after the other, ends[i] closing body i; whoever
	// writes swaps out and ends with the spare pair and writes them.
	// Subscriptions write their frames themselves; wmu serialises every
	// write to the socket and guards the fields below it.
	slots chan struct{} // reply slots, MaxPending
	outMu sync.Mutex
	out   []byte   // encoded reply bodies, each holding one slot
	ends  []int    // end of each body in out
	offs  []uint64 // scratch for Confirmed offsets, guarded by outMu
	// deferWake, guarded by outMu, is set while the reader hands an
	// append that may commit inline: it writes the replies queued
	// meanwhile itself (writeDeferredReplies) instead of waking the writer.
	deferWake bool
	wake      chan struct{}
	writerEnd chan struct{} // closed to stop the writer after a last flush
	writerWG  sync.WaitGroup
	writeErr  atomic.Pointer[error]

	wmu       sync.Mutex
	spareOut  []byte
	spareEnds []int
	scratch   []byte    // Events built for a FrameConn that cannot build in place
	writeDL   time.Time // the socket's write deadline

	inflight sync.WaitGroup // appends handed to chains, not yet answered
	subsWG   sync.WaitGroup
}

// frame is what a subscription writes: either a ready body, or (recs !=
// nil) an Events message built from the records straight into the
// outgoing buffer, so that an event is copied once, from the log's memory
// map to the socket buffer (or sealed once, when encrypted).
type frame struct {
	body    []byte
	recs    []chain.Record
	channel uint32
}

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

func (s *Server) newConn(nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	remote := nc.RemoteAddr().String()
	return &conn{
		s:         s,
		nc:        nc,
		owner:     chain.Owner{Name: remote},
		log:       s.cfg.Logger.With("remote", remote),
		ctx:       ctx,
		cancel:    cancel,
		channels:  make(map[uint32]*channel),
		closing:   make(map[uint32]struct{}),
		slots:     make(chan struct{}, s.cfg.MaxPending),
		wake:      make(chan struct{}, 1),
		writerEnd: make(chan struct{}),
	}
}

// errFatal ends the connection after sending Fatal{code, reason}.
type fatalError struct {
	code   proto.ErrorCode
	reason string
}

func (e *fatalError) Error() string { return fmt.Sprintf("%s: %s", e.code, e.reason) }

func fatalf(code proto.ErrorCode, format string, args ...any) error {
	return &fatalError{code: code, reason: fmt.Sprintf(format, args...)}
}

// serve runs the connection from hello to close. A panic anywhere in it
// closes this connection only.
func (c *conn) serve() {
	defer c.s.untrack(c)
	defer func() {
		if p := recover(); p != nil {
			c.s.stats.panics.Add(1)
			c.log.Error("connection panicked; closing it", "panic", p, "stack", string(debug.Stack()))
			c.kill()
			c.teardown()
		}
	}()
	// No SetNoDelay: Go creates every TCPConn with TCP_NODELAY set.
	ch0, err := c.handshake()
	if err != nil {
		c.log.Debug("handshake failed", "err", err)
		c.nc.Close()
		c.cancel()
		c.release()
		return
	}
	c.log.Debug("connected")
	c.writerWG.Add(1)
	go c.writer()
	if ch0 != nil {
		c.openChannel0(ch0)
	}
	err = c.readLoop()
	c.finish(err)
}

// handshake reads the hello, answers it, runs the key exchange when
// encryption is negotiated, and returns channel 0's key (nil if none). It
// is bounded by HandshakeTimeout. On failure the caller closes.
func (c *conn) handshake() (*chain.Key, error) {
	cfg := &c.s.cfg
	_ = c.nc.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	refuse := func(code proto.ErrorCode, reason string) (*chain.Key, error) {
		ack := proto.HelloAck{Version: proto.ProtocolVersion, Code: code, Reason: reason}
		body, _ := ack.AppendBinary(nil)
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.nc.Write(proto.AppendFrame(nil, body))
		c.log.Info("hello refused", "code", code.String(), "reason", reason)
		lingerClose(c.nc)
		return nil, fmt.Errorf("%s: %s", code, reason)
	}

	// The hello is read by hand, with a small size limit and no read-ahead,
	// so garbage is refused after 4 bytes.
	var hdr [proto.FrameHeaderSize]byte
	if _, err := io.ReadFull(c.nc, hdr[:]); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return refuse(proto.CodeTimeout, fmt.Sprintf("no hello within %s", cfg.HandshakeTimeout))
		}
		return nil, fmt.Errorf("read hello: %w", err)
	}
	size := binary.LittleEndian.Uint32(hdr[:])
	if size > maxHelloSize {
		return refuse(proto.CodeMalformed, fmt.Sprintf(
			"first frame announces %d bytes; an atedb hello is at most %d (is this an atedb client?)", size, maxHelloSize))
	}
	helloBody := make([]byte, size)
	if _, err := io.ReadFull(c.nc, helloBody); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return refuse(proto.CodeTimeout, fmt.Sprintf("hello incomplete after %s", cfg.HandshakeTimeout))
		}
		return nil, fmt.Errorf("read hello body: %w", err)
	}
	var hello proto.Hello
	if err := hello.Decode(helloBody); err != nil {
		if errors.Is(err, proto.ErrUnsupportedVersion) {
			return refuse(proto.CodeUnsupportedVersion, err.Error())
		}
		return refuse(proto.CodeMalformed, "bad hello: "+err.Error())
	}
	if hello.Route != Route {
		return refuse(proto.CodeInvalidChainKey, fmt.Sprintf("route %q is not served here; use %q (tcp://host:port%s/<chain-key>)", hello.Route, Route, Route))
	}
	var key *chain.Key
	if hello.ChainKey != "" {
		k, err := chain.ParseKey(hello.ChainKey)
		if err != nil {
			return refuse(proto.CodeInvalidChainKey, err.Error())
		}
		key = &k
	}
	size128 := kex.Negotiate(kex.KeySize(hello.KeySize), cfg.WireEncryption)
	var features proto.Features
	if hello.Features&proto.FeatureServerIdentity != 0 {
		if cfg.Identity == nil {
			return refuse(proto.CodeHandshakeFailed, "the client requires a server identity and this server has none")
		}
		if size128 == kex.KeySizeNone {
			size128 = kex.KeySize128 // the identity is proven inside the key exchange
		}
		features |= proto.FeatureServerIdentity
	}
	if hello.Features&proto.FeatureExistingOnly != 0 {
		features |= proto.FeatureExistingOnly
		c.existingOnly = true
	}
	if _, err := rand.Read(c.nonce[:]); err != nil {
		return refuse(proto.CodeInternal, "no randomness for the conversation nonce")
	}
	ack := proto.HelloAck{Version: proto.ProtocolVersion, Code: proto.CodeOK, Features: features,
		KeySize: proto.KeySize(size128), Nonce: c.nonce}
	ackBody, err := ack.AppendBinary(nil)
	if err != nil {
		return refuse(proto.CodeInternal, err.Error())
	}
	stream := proto.NewStream(c.nc, cfg.MaxFrameSize)
	c.fc, c.stream = stream, stream
	if err := stream.WriteFrame(ackBody); err != nil {
		return nil, err
	}
	// The handshake's last frame (the hello-ack, or the key confirmation)
	// is left queued when channel 0 is to be opened: it leaves with the
	// Opened or Error that always answers that, in the writer's flush, one
	// write per connection fewer (and one wakeup of a client waiting for
	// both). With no channel 0 nothing else is coming: flush it now.
	flushNow := key == nil
	if size128 != kex.KeySizeNone {
		sess, err := kex.ServerHandshake(stream, helloBody, ackBody, size128,
			kex.ServerConfig{Identity: cfg.Identity, QueueConfirmation: !flushNow})
		if err != nil {
			return nil, fmt.Errorf("key exchange: %w", err)
		}
		c.sess, c.fc = sess, sess.Conn(stream)
	}
	if flushNow {
		if err := c.fc.Flush(); err != nil {
			return nil, err
		}
	}
	_ = c.nc.SetDeadline(time.Time{})
	c.log = c.log.With("encryption", size128.String())
	return key, nil
}

// readLoop reads and handles requests until the connection ends. Every
// Ping it sends because of silence must be answered within the rest of
// the idle timeout.
func (c *conn) readLoop() error {
	half := c.s.cfg.IdleTimeout / 2
	pinged := false
	var pingID uint64
	var deadline time.Time
	for {
		if c.stopping.Load() {
			return nil
		}
		// Moving the deadline costs a timer update: per frame it showed in
		// profiles. Move it only once half/deadlineSlack has passed, so
		// silence draws a Ping after between 63/64 and all of half.
		if now := time.Now(); deadline.Sub(now) < half-half/deadlineSlack {
			deadline = now.Add(half)
			_ = c.nc.SetReadDeadline(deadline)
		}
		body, err := c.fc.ReadFrame()
		if err != nil {
			if c.stopping.Load() || c.killed.Load() || c.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				if pinged {
					return fatalf(proto.CodeTimeout, "nothing received for %s (not even a Pong)", c.s.cfg.IdleTimeout)
				}
				pinged = true
				pingID++
				if !c.acquireSlot() {
					return nil
				}
				c.reply(&proto.Ping{ID: pingID})
				continue
			}
			return c.readError(err)
		}
		pinged = false
		if err := c.handle(body); err != nil {
			return err
		}
	}
}

// readError turns a read failure into the connection's end.
func (c *conn) readError(err error) error {
	var tooLarge *proto.FrameTooLargeError
	var openErr *kex.OpenError
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &tooLarge):
		return fatalf(proto.CodeFrameTooLarge, "frame of %d bytes exceeds the limit of %d", tooLarge.Size, tooLarge.Max)
	case errors.As(err, &openErr):
		// The session is dead both ways: nothing more can be sent.
		c.log.Warn("a frame failed authentication; closing the connection", "err", err)
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("connection ended inside a frame: %w", err)
	}
	return fmt.Errorf("read: %w", err)
}

// finish tears the connection down after the reader loop: it finishes
// the appends in flight (their replies are still sent), tells the client
// why it ends, flushes and closes.
func (c *conn) finish(err error) {
	var fe *fatalError
	switch {
	case c.killed.Load():
	case errors.As(err, &fe):
		c.log.Info("closing connection", "code", fe.code.String(), "reason", fe.reason)
		c.stopSubscriptions()
		c.inflight.Wait()
		c.closers.Wait()
		c.forceReply(&proto.Fatal{Code: fe.code, Reason: fe.reason})
	case c.stopping.Load():
		c.stopSubscriptions()
		c.inflight.Wait()
		c.closers.Wait()
		c.forceReply(&proto.Fatal{Code: proto.CodeShuttingDown, Reason: "the server is shutting down"})
	case err != nil:
		c.log.Debug("connection ended", "err", err)
	default:
		c.log.Debug("connection closed by the client")
		// The reader saw io.EOF (the other nil returns of readLoop come
		// with a stop, a kill or a cancelled context).
		c.peerClosed = c.ctx.Err() == nil
	}
	c.teardown()
}

// teardown stops everything the connection started, releases its chains
// (and so its locks) and closes the socket. Safe to call more than once.
func (c *conn) teardown() {
	c.stopSubscriptions()
	c.inflight.Wait()
	c.closers.Wait() // their Closed replies are flushed below
	select {
	case <-c.writerEnd:
	default:
		close(c.writerEnd)
	}
	c.writerWG.Wait()
	for id, ch := range c.channels {
		ch.h.Release()
		delete(c.channels, id)
	}
	c.cancel()
	if c.killed.Load() || c.writeErr.Load() != nil || c.peerClosed {
		// After the client's clean end (io.EOF) no unread input is left
		// to turn the close into a reset that could lose our last
		// frames: nothing to linger for.
		c.nc.Close()
	} else {
		lingerClose(c.nc)
	}
	c.release()
}

// release wipes the session's keys and gives the frame stream's buffers
// back to proto's pools. Called by the connection's goroutine once
// nothing can read or write through the stream: the writer and the
// subscriptions have ended, the appends have been answered (the chain
// copied their events), and the reader is the caller. Safe to call more
// than once.
func (c *conn) release() {
	if c.sess != nil {
		c.sess.Close()
	}
	if c.stream != nil {
		c.stream.Release()
	}
}

// shutdown asks for a graceful end: the reader stops at once.
func (c *conn) shutdown() {
	c.stopping.Store(true)
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
}

// kill closes the connection at once.
func (c *conn) kill() {
	c.killed.Store(true)
	c.cancel()
	c.nc.Close()
}

// acquireSlot takes a reply slot, waiting while MaxPending replies are
// outstanding. It returns false if the connection ends meanwhile.
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
	c.appendReplyLocked(m)
	wake := !c.deferWake
	c.outMu.Unlock()
	if wake {
		c.wakeWriter()
	}
}

// appendReplyLocked encodes m at the end of c.out.
func (c *conn) appendReplyLocked(m proto.Message) {
	start := len(c.out)
	var err error
	if c.out, err = m.AppendBinary(c.out); err != nil {
		c.encodeFailedLocked(start, m.Type(), err)
	}
	c.ends = append(c.ends, len(c.out))
}

// encodeFailedLocked replaces a reply that failed to encode, from start
// in c.out, with a Fatal: our own message failed to encode, a bug. Say so
// rather than leave the request unanswered, and end the connection.
func (c *conn) encodeFailedLocked(start int, t proto.MsgType, err error) {
	c.log.Error("reply failed to encode", "type", t.String(), "err", err)
	c.out, _ = (&proto.Fatal{Code: proto.CodeInternal, Reason: "server failed to encode a reply"}).AppendBinary(c.out[:start])
	c.cancel()
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
	c.ends = append(c.ends, len(c.out))
	if cap(c.offs) > maxKeptOffsets {
		c.offs = nil
	}
	wake := !c.deferWake
	c.outMu.Unlock()
	if wake {
		c.wakeWriter()
	}
}

// deferReplies makes replies queued from now on wait for
// writeDeferredReplies instead of waking the writer. Reader only.
func (c *conn) deferReplies() {
	c.outMu.Lock()
	c.deferWake = true
	c.outMu.Unlock()
}

// writeDeferredReplies ends deferReplies and writes the replies queued
// meanwhile from the reader's goroutine: after an inline commit the
// Confirmed goes out without waking the writer goroutine (a hand-off of
// several µs on the lone appender's path). If another goroutine is
// writing, the writer is woken as usual. Reader only.
func (c *conn) writeDeferredReplies() {
	c.outMu.Lock()
	c.deferWake = false
	queued := len(c.ends) > 0
	c.outMu.Unlock()
	if !queued {
		return
	}
	if !c.wmu.TryLock() {
		c.wakeWriter()
		return
	}
	c.writeRoundLocked()
	c.wmu.Unlock()
}

// maxKeptOffsets bounds the Confirmed scratch a connection keeps.
const maxKeptOffsets = 1024

func (c *conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// forceReply queues m without a slot (the final Fatal).
func (c *conn) forceReply(m proto.Message) {
	select {
	case c.slots <- struct{}{}:
	default:
		// Full: the writer is stuck; the Fatal would not get out anyway.
		return
	}
	c.reply(m)
}

// sendFrame writes a subscription's frame, with the replies queued
// meanwhile, and flushes, from the subscription's own goroutine: no hop
// through the writer per frame. It waits while another goroutine writes,
// and while the client does not read, up to WriteTimeout (then the
// connection ends). It returns false, having written nothing, if ctx has
// ended, and false if the connection failed to write.
func (c *conn) sendFrame(ctx context.Context, f *frame) bool {
	if ctx.Err() != nil {
		return false
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	c.armWriteDeadline()
	c.writeFrame(f)
	c.writeRepliesLocked()
	c.flush()
	return c.writeErr.Load() == nil
}

// writer writes the replies: it collects every queued reply, writes them
// into the frame writer (which flushes by itself past 256 KiB) and flushes
// once per round.
func (c *conn) writer() {
	defer c.writerWG.Done()
	for {
		end := false
		select {
		case <-c.wake:
		case <-c.writerEnd:
			end = true
		}
		c.wmu.Lock()
		c.writeRoundLocked()
		c.wmu.Unlock()
		if end {
			return
		}
	}
}

// writeRoundLocked writes every queued reply and flushes. Called with wmu
// held.
func (c *conn) writeRoundLocked() {
	// Writes inside the round (the buffer flushes itself when full) must
	// not run under the deadline of the last round, which may be long past
	// after an idle spell.
	c.armWriteDeadline()
	for c.writeRepliesLocked() {
	}
	c.flush()
}

// writeRepliesLocked writes the queued replies, releasing their slots, and
// reports whether there were any. Called with wmu held.
func (c *conn) writeRepliesLocked() bool {
	c.outMu.Lock()
	out, ends := c.out, c.ends
	c.out, c.ends = c.spareOut[:0], c.spareEnds[:0]
	c.outMu.Unlock()
	start := 0
	for _, end := range ends {
		c.write(out[start:end])
		start = end
		<-c.slots
	}
	if cap(out) > maxKeptReplies {
		out = nil // a burst of long replies passed: do not keep its buffer
	}
	c.spareOut, c.spareEnds = out[:0], ends[:0]
	return len(ends) > 0
}

// writeFrame writes a subscription frame. Called with wmu held.
func (c *conn) writeFrame(f *frame) {
	if f.recs == nil {
		c.write(f.body)
		return
	}
	if c.writeErr.Load() != nil {
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
	if c.writeErr.Load() != nil {
		return
	}
	if err := c.fc.WriteFrame(body); err != nil {
		c.writeFailed(err)
	}
}

func (c *conn) flush() {
	if c.writeErr.Load() != nil {
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

// writeFailed makes the connection end: a client that does not read for
// WriteTimeout, or a broken socket. The writer keeps draining (and
// dropping) so that nobody waits on it.
func (c *conn) writeFailed(err error) {
	if c.writeErr.CompareAndSwap(nil, &err) {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.log.Warn("client stopped reading; closing its connection", "timeout", c.s.cfg.WriteTimeout)
		} else {
			c.log.Debug("write failed", "err", err)
		}
		// Mark the connection dead before waking the reader: a reader that
		// woke first and saw it alive would take the timeout for silence,
		// move its deadline forward and wait for a client that is not
		// reading (IdleTimeout/2) before it noticed.
		c.killed.Store(true)
		c.cancel()
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
		if testHookWriteFailed != nil {
			testHookWriteFailed()
		}
	}
}

// testHookWriteFailed, when set (by tests, before any server starts), runs
// after writeFailed has woken the reader: a writer slowed down there must
// not let the reader outlive the connection.
var testHookWriteFailed func()

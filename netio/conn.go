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

// connState is where a connection is in its life. It only moves forward,
// through [conn.advance], which does what entering a state requires:
//
//	handshake ──► active ──► draining ──► closed
//	    │            │                      ▲
//	    └────────────┴──────────────────────┘  (kill: from any state)
//
// The states:
//
//   - handshake: serve reads the hello and runs the key exchange; it is the
//     connection's only goroutine and writes to the socket itself.
//   - active: the reader handles requests; the writer goroutine is the only
//     one that writes to the socket (subscriptions, appends' callbacks and
//     channel closers hand it replies and frames).
//   - draining: no request is read any more. Entered by the reader (the
//     client's end of stream, a Fatal to send, a read error), by Shutdown,
//     or by a reply that failed to encode; entering it wakes a blocked
//     read. serve then ends the subscriptions, waits for the appends in
//     flight and the channels closing, queues the last message, lets the
//     writer flush and end, releases the chains (and so the locks), and
//     closes the socket.
//   - closed: the socket is closed: nothing more is read or written. ctx is
//     cancelled on entering it, which ends every wait of the connection's
//     goroutines. Entered at the end of draining, or at once by kill (a
//     failed write, a failed handshake, Server.Close, Shutdown's deadline,
//     a panic).
//
// serve is the one close path: whichever way a connection ends, serve
// runs finish and teardown, and teardown waits for every goroutine the
// connection started before it returns.
type connState int32

const (
	stateHandshake connState = iota
	stateActive
	stateDraining
	stateClosed
)

var stateNames = [...]string{"handshake", "active", "draining", "closed"}

// String returns the state's name.
func (s connState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("connState(%d)", int32(s))
}

// conn is one client connection. Its goroutines, all waited for by serve
// before it returns:
//
//   - serve: hello, key exchange, then the reader loop, then the teardown;
//   - the writer (writer.go): the only socket writer after the handshake;
//   - one per subscription, reading its chain cursor and handing its
//     frames to the writer;
//   - one per channel being closed, answering Closed once the channel's
//     appends are answered.
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

	st     atomic.Int32    // connState; moved by advance only
	ctx    context.Context // cancelled on entering stateClosed
	cancel context.CancelFunc

	// existingOnly: the client asked (proto.FeatureExistingOnly) that its
	// channels open only chains that exist. Set by the handshake.
	existingOnly bool
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

	// The outgoing queue (see writer.go), guarded by outMu: replies are
	// encoded straight into out, one body after the other; items lists
	// them and the subscriptions' frames in the order they are to go out.
	slots chan struct{} // reply slots, MaxPending
	outMu sync.Mutex
	out   []byte
	items []outItem
	offs  []uint64 // scratch for Confirmed offsets
	// deferWake is set while the reader hands an append that may commit
	// inline: the replies queued meanwhile wake the writer once, in
	// writeDeferredReplies, instead of one by one.
	deferWake bool
	// fatalQueued: a Fatal is in the queue (a reply failed to encode); no
	// other last message follows it.
	fatalQueued bool
	outClosed   bool // closeQueue: the writer ends once the queue is written
	wake        chan struct{}
	writerWG    sync.WaitGroup

	// Owned by the writer goroutine.
	spareOut   []byte
	spareItems []outItem
	scratch    []byte    // Events built for a FrameConn that cannot build in place
	writeDL    time.Time // the socket's write deadline
	werr       error     // the first write error: sticky

	inflight sync.WaitGroup // appends handed to chains, not yet answered
	subsWG   sync.WaitGroup
}

func (s *Server) newConn(nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	remote := nc.RemoteAddr().String()
	return &conn{
		s:        s,
		nc:       nc,
		owner:    chain.Owner{Name: remote},
		log:      s.cfg.Logger.With("remote", remote),
		ctx:      ctx,
		cancel:   cancel,
		channels: make(map[uint32]*channel),
		closing:  make(map[uint32]struct{}),
		slots:    make(chan struct{}, s.cfg.MaxPending),
		wake:     make(chan struct{}, 1),
	}
}

// state returns the connection's state.
func (c *conn) state() connState { return connState(c.st.Load()) }

// advance moves the connection forward to state to, and reports whether
// it moved (false: it was there or past it already). Entering draining
// wakes a reader blocked on the socket; entering closed cancels ctx and
// closes the socket. Safe for concurrent use.
func (c *conn) advance(to connState) bool {
	for {
		from := c.state()
		if from >= to {
			return false
		}
		if c.st.CompareAndSwap(int32(from), int32(to)) {
			break
		}
	}
	switch to {
	case stateDraining:
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	case stateClosed:
		c.cancel()
		c.nc.Close()
	}
	return true
}

// shutdown asks for a graceful end (Server.Shutdown).
func (c *conn) shutdown() { c.advance(stateDraining) }

// kill closes the connection at once.
func (c *conn) kill() { c.advance(stateClosed) }

// errFatal ends the connection after sending Fatal{code, reason}.
type fatalError struct {
	code   proto.ErrorCode
	reason string
}

func (e *fatalError) Error() string { return fmt.Sprintf("%s: %s", e.code, e.reason) }

func fatalf(code proto.ErrorCode, format string, args ...any) error {
	return &fatalError{code: code, reason: fmt.Sprintf(format, args...)}
}

// serve runs the connection from hello to close; it is the connection's
// one close path. A panic anywhere in it closes this connection only.
func (c *conn) serve() {
	defer c.s.untrack(c)
	defer func() {
		if p := recover(); p != nil {
			c.s.stats.panics.Add(1)
			c.log.Error("connection panicked; closing it", "panic", p, "stack", string(debug.Stack()))
			c.kill()
			c.teardown(false)
		}
	}()
	// No SetNoDelay: Go creates every TCPConn with TCP_NODELAY set.
	ch0, err := c.handshake()
	if err != nil {
		c.log.Debug("handshake failed", "err", err)
		c.kill()
		c.release()
		return
	}
	c.writerWG.Add(1)
	go c.writer()
	if !c.st.CompareAndSwap(int32(stateHandshake), int32(stateActive)) {
		// Shutdown (or Close) came during the handshake.
		c.finish(nil)
		return
	}
	c.log.Debug("connected")
	if ch0 != nil {
		c.openChannel0(ch0)
	}
	c.finish(c.readLoop())
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
			return refuse(c.handshakeTimeout(fmt.Sprintf("no hello within %s", cfg.HandshakeTimeout)))
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
			return refuse(c.handshakeTimeout(fmt.Sprintf("hello incomplete after %s", cfg.HandshakeTimeout)))
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

// handshakeTimeout returns the refusal of a hello read that hit its
// deadline: the handshake timeout, or Shutdown, which wakes the read.
func (c *conn) handshakeTimeout(reason string) (proto.ErrorCode, string) {
	if c.state() != stateHandshake {
		return proto.CodeShuttingDown, "the server is shutting down"
	}
	return proto.CodeTimeout, reason
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
		if c.state() != stateActive {
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
			if c.state() != stateActive {
				return nil // Shutdown, kill, or a reply that failed to encode
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

// finish ends the connection after the reader loop, whose error says
// why: nil for the client's end of stream or a stop from elsewhere (the
// state says which), a *fatalError to send. It moves to draining, ends the
// subscriptions (answering Unsubscribed{shutting down} for the live ones
// when the server is shutting down), waits for the appends in flight
// (their replies are still sent) and the channels closing, queues the
// last message (a Fatal) and tears down.
func (c *conn) finish(err error) {
	var fe *fatalError
	shuttingDown := c.state() == stateDraining && c.s.shuttingDown()
	linger := true
	switch {
	case c.state() == stateClosed:
	case errors.As(err, &fe):
		c.log.Info("closing connection", "code", fe.code.String(), "reason", fe.reason)
	case shuttingDown:
		fe = &fatalError{code: proto.CodeShuttingDown, reason: "the server is shutting down"}
	case err != nil:
		c.log.Debug("connection ended", "err", err)
		var openErr *kex.OpenError
		if errors.As(err, &openErr) {
			c.kill() // the session is dead both ways: nothing more can be sent
		}
	case c.state() == stateActive:
		// The reader saw io.EOF: after the client's clean end no unread
		// input is left to turn the close into a reset that could lose
		// our last frames, nothing to linger for.
		c.log.Debug("connection closed by the client")
		linger = false
	}
	c.advance(stateDraining)
	c.stopSubscriptions(fe != nil && fe.code == proto.CodeShuttingDown)
	c.inflight.Wait()
	c.closers.Wait()
	c.outMu.Lock()
	fatalQueued := c.fatalQueued
	c.outMu.Unlock()
	if fe != nil && !fatalQueued && c.acquireSlot() {
		c.reply(&proto.Fatal{Code: fe.code, Reason: fe.reason})
	}
	c.teardown(linger)
}

// teardown stops everything the connection started and waits for it, lets
// the writer write what is queued and end, releases the chains (and so the
// locks) and then closes the socket: a client that waits for the end of
// stream knows its locks are free. linger half-closes first and drains
// what the client still sends for a moment (lingerClose). Safe to call
// more than once.
func (c *conn) teardown(linger bool) {
	c.advance(stateDraining)
	c.stopSubscriptions(false)
	c.inflight.Wait()
	c.closers.Wait() // their Closed replies are written below
	c.closeQueue()
	c.writerWG.Wait()
	for id, ch := range c.channels {
		ch.h.Release()
		delete(c.channels, id)
	}
	if linger && c.state() != stateClosed {
		lingerClose(c.nc)
	}
	c.kill()
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

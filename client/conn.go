package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// aLongTimeAgo is a deadline in the past, used to unblock pending I/O.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one TCP connection of a Client: the frame stream (sealed when
// wire encryption is on), its out queue and its reader and writer
// goroutines. The Client's run loop owns it: it dials it, attaches it,
// waits for it to die and detaches it.
type conn struct {
	c  *Client
	nc net.Conn
	// fc writes frames (sealing them when wire encryption is on); reading
	// goes through rx, whose frames sc opens.
	fc    proto.FrameConn
	rx    *frameReader
	sc    *kex.Conn // nil without wire encryption
	sess  *kex.Session
	nonce [proto.NonceSize]byte
	out   *outQueue
	// maxBody is the largest frame body this connection can send.
	maxBody int

	// rxBusy counts the chunks handed to the dispatcher goroutine and not
	// yet handled (wire encryption only).
	rxBusy atomic.Int32

	dead     chan struct{} // closed by kill
	killOnce sync.Once
	err      error // why it died; set before dead is closed
	wg       sync.WaitGroup

	// wmu serialises writing to fc: the writer goroutine, and callers of
	// kick that write their own request instead of waking the writer.
	wmu   sync.Mutex
	batch [][]byte // guarded by wmu

	// fw is the plain frame writer under fc (guarded by wmu once the
	// writer runs); releaseBuffers hands its buffer back.
	fw *proto.FrameWriter
}

// dialConn connects, says hello, runs the key exchange if any and waits
// for the URL's chain to open on channel 0. Everything is bounded by the
// handshake timeout and ctx. The returned conn has no goroutines yet.
func (c *Client) dialConn(ctx context.Context) (*conn, error) {
	o := &c.o
	ctx, cancel := context.WithTimeout(ctx, o.handshakeTimeout)
	defer cancel()
	nc, err := o.dial(ctx, "tcp", c.target.Addr)
	if err != nil {
		return nil, fmt.Errorf("client: connect to %s: %w", c.target.Addr, err)
	}
	cn := &conn{c: c, nc: nc, dead: make(chan struct{}), out: newOutQueue()}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	err = cn.handshake()
	if stopped := stop(); err == nil && !stopped || err != nil && ctx.Err() != nil {
		// The deadline fired (or was poisoned by the AfterFunc) first.
		err = fmt.Errorf("client: handshake with %s: %w", c.target.Addr, context.Cause(ctx))
	}
	if err != nil {
		nc.Close()
		if cn.sess != nil {
			cn.sess.Close()
		}
		cn.releaseBuffers()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return cn, nil
}

// releaseBuffers hands the connection's receive slots and write buffer
// back to the pools that connections share. Called once its goroutines
// have ended (or never started); the write buffer is released under wmu,
// since a caller of kick may still hold the dead connection.
func (cn *conn) releaseBuffers() {
	cn.wmu.Lock()
	if cn.fw != nil {
		cn.fw.Release()
	}
	cn.wmu.Unlock()
	if cn.rx != nil {
		cn.rx.release()
	}
}

func (cn *conn) handshake() error {
	c := cn.c
	o := &c.o
	wanted := o.keySize
	hello := proto.Hello{
		Version:  proto.ProtocolVersion,
		KeySize:  proto.KeySize(wanted),
		Route:    c.target.Route,
		ChainKey: c.target.ChainKey,
	}
	if o.pin != "" {
		hello.Features |= proto.FeatureServerIdentity
	}
	if o.existingOnly {
		hello.Features |= proto.FeatureExistingOnly
	}
	helloBody, err := hello.AppendBinary(nil)
	if err != nil {
		return fmt.Errorf("client: encode hello: %w", err)
	}
	fw := proto.NewFrameWriter(cn.nc, o.maxFrame)
	cn.fw = fw
	cn.rx = newFrameReader(cn.nc, fw.MaxFrameSize(), cn.dead)
	stream := rawConn{cn.rx, fw}
	if err := stream.WriteFrame(helloBody); err != nil {
		return fmt.Errorf("client: send hello: %w", err)
	}
	if err := stream.Flush(); err != nil {
		return fmt.Errorf("client: send hello: %w", err)
	}
	body, err := stream.ReadFrame()
	if err != nil {
		return fmt.Errorf("client: read hello-ack from %s: %w", c.target.Addr, err)
	}
	ackBody := append([]byte(nil), body...) // the kex transcript needs the exact bytes
	var ack proto.HelloAck
	if t, _ := proto.PeekType(ackBody); t == proto.TypeFatal {
		var f proto.Fatal
		if err := f.Decode(ackBody); err == nil {
			return &ServerError{Op: "hello", Code: f.Code, Reason: f.Reason, Fatal: true}
		}
	}
	if err := ack.Decode(ackBody); err != nil {
		if errors.Is(err, proto.ErrUnsupportedVersion) {
			return &ServerError{Op: "hello", Code: proto.CodeUnsupportedVersion,
				Reason: fmt.Sprintf("the server speaks protocol version %d, this client %d", ack.Version, proto.ProtocolVersion)}
		}
		return &ProtocolError{Msg: "HelloAck", Reason: "undecodable", Err: err}
	}
	if ack.Code != proto.CodeOK {
		return &ServerError{Op: "hello", Code: ack.Code, Reason: ack.Reason}
	}
	negotiated := kex.KeySize(ack.KeySize)
	if err := kex.CheckNegotiated(wanted, negotiated); err != nil {
		return &handshakeSecurityError{fmt.Errorf("client: %w", err)}
	}
	if o.pin != "" && (ack.Features&proto.FeatureServerIdentity == 0 || negotiated == kex.KeySizeNone) {
		return &handshakeSecurityError{fmt.Errorf("client: %w: the server did not offer to prove an identity", kex.ErrFingerprintMismatch)}
	}
	cn.nonce = ack.Nonce
	cn.fc = stream
	cn.maxBody = fw.MaxFrameSize()
	if negotiated != kex.KeySizeNone {
		cfg := kex.ClientConfig{}
		if o.pin != "" {
			cfg.PinnedFingerprint = []byte(o.pin)
		}
		sess, err := kex.ClientHandshake(stream, helloBody, ackBody, negotiated, cfg)
		if err != nil {
			if errors.Is(err, kex.ErrFingerprintMismatch) || errors.Is(err, kex.ErrBadSignature) ||
				errors.Is(err, kex.ErrKeyConfirmation) {
				return &handshakeSecurityError{fmt.Errorf("client: key exchange with %s: %w", c.target.Addr, err)}
			}
			return fmt.Errorf("client: key exchange with %s: %w", c.target.Addr, err)
		}
		cn.sess = sess
		cn.sc = sess.Conn(stream)
		cn.fc = cn.sc
		cn.maxBody = cn.sc.MaxFrameSize()
	}
	// Channel 0 is the URL's chain: wait until it is open, so that a
	// refused or unopenable chain fails Dial with the server's reason.
	for {
		body, err := cn.fc.ReadFrame()
		if err != nil {
			return fmt.Errorf("client: waiting for chain %q to open: %w", c.target.ChainKey, err)
		}
		t, err := proto.PeekType(body)
		if err != nil {
			return &ProtocolError{Msg: "frame", Reason: "before channel 0 opened", Err: err}
		}
		switch t {
		case proto.TypeOpened:
			var m proto.Opened
			if err := m.Decode(body); err != nil || m.Channel != 0 {
				return &ProtocolError{Msg: "Opened", Reason: "expected channel 0", Err: err}
			}
			return nil
		case proto.TypeError:
			var m proto.Error
			if err := m.Decode(body); err != nil {
				return &ProtocolError{Msg: "Error", Reason: "undecodable", Err: err}
			}
			return &ServerError{Op: "open " + c.target.ChainKey, Code: m.Code, Reason: m.Reason}
		case proto.TypeFatal:
			var m proto.Fatal
			if err := m.Decode(body); err != nil {
				return &ProtocolError{Msg: "Fatal", Reason: "undecodable", Err: err}
			}
			return &ServerError{Op: "open " + c.target.ChainKey, Code: m.Code, Reason: m.Reason, Fatal: true}
		case proto.TypePing:
			var m proto.Ping
			if err := m.Decode(body); err != nil {
				return &ProtocolError{Msg: "Ping", Reason: "undecodable", Err: err}
			}
			pong, _ := (&proto.Pong{ID: m.ID}).AppendBinary(nil)
			if err := cn.fc.WriteFrame(pong); err != nil {
				return err
			}
			if err := cn.fc.Flush(); err != nil {
				return err
			}
		default:
			return &ProtocolError{Msg: t.String(), Reason: "received before channel 0 opened"}
		}
	}
}

// Receive pipeline (wire encryption only).
const (
	// rxQueue is how many received chunks may wait for the dispatcher
	// goroutine (the slots they are in bound their bytes).
	rxQueue = 16
	// rxInlineMax: a chunk up to this size is opened and dispatched by
	// the reader goroutine itself when the dispatcher goroutine is idle,
	// so a small reply (Confirmed, LockResult, Pong) takes no extra
	// goroutine hop.
	rxInlineMax = 16 << 10
	// rxOpenAsideMin: a sealed frame of at least this size is decrypted
	// out of place (dispatcher.openAside), so that a subscription can keep
	// its events without copying them.
	rxOpenAsideMin = 16 << 10
)

// start launches the writer goroutine and the receive path. With wire
// encryption, a reader goroutine reads chunks of sealed frames from the
// socket and hands the large ones to a dispatcher goroutine that opens
// and dispatches them, so that socket reads and AES-GCM run on two cores.
// Without it, the reader goroutine dispatches every chunk itself: there is
// no decryption to move off it, and on this 2-core machine handing plain
// frames over cost more CPU per byte than it saved in wall time.
func (cn *conn) start() {
	d := &dispatcher{cn: cn}
	if cn.sc == nil {
		cn.wg.Add(2)
		go cn.writer()
		go cn.reader(d, nil)
		return
	}
	chunks := make(chan rxChunk, rxQueue)
	cn.wg.Add(3)
	go cn.writer()
	go cn.reader(d, chunks)
	go cn.dispatcher(d, chunks)
}

// kill ends the connection with err (the first cause wins) and unblocks
// both goroutines. Safe to call any number of times from any goroutine.
func (cn *conn) kill(err error) {
	cn.killOnce.Do(func() {
		cn.err = err
		close(cn.dead)
		cn.out.close()
		_ = cn.nc.SetDeadline(aLongTimeAgo)
		_ = cn.nc.Close()
	})
}

// send queues a message; the writer goroutine sends it. It reports false
// if the connection is already dying (the caller's request will then be
// handled by the reconnect logic).
func (cn *conn) send(m proto.Message) bool {
	body, err := m.AppendBinary(nil)
	if err != nil {
		// Every message the client builds is checked before; this is a bug.
		panic(fmt.Sprintf("client: encode %s: %v", m.Type(), err))
	}
	return cn.out.push(body)
}

func (cn *conn) writer() {
	defer cn.wg.Done()
	for {
		select {
		case <-cn.out.wake:
		case <-cn.dead:
			return
		}
		cn.wmu.Lock()
		closed, err := cn.writeQueuedLocked()
		cn.wmu.Unlock()
		if err != nil {
			cn.kill(fmt.Errorf("%w: write: %w", ErrConnectionLost, err))
			return
		}
		if closed {
			return
		}
	}
}

// writeQueuedLocked writes and flushes every queued frame. It reports
// whether the queue is closed and empty. Called with wmu held.
func (cn *conn) writeQueuedLocked() (closed bool, err error) {
	cn.batch, closed = cn.out.take(cn.batch[:0])
	defer clear(cn.batch)
	if len(cn.batch) == 0 {
		return closed, nil
	}
	for _, b := range cn.batch {
		if err := cn.fc.WriteFrame(b); err != nil {
			return closed, err
		}
	}
	return closed, cn.fc.Flush()
}

// kick sends what pushQuiet queued: from the calling goroutine when no
// other is writing (no hop through the writer goroutine, which matters for
// one request waiting for its reply), otherwise by waking the writer. It
// may wait while the socket is full (the server is not reading); kill ends
// that wait. It must not be called with Client.mu held.
func (cn *conn) kick() {
	if !cn.wmu.TryLock() {
		cn.out.signal()
		return
	}
	_, err := cn.writeQueuedLocked()
	cn.wmu.Unlock()
	if err != nil {
		cn.kill(fmt.Errorf("%w: write: %w", ErrConnectionLost, err))
		return
	}
	if cn.out.pending() {
		cn.out.signal() // pushed while we wrote, by a caller that found us writing
	}
}

// reader reads the socket. With chunks it hands chunks of frames to the
// dispatcher goroutine, and the error that ends the stream after them (so
// the frames sent before a Fatal and a close are handled first), except
// small chunks while the dispatcher goroutine is idle, which it handles
// itself with d; without chunks, it handles every chunk. d is used by one
// goroutine at a time: the dispatcher goroutine only while rxBusy counts
// a chunk handed to it.
func (cn *conn) reader(d *dispatcher, chunks chan<- rxChunk) {
	defer cn.wg.Done()
	keepAlive := cn.c.o.keepAlive
	var pingID uint64
	pinged := false
	var deadline time.Time
	for {
		// Moving the deadline costs a timer update, per frame a visible
		// share of the receive path: move it only once keepAlive/64 has
		// passed, so silence draws a Ping after 63/64 to all of keepAlive.
		if now := time.Now(); deadline.Sub(now) < keepAlive-keepAlive/64 {
			deadline = now.Add(keepAlive)
			_ = cn.nc.SetReadDeadline(deadline)
		}
		ch, err := cn.rx.readChunk()
		if err != nil {
			select {
			case <-cn.dead:
				return
			default:
			}
			var ne net.Error
			if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, os.ErrDeadlineExceeded) {
				if !pinged {
					pinged = true
					pingID++
					cn.send(&proto.Ping{ID: pingID | 1<<63})
					continue
				}
				cn.kill(fmt.Errorf("%w: no answer from the server for %s", ErrConnectionLost, 2*keepAlive))
				return
			}
			err = fmt.Errorf("%w: read: %w", ErrConnectionLost, err)
			if chunks == nil || cn.rxBusy.Load() == 0 {
				cn.kill(err)
				return
			}
			cn.rxBusy.Add(1)
			select {
			case chunks <- rxChunk{err: err}:
			case <-cn.dead:
			}
			return
		}
		pinged = false
		if chunks != nil && (len(ch.b) > rxInlineMax || cn.rxBusy.Load() > 0) {
			cn.rxBusy.Add(1)
			select {
			case chunks <- ch:
			case <-cn.dead:
				ch.release()
				return
			}
			continue
		}
		err = cn.handleChunk(d, &ch)
		ch.release()
		if err != nil {
			cn.kill(err)
			return
		}
	}
}

// dispatcher opens and dispatches the chunks the reader goroutine
// handed over, in order, until the connection dies.
func (cn *conn) dispatcher(d *dispatcher, chunks <-chan rxChunk) {
	defer cn.wg.Done()
	for {
		var ch rxChunk
		select {
		case ch = <-chunks:
		case <-cn.dead:
			return
		}
		if ch.err != nil {
			cn.kill(ch.err)
			return
		}
		err := cn.handleChunk(d, &ch)
		ch.release()
		if err != nil {
			cn.kill(err)
			return
		}
		cn.rxBusy.Add(-1) // last: the reader may use d once it reads 0
	}
}

// handleChunk opens (with wire encryption) and dispatches every frame of
// ch. The error it returns ends the connection.
func (cn *conn) handleChunk(d *dispatcher, ch *rxChunk) error {
	for b := ch.b; len(b) > 0; {
		var body []byte
		body, b = nextFrame(b)
		if cn.sc != nil {
			var err error
			if len(body) >= rxOpenAsideMin {
				body, err = d.openAside(cn.sc, body)
			} else {
				body, err = cn.sc.OpenFrame(body)
			}
			if err != nil {
				return fmt.Errorf("%w: read: %w", ErrConnectionLost, err)
			}
		}
		err := d.dispatch(body)
		if d.aside {
			d.endAside()
		}
		if err != nil {
			cn.c.o.log.Warn("atedb client: dropping connection", "addr", cn.c.target.Addr, "err", err)
			return err
		}
	}
	return nil
}

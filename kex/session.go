package kex

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/atedb/atedb/proto"
)

// Rekey and exhaustion limits, per direction (part of the wire format; never
// change: both ends must ratchet at the same frame).
const (
	// RekeyAfterFrames is the soft limit: after this many frames under one
	// key, both ends ratchet the direction's key (see docs/PROTOCOL.md §11.9).
	RekeyAfterFrames = 1 << 24
	// RekeyAfterBytes is the other soft limit: once this many plaintext bytes
	// have been sealed under one key, both ends ratchet after that frame.
	// With frames of at most 4 GiB, one key never seals more than 2^35
	// bytes (2^31 AES blocks), far inside AES-GCM's safety bounds.
	RekeyAfterBytes = 1 << 34
	// RejectAfterFrames is the hard limit: a direction refuses to seal or
	// open its frame number RejectAfterFrames (counting from 0, key
	// confirmation included), so the 64-bit nonce counter can never wrap.
	// Unreachable in practice (58,000 years at 10 million frames/s).
	RejectAfterFrames = math.MaxUint64
)

var (
	// ErrDecrypt is matched by an [*OpenError]: a sealed frame failed
	// authentication (tampered, truncated, replayed, reordered, dropped
	// before, or sealed for the other direction). The session is dead.
	ErrDecrypt = errors.New("kex: sealed frame failed authentication")
	// ErrExhausted is returned when a direction reached
	// [RejectAfterFrames]; the connection must be closed.
	ErrExhausted = errors.New("kex: nonce counter exhausted")
	// ErrClosed is returned by every call on a [Session] or [Conn] after
	// [Session.Close].
	ErrClosed = errors.New("kex: session closed")
	// ErrKeyConfirmation is matched by handshake errors when the peer's
	// key-confirmation frame does not open: the two ends saw different
	// transcripts (a man in the middle changed a message) or derived
	// different keys.
	ErrKeyConfirmation = errors.New("kex: key confirmation failed")
)

// OpenError reports a sealed frame that failed to open. errors.Is(err,
// ErrDecrypt) is true. The session that returned it is dead: every later
// ReadFrame and WriteFrame returns the same error.
type OpenError struct {
	Direction string // "client to server" or "server to client"
	Counter   uint64 // frame counter the frame was expected to carry
	Size      int    // sealed body size
}

func (e *OpenError) Error() string {
	if e.Size < TagSize {
		return fmt.Sprintf("%v: %s frame %d: %d bytes, shorter than the %d-byte tag", ErrDecrypt, e.Direction, e.Counter, e.Size, TagSize)
	}
	return fmt.Sprintf("%v: %s frame %d (%d bytes)", ErrDecrypt, e.Direction, e.Counter, e.Size)
}

// Is reports whether target is ErrDecrypt.
func (e *OpenError) Is(target error) bool { return target == ErrDecrypt }

// limits are a direction's rekey and exhaustion thresholds; tests shrink
// them to reach the boundaries.
type limits struct {
	rekeyFrames uint64 // ratchet after this many frames under one key
	rekeyBytes  uint64 // ratchet once this many plaintext bytes were sealed under one key
	rejectAt    uint64 // first counter value that is refused
}

var defaultLimits = limits{rekeyFrames: RekeyAfterFrames, rekeyBytes: RekeyAfterBytes, rejectAt: RejectAfterFrames}

// direction is the state of one direction of a session: a traffic secret,
// the AES-GCM key derived from it, and the frame counter. Fields below mu
// are guarded by it.
type direction struct {
	name   string // "client to server" or "server to client"
	keyLen int
	lim    limits

	mu          sync.Mutex
	secret      [secretSize]byte // traffic secret of the current epoch
	aead        cipher.AEAD      // nil once dead
	nonce       [NonceSize]byte  // scratch: 4 zero bytes || counter LE
	counter     uint64           // counter of the next frame
	epoch       uint64           // ratchets done
	epochFrames uint64           // frames under the current key
	epochBytes  uint64           // plaintext bytes under the current key
	err         error            // sticky
}

// init installs the epoch-0 key derived from secret (which it copies; the
// caller wipes its own copy).
func (d *direction) init(name string, secret *[secretSize]byte, keyLen int, lim limits) error {
	d.name, d.keyLen, d.lim = name, keyLen, lim
	d.secret = *secret
	return d.installKeyLocked()
}

// installKeyLocked derives the AES-GCM key of the current epoch.
func (d *direction) installKeyLocked() error {
	key, err := trafficKey(&d.secret, d.keyLen)
	if err != nil {
		return fmt.Errorf("kex: derive %s key: %w", d.name, err)
	}
	block, err := aes.NewCipher(key)
	clear(key)
	if err != nil {
		return fmt.Errorf("kex: %s cipher: %w", d.name, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("kex: %s cipher: %w", d.name, err)
	}
	d.aead = aead
	d.epochFrames, d.epochBytes = 0, 0
	return nil
}

// nonceLocked writes the current counter into the nonce scratch.
func (d *direction) nonceLocked() []byte {
	binary.LittleEndian.PutUint64(d.nonce[nonceCounterOffset:], d.counter)
	return d.nonce[:]
}

// readyLocked returns the error that stops the next frame, if any.
func (d *direction) readyLocked() error {
	if d.err != nil {
		return d.err
	}
	if d.counter >= d.lim.rejectAt {
		d.failLocked(fmt.Errorf("%w: %s after %d frames", ErrExhausted, d.name, d.counter))
		return d.err
	}
	return nil
}

// sealLocked appends the sealed form of plaintext to dst under the next
// counter. dst and plaintext may overlap only exactly (in place).
func (d *direction) sealLocked(dst, plaintext []byte) ([]byte, error) {
	if err := d.readyLocked(); err != nil {
		return dst, err
	}
	out := d.aead.Seal(dst, d.nonceLocked(), plaintext, nil)
	return out, d.advanceLocked(len(plaintext))
}

// openLocked opens body in place and returns the plaintext (aliasing body).
// Any failure kills the direction.
func (d *direction) openLocked(body []byte) ([]byte, error) {
	return d.openToLocked(body[:0], body)
}

// openToLocked opens body and appends the plaintext to dst, which is
// either body[:0] (in place) or has spare capacity that does not overlap
// body. Any failure kills the direction (and crypto/cipher wipes what it
// wrote into dst).
func (d *direction) openToLocked(dst, body []byte) ([]byte, error) {
	if err := d.readyLocked(); err != nil {
		return nil, err
	}
	if len(body) < TagSize {
		d.failLocked(&OpenError{Direction: d.name, Counter: d.counter, Size: len(body)})
		return nil, d.err
	}
	pt, err := d.aead.Open(dst, d.nonceLocked(), body, nil)
	if err != nil {
		d.failLocked(&OpenError{Direction: d.name, Counter: d.counter, Size: len(body)})
		return nil, d.err
	}
	return pt, d.advanceLocked(len(body) - TagSize)
}

// advanceLocked counts one frame of n plaintext bytes and ratchets the key
// when a soft limit is reached.
func (d *direction) advanceLocked(n int) error {
	d.counter++
	d.epochFrames++
	d.epochBytes += uint64(n)
	if d.epochFrames < d.lim.rekeyFrames && d.epochBytes < d.lim.rekeyBytes {
		return nil
	}
	if err := ratchetSecret(&d.secret); err != nil {
		d.failLocked(fmt.Errorf("kex: ratchet %s key: %w", d.name, err))
		return d.err
	}
	d.epoch++
	if err := d.installKeyLocked(); err != nil {
		d.failLocked(err)
		return d.err
	}
	return nil
}

// failLocked records err (if no error is recorded yet) and wipes the keys.
func (d *direction) failLocked(err error) {
	if d.err == nil {
		d.err = err
	}
	clear(d.secret[:])
	d.aead = nil
}

// fail is failLocked for callers that do not hold mu.
func (d *direction) fail(err error) {
	d.mu.Lock()
	d.failLocked(err)
	d.mu.Unlock()
}

// Session is an established wire-encryption session: the result of
// [ServerHandshake] or [ClientHandshake]. It holds one traffic secret, one
// AES-GCM key and one frame counter per direction. Use it through
// [Session.Conn]. Its methods are safe for concurrent use.
type Session struct {
	size   KeySize
	th     [secretSize]byte
	peerID []byte // client side: the server's encoded identity public key, if any

	tx, rx direction
}

// newSession derives both directions from the shared secret and the
// transcript hash. The caller wipes sharedSecret.
func newSession(size KeySize, isClient bool, th [secretSize]byte, sharedSecret []byte, lim limits) (*Session, error) {
	var c2s, s2c [secretSize]byte
	defer clear(c2s[:])
	defer clear(s2c[:])
	if err := deriveTrafficSecrets(sharedSecret, th, &c2s, &s2c); err != nil {
		return nil, fmt.Errorf("kex: derive traffic secrets: %w", err)
	}
	s := &Session{size: size, th: th}
	txSecret, rxSecret := &s2c, &c2s
	txName, rxName := "server to client", "client to server"
	if isClient {
		txSecret, rxSecret = rxSecret, txSecret
		txName, rxName = rxName, txName
	}
	if err := s.tx.init(txName, txSecret, size.aesKeyLen(), lim); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.rx.init(rxName, rxSecret, size.aesKeyLen(), lim); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// KeySize returns the negotiated key size of s.
func (s *Session) KeySize() KeySize { return s.size }

// TranscriptHash returns the SHA-256 of the whole handshake transcript (see
// docs/PROTOCOL.md §11). Both ends have the same value; it is public and
// can bind an application-level proof to this connection.
func (s *Session) TranscriptHash() [32]byte { return s.th }

// PeerFingerprint returns, on the client, the fingerprint of the identity
// the server presented (and proved by signing the transcript), or "" when
// the server presented none. It returns "" on the server.
func (s *Session) PeerFingerprint() string {
	if s.peerID == nil {
		return ""
	}
	return Fingerprint(s.peerID)
}

// Close wipes the traffic secrets of both directions and drops the
// ciphers; afterwards every ReadFrame and WriteFrame of the session's
// Conns returns [ErrClosed] (or the error that killed the session first).
// The AES key schedule inside crypto/aes cannot be wiped from Go; it
// becomes unreachable. Close does not close the underlying connection and
// does not wait for a blocked ReadFrame; it is idempotent and returns nil.
func (s *Session) Close() error {
	s.rx.fail(ErrClosed)
	s.tx.fail(ErrClosed)
	return nil
}

// kill records err on both directions and wipes them: after a failed open,
// nothing more is sent or received.
func (s *Session) kill(err error) {
	s.rx.fail(err)
	s.tx.fail(err)
}

// Conn returns a [proto.FrameConn] that seals every frame written through
// it and opens every frame read from it, over fc. All Conns of a session
// share its counters, so a session is normally wrapped once, around the
// FrameConn the handshake ran on.
func (s *Session) Conn(fc proto.FrameConn) *Conn {
	c := &Conn{s: s, fc: fc}
	c.fb, _ = fc.(frameBuilder)
	if m, ok := fc.(interface{ MaxFrameSize() int }); ok {
		c.max = m.MaxFrameSize()
	}
	return c
}

// frameBuilder is implemented by proto.FrameWriter (and proto.Stream): it
// lets a frame be sealed straight into the writer's buffer.
type frameBuilder interface {
	BeginFrame() []byte
	EndFrame(buf []byte) error
}

// Conn is a sealed [proto.FrameConn]: WriteFrame seals a body (AES-GCM,
// counter nonce) into the underlying FrameConn's buffer, BeginFrame and
// EndFrame seal a body built in that buffer where it lies (no copy),
// ReadFrame opens the next frame in place. In steady state none of them
// allocates.
//
// As for every FrameConn, one goroutine may read while another writes;
// ReadFrame, and WriteFrame/Flush, must not be called concurrently with
// themselves. Any frame that fails to open kills the session: that
// ReadFrame and every later ReadFrame and WriteFrame return the same
// [*OpenError], and the caller must close the connection. Errors of the
// underlying FrameConn are returned unchanged (io.EOF stays io.EOF); a read
// error leaves the session usable, a write error makes writing sticky-fail.
type Conn struct {
	s     *Session
	fc    proto.FrameConn
	fb    frameBuilder // fc, when it can build frames in place
	max   int          // largest body fc accepts, 0 when unknown
	wbuf  []byte       // seal buffer when fc cannot build in place
	begin int          // BeginFrame: where the body starts in the buffer it returned
}

// MaxFrameSize returns the largest plaintext body WriteFrame accepts: the
// underlying FrameConn's limit minus [Overhead], or 0 when the underlying
// FrameConn does not state one.
func (c *Conn) MaxFrameSize() int {
	if c.max <= 0 {
		return 0
	}
	return max(c.max-Overhead, 0)
}

// ReadFrame reads and opens the next frame. The plaintext aliases the
// underlying reader's buffer and stops being valid at the next ReadFrame.
// Errors: the underlying FrameConn's (unchanged, session still usable), an
// [*OpenError] (session dead), [ErrExhausted] or [ErrClosed].
func (c *Conn) ReadFrame() ([]byte, error) {
	d := &c.s.rx
	d.mu.Lock()
	err := d.err
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	body, err := c.fc.ReadFrame()
	if err != nil {
		return nil, err
	}
	return c.OpenFrame(body)
}

// OpenFrame opens sealed, the body of the next frame of the underlying
// stream, which the caller read itself instead of through ReadFrame (for
// instance on another goroutine, so that socket reads and decryption run
// on two cores). It decrypts in place: the plaintext aliases sealed, whose
// bytes are overwritten, and nothing is allocated.
//
// Frames must be passed exactly once each, in the order they arrived;
// ReadFrame and OpenFrame may be mixed, since both take the next frame
// counter, but must not run concurrently with each other or themselves.
// A frame passed out of order, twice, or altered fails to open. Any
// failure kills the session as ReadFrame's does: that call and every later
// OpenFrame, ReadFrame and WriteFrame return the same [*OpenError] (or
// [ErrExhausted], [ErrClosed]), and the caller must close the connection.
func (c *Conn) OpenFrame(sealed []byte) ([]byte, error) {
	return c.OpenFrameTo(sealed[:0], sealed)
}

// OpenFrameTo is [Conn.OpenFrame] decrypting out of place: it appends the
// plaintext of sealed to dst and returns the extended slice, leaving
// sealed unchanged, so that a receiver can decrypt a frame straight into
// the buffer that will keep it instead of decrypting in place and copying.
// dst is either sealed[:0] (in place, as OpenFrame) or a slice whose spare
// capacity does not overlap sealed (else it panics, as crypto/cipher does).
// It allocates only when dst lacks the capacity. Order, counters and
// failures are those of OpenFrame; on failure the plaintext is never
// returned and what was written into dst's spare capacity is wiped.
func (c *Conn) OpenFrameTo(dst, sealed []byte) ([]byte, error) {
	d := &c.s.rx
	d.mu.Lock()
	pt, err := d.openToLocked(dst, sealed)
	d.mu.Unlock()
	if err != nil {
		c.s.kill(err)
		return nil, err
	}
	return pt, nil
}

// WriteFrame seals body as the next frame and queues it on the underlying
// FrameConn; body may be reused as soon as it returns. A body longer than
// [Conn.MaxFrameSize] returns a [*proto.FrameTooLargeError] and consumes
// nothing. Any other error is sticky.
func (c *Conn) WriteFrame(body []byte) error {
	if c.max > 0 && len(body) > c.max-Overhead {
		return &proto.FrameTooLargeError{Size: int64(len(body)), Max: max(c.max-Overhead, 0), Offset: -1}
	}
	d := &c.s.tx
	d.mu.Lock()
	var buf []byte
	var err error
	if c.fb != nil {
		if err = d.readyLocked(); err == nil {
			buf, err = d.sealLocked(c.fb.BeginFrame(), body)
		}
	} else {
		c.wbuf, err = d.sealLocked(c.wbuf[:0], body)
		buf = c.wbuf
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	return c.queue(d, buf)
}

// queue hands the sealed frame to the underlying FrameConn. A failure
// kills d: the counter is spent and the frame may be lost, so the stream
// cannot continue.
func (c *Conn) queue(d *direction, sealed []byte) error {
	var err error
	if c.fb != nil {
		err = c.fb.EndFrame(sealed)
	} else {
		err = c.fc.WriteFrame(sealed)
	}
	if err != nil {
		d.fail(err)
	}
	return err
}

// BeginFrame starts a frame whose body the caller builds in place, so that
// it is sealed where it lies instead of being copied: it returns a buffer
// (the underlying FrameConn's own, when that can build frames in place) to
// which the caller appends the plaintext body, then passes the result to
// [Conn.EndFrame] before any other write call on c. The buffer must not be
// retained after EndFrame. Like WriteFrame, it must not be called
// concurrently with WriteFrame, Flush or itself.
func (c *Conn) BeginFrame() []byte {
	if c.fb != nil {
		buf := c.fb.BeginFrame()
		c.begin = len(buf)
		return buf
	}
	c.begin = 0
	return c.wbuf[:0]
}

// EndFrame seals in place the body appended to [Conn.BeginFrame]'s result
// and queues it as the next frame, as WriteFrame would. A body longer than
// [Conn.MaxFrameSize] returns a [*proto.FrameTooLargeError], drops the
// frame and consumes nothing; any other error is sticky. EndFrame panics if
// buf is shorter than what BeginFrame returned (a programming error).
func (c *Conn) EndFrame(buf []byte) error {
	if len(buf) < c.begin {
		panic("kex: EndFrame called with a buffer not returned by BeginFrame")
	}
	body := buf[c.begin:]
	if c.max > 0 && len(body) > c.max-Overhead {
		return &proto.FrameTooLargeError{Size: int64(len(body)), Max: max(c.max-Overhead, 0), Offset: -1}
	}
	if cap(buf)-len(buf) < TagSize {
		// Grow with append's spare capacity, so that Seal does not make
		// an exact-size copy of the whole buffer (frames queued before
		// this one included) at every frame.
		buf = slices.Grow(buf, TagSize)
		body = buf[c.begin:]
	}
	d := &c.s.tx
	d.mu.Lock()
	// buf[:c.begin] ends exactly where body starts: Seal writes the
	// ciphertext over the plaintext and appends the tag.
	sealed, err := d.sealLocked(buf[:c.begin], body)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if c.fb == nil {
		c.wbuf = sealed[:0] // keep the grown buffer
	}
	return c.queue(d, sealed)
}

// Flush sends the queued frames (see [proto.FrameConn]). A flush error is
// sticky.
func (c *Conn) Flush() error {
	d := &c.s.tx
	d.mu.Lock()
	err := d.err
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.fc.Flush(); err != nil {
		d.fail(err)
		return err
	}
	return nil
}

var _ proto.FrameConn = (*Conn)(nil)

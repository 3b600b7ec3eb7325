package kex

import (
	"errors"
	"fmt"
	"io"

	"github.com/atedb/atedb/proto"
)

var (
	// ErrBadSignature is matched by a client handshake error when the
	// server hello's identity signature does not verify.
	ErrBadSignature = errors.New("kex: server identity signature does not verify")
	// ErrFingerprintMismatch is matched by a client handshake error when the
	// client pinned a server fingerprint and the server presented another
	// identity (no identity at all gives [ErrIdentityRequired]).
	ErrFingerprintMismatch = errors.New("kex: server identity does not match the pinned fingerprint")
	// ErrIdentityRequired is matched by a handshake error when the client
	// requires a server identity (a pinned fingerprint, or
	// proto.FeatureServerIdentity in its hello) and the server hello is
	// unsigned, or when a server's hello-ack grants
	// proto.FeatureServerIdentity but its ServerConfig has no Identity.
	ErrIdentityRequired = errors.New("kex: server identity required but not presented")
)

// ServerConfig configures [ServerHandshake]. The zero value is ready: no
// identity, crypto/rand.
type ServerConfig struct {
	// Identity, when set, signs the transcript in every server hello, so
	// clients can authenticate the server and pin its fingerprint.
	Identity *Identity
	// Rand supplies the seed of the per-connection ML-KEM key pair
	// (crypto/rand when nil). Tests set it to get known answers.
	Rand io.Reader
	// QueueConfirmation makes ServerHandshake queue its key-confirmation
	// frame on fc without flushing it, so that it leaves in one write
	// with the caller's first frames (one write, and one wakeup of the
	// client, fewer per connection). The client waits for it before it
	// continues: the caller must flush fc promptly, even when it has
	// nothing else to send.
	QueueConfirmation bool

	limits *limits // tests only: nil means defaultLimits
}

// ClientConfig configures [ClientHandshake]. The zero value is ready: any
// server identity (or none) accepted, crypto/rand.
type ClientConfig struct {
	// PinnedFingerprint, when not empty, makes the client refuse any server
	// that does not present and prove the identity with this fingerprint.
	// It is either the raw FingerprintSize-byte digest or the text printed
	// by [Fingerprint] ("sha256:" and 64 hex digits), as bytes.
	PinnedFingerprint []byte
	// Rand supplies the ML-KEM encapsulation seed (crypto/rand when nil).
	Rand io.Reader

	limits *limits // tests only: nil means defaultLimits
}

// HandshakeError reports a failed handshake: the side that failed, the step,
// and the cause: a [*MessageError] (matching [ErrMalformed],
// [ErrUnsupportedVersion] or [ErrKeySizeMismatch]), [ErrBadSignature],
// [ErrFingerprintMismatch], [ErrIdentityRequired], [ErrKeyConfirmation],
// [ErrInvalidKeySize], [ErrDowngrade], a proto decoding error of the hello
// or hello-ack, or an error of the FrameConn (io.EOF when the peer left) or
// of the randomness source. Match causes with errors.Is / errors.As.
type HandshakeError struct {
	Side string // "server" or "client"
	Step string // e.g. "read client finish"
	Err  error
}

func (e *HandshakeError) Error() string {
	return "kex: " + e.Side + " handshake: " + e.Step + ": " + e.Err.Error()
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// ServerHandshake runs the server side of the key exchange on fc, right
// after the server queued helloAckBody (it need not be flushed: the server
// hello is sent in the same flush). helloBody and helloAckBody must be the
// exact frame bodies of the hello received and the hello-ack sent; size is
// the negotiated key size, which must not be KeySizeNone.
//
// It first checks that both bodies decode (proto.Hello, proto.HelloAck),
// that the hello-ack has code OK and names size, and that size is at least
// what the hello asked for; a hello-ack granting
// proto.FeatureServerIdentity needs cfg.Identity ([ErrIdentityRequired]).
// Then it generates a fresh ML-KEM key pair for the connection, sends the
// server hello (signed when cfg.Identity is set), reads the client finish,
// derives the session keys, checks the client's key confirmation and sends
// its own (or queues it: [ServerConfig].QueueConfirmation). fc is used by this goroutine only until it returns; set a
// deadline on the underlying connection to bound it. On error the caller
// must close the connection; the returned error is a [*HandshakeError].
func ServerHandshake(fc proto.FrameConn, helloBody, helloAckBody []byte, size KeySize, cfg ServerConfig) (*Session, error) {
	fail := func(step string, err error) (*Session, error) {
		return nil, &HandshakeError{Side: "server", Step: step, Err: err}
	}
	sch := size.kemScheme()
	if sch == nil {
		return fail("start", fmt.Errorf("%w: %v", ErrInvalidKeySize, size))
	}
	_, ack, err := checkHellos(helloBody, helloAckBody, size)
	if err != nil {
		return fail("check hello", err)
	}
	if ack.Features&proto.FeatureServerIdentity != 0 && cfg.Identity == nil {
		return fail("check hello", fmt.Errorf("%w: the hello-ack grants FeatureServerIdentity and ServerConfig.Identity is nil", ErrIdentityRequired))
	}
	lim := defaultLimits
	if cfg.limits != nil {
		lim = *cfg.limits
	}

	seed := make([]byte, sch.SeedSize())
	if _, err := io.ReadFull(randOrDefault(cfg.Rand), seed); err != nil {
		return fail("generate kem key", err)
	}
	pk, sk := sch.DeriveKeyPair(seed)
	clear(seed)
	pkBytes, err := pk.MarshalBinary()
	if err != nil {
		return fail("generate kem key", err)
	}

	sh := appendServerHelloTBS(nil, size, pkBytes, cfg.Identity)
	var sig []byte
	if cfg.Identity != nil {
		sig = cfg.Identity.sign(signedMessage(helloBody, helloAckBody, sh))
	}
	sh = appendSignature(sh, sig)
	if err := fc.WriteFrame(sh); err != nil {
		return fail("write server hello", err)
	}
	if err := fc.Flush(); err != nil {
		return fail("write server hello", err)
	}
	tr := newTranscript(helloBody, helloAckBody)
	tr.add(sh)

	cf, err := fc.ReadFrame()
	if err != nil {
		return fail("read client finish", err)
	}
	ct, err := parseClientFinish(cf, size)
	if err != nil {
		return fail("read client finish", err)
	}
	tr.add(cf)
	ss, err := sch.Decapsulate(sk, ct)
	if err != nil {
		return fail("decapsulate", err)
	}
	s, err := newSession(size, false, tr.sum(), ss, lim)
	clear(ss)
	if err != nil {
		return fail("derive keys", err)
	}

	if err := s.readConfirm(fc, confirmClient, nameClientConfirm); err != nil {
		s.Close()
		return fail("read client confirm", err)
	}
	if err := s.writeConfirm(fc, confirmServer, !cfg.QueueConfirmation); err != nil {
		s.Close()
		return fail("write server confirm", err)
	}
	return s, nil
}

// ClientHandshake runs the client side of the key exchange on fc, right
// after the client read the hello-ack and checked it with
// [CheckNegotiated]. helloBody and helloAckBody must be the exact frame
// bodies of the hello sent and the hello-ack received; size is the
// negotiated key size from the hello-ack, which must not be KeySizeNone.
//
// It makes the same hello checks as [ServerHandshake] (so a size below
// what the hello asked for is refused with [ErrDowngrade] here too), reads
// the server hello, checks the server identity (its signature over the
// transcript, the pinned fingerprint if cfg sets one, and its presence if
// the pin or the hello's proto.FeatureServerIdentity requires one),
// encapsulates to the server's ML-KEM key, sends the client finish and its
// key confirmation, and checks the server's key confirmation. On error the
// caller must close the connection; the returned error is a
// [*HandshakeError].
func ClientHandshake(fc proto.FrameConn, helloBody, helloAckBody []byte, size KeySize, cfg ClientConfig) (*Session, error) {
	fail := func(step string, err error) (*Session, error) {
		return nil, &HandshakeError{Side: "client", Step: step, Err: err}
	}
	sch := size.kemScheme()
	if sch == nil {
		return fail("start", fmt.Errorf("%w: %v", ErrInvalidKeySize, size))
	}
	var pin []byte
	if len(cfg.PinnedFingerprint) > 0 {
		var err error
		if pin, err = pinnedDigest(cfg.PinnedFingerprint); err != nil {
			return fail("start", err)
		}
	}
	hello, _, err := checkHellos(helloBody, helloAckBody, size)
	if err != nil {
		return fail("check hello", err)
	}
	requireID := pin != nil || hello.Features&proto.FeatureServerIdentity != 0
	lim := defaultLimits
	if cfg.limits != nil {
		lim = *cfg.limits
	}

	sh, err := fc.ReadFrame()
	if err != nil {
		return fail("read server hello", err)
	}
	m, err := parseServerHello(sh, size)
	if err != nil {
		return fail("read server hello", err)
	}
	var peerID []byte
	if m.alg != IdentityNone {
		peerID = append([]byte{byte(m.alg)}, m.idKey...)
	}
	if requireID && peerID == nil {
		return fail("check server identity", fmt.Errorf("%w: the server hello is unsigned", ErrIdentityRequired))
	}
	if pin != nil {
		if !fingerprintMatches(peerID, pin) {
			return fail("check server identity", fmt.Errorf("%w: the server presented %s", ErrFingerprintMismatch, Fingerprint(peerID)))
		}
	}
	if peerID != nil {
		if !m.alg.verify(m.idKey, signedMessage(helloBody, helloAckBody, sh[:m.tbsLen]), m.sig) {
			return fail("check server identity", fmt.Errorf("%w (%v key %s)", ErrBadSignature, m.alg, Fingerprint(peerID)))
		}
	}
	pk, err := sch.UnmarshalBinaryPublicKey(m.kemPK)
	if err != nil {
		return fail("read server hello", malformed(nameServerHello, "kem public key", serverHelloHeader, "%v", err))
	}
	tr := newTranscript(helloBody, helloAckBody)
	tr.add(sh)

	seed := make([]byte, sch.EncapsulationSeedSize())
	if _, err := io.ReadFull(randOrDefault(cfg.Rand), seed); err != nil {
		return fail("encapsulate", err)
	}
	ct, ss, err := sch.EncapsulateDeterministically(pk, seed)
	clear(seed)
	if err != nil {
		return fail("encapsulate", err)
	}
	cf := appendClientFinish(nil, ct)
	tr.add(cf)
	s, err := newSession(size, true, tr.sum(), ss, lim)
	clear(ss)
	if err != nil {
		return fail("derive keys", err)
	}
	s.peerID = peerID

	if err := fc.WriteFrame(cf); err != nil {
		s.Close()
		return fail("write client finish", err)
	}
	if err := s.writeConfirm(fc, confirmClient, true); err != nil {
		s.Close()
		return fail("write client confirm", err)
	}
	if err := s.readConfirm(fc, confirmServer, nameServerConfirm); err != nil {
		s.Close()
		return fail("read server confirm", err)
	}
	return s, nil
}

// checkHellos decodes the hello and hello-ack the handshake is bound to and
// checks that they agree with size: the hello-ack accepts the connection
// and names size, and size is at least what the hello asked for (as
// [Negotiate] guarantees). On the client this refuses a downgrade even if
// the caller forgot [CheckNegotiated]; on both sides it catches a size or a
// body that does not belong to this connection.
func checkHellos(helloBody, helloAckBody []byte, size KeySize) (hello proto.Hello, ack proto.HelloAck, err error) {
	if err := hello.Decode(helloBody); err != nil {
		return hello, ack, fmt.Errorf("decode hello: %w", err)
	}
	if err := ack.Decode(helloAckBody); err != nil {
		return hello, ack, fmt.Errorf("decode hello-ack: %w", err)
	}
	if ack.Code != proto.CodeOK {
		return hello, ack, fmt.Errorf("kex: hello-ack refuses the connection (code %v): no handshake", ack.Code)
	}
	if got := KeySize(ack.KeySize); got != size {
		return hello, ack, fmt.Errorf("%w: hello-ack negotiated %v, handshake run with %v", ErrKeySizeMismatch, got, size)
	}
	return hello, ack, CheckNegotiated(KeySize(hello.KeySize), size)
}

// writeConfirm seals the one-byte key-confirmation frame and, if flush is
// set, flushes.
func (s *Session) writeConfirm(fc proto.FrameConn, kind byte, flush bool) error {
	var frame [confirmSize]byte
	s.tx.mu.Lock()
	_, err := s.tx.sealLocked(frame[:0], []byte{kind})
	s.tx.mu.Unlock()
	if err != nil {
		return err
	}
	if err := fc.WriteFrame(frame[:]); err != nil {
		return err
	}
	if !flush {
		return nil
	}
	return fc.Flush()
}

// readConfirm reads the peer's key-confirmation frame and checks it opens
// to the expected byte.
func (s *Session) readConfirm(fc proto.FrameConn, kind byte, name string) error {
	body, err := fc.ReadFrame()
	if err != nil {
		return err
	}
	s.rx.mu.Lock()
	pt, err := s.rx.openLocked(body)
	s.rx.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrKeyConfirmation, name, err)
	}
	if len(pt) != 1 || pt[0] != kind {
		return fmt.Errorf("%w: %s opened to %d bytes, want the single byte 0x%02x", ErrKeyConfirmation, name, len(pt), kind)
	}
	return nil
}

package kex

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Handshake and frame constants: part of the wire format; never change.
const (
	// Version is the kex protocol version byte carried by both handshake
	// messages.
	Version = 1

	msgServerHello  = 0x01 // KexServerHello type byte
	msgClientFinish = 0x02 // KexClientFinish type byte
	confirmClient   = 0x03 // plaintext of the client's key-confirmation frame
	confirmServer   = 0x04 // plaintext of the server's key-confirmation frame

	// TagSize is the AES-GCM authentication tag size appended to every
	// sealed frame.
	TagSize = 16
	// Overhead is how many bytes sealing adds to a frame body.
	Overhead = TagSize
	// NonceSize is the AES-GCM nonce size: 4 zero bytes, then the 8-byte
	// little-endian frame counter of the direction.
	NonceSize = 12
	// nonceCounterOffset is where the counter starts inside the nonce.
	nonceCounterOffset = NonceSize - 8

	// serverHelloHeader: type, version, key size u16, KEM public key length u16.
	serverHelloHeader = 1 + 1 + 2 + 2
	// serverHelloIdentityHeader: identity algorithm, identity key length u16.
	serverHelloIdentityHeader = 1 + 2
	// serverHelloSigHeader: signature length u16.
	serverHelloSigHeader = 2
	// clientFinishHeader: type, version, ciphertext length u16.
	clientFinishHeader = 1 + 1 + 2
	// confirmSize is the sealed size of a key-confirmation frame.
	confirmSize = 1 + TagSize

	secretSize = sha256.Size // traffic secrets and transcript hashes

	labelTranscript = "atedb-kex-v1 transcript"
	labelSignature  = "atedb-kex-v1 server signature"
	labelC2S        = "atedb-kex-v1 c2s"
	labelS2C        = "atedb-kex-v1 s2c"
	labelKey        = "atedb-kex-v1 key"
	labelRatchet    = "atedb-kex-v1 ratchet"
)

// Names of the handshake messages, used in errors.
const (
	nameServerHello   = "server hello"
	nameClientFinish  = "client finish"
	nameClientConfirm = "client confirm"
	nameServerConfirm = "server confirm"
)

var (
	// ErrMalformed is matched by a [*MessageError] for a handshake message
	// that does not follow the layout in PROTOCOL.md.
	ErrMalformed = errors.New("kex: malformed handshake message")
	// ErrUnsupportedVersion is matched by a [*MessageError] for a handshake
	// message whose version byte is not [Version].
	ErrUnsupportedVersion = errors.New("kex: unsupported kex version")
	// ErrKeySizeMismatch is matched by a [*MessageError] for a server hello
	// whose key size is not the one the hello-ack negotiated.
	ErrKeySizeMismatch = errors.New("kex: key size differs from the negotiated one")
)

// MessageError reports a handshake message that was refused, naming the
// message, the field and the field's byte offset inside the frame body.
// Unwrap returns [ErrMalformed], [ErrUnsupportedVersion] or
// [ErrKeySizeMismatch].
type MessageError struct {
	Message string // "server hello" or "client finish"
	Field   string // field name as in PROTOCOL.md
	Offset  int    // byte offset of the field in the frame body
	Detail  string // what is wrong, with the values seen
	Err     error  // sentinel
}

func (e *MessageError) Error() string {
	return fmt.Sprintf("%v: %s field %q at byte %d: %s", e.Err, e.Message, e.Field, e.Offset, e.Detail)
}

func (e *MessageError) Unwrap() error { return e.Err }

func malformed(msg, field string, off int, format string, args ...any) *MessageError {
	return &MessageError{Message: msg, Field: field, Offset: off, Detail: fmt.Sprintf(format, args...), Err: ErrMalformed}
}

// serverHello is a parsed KexServerHello. Its slices alias the frame body.
type serverHello struct {
	kemPK  []byte      // ML-KEM encapsulation key
	alg    IdentityAlg // IdentityNone when unsigned
	idKey  []byte      // raw identity public key (without the algorithm byte)
	sig    []byte      // signature over the transcript hash so far
	tbsLen int         // length of the body prefix the signature covers
}

// appendServerHelloTBS appends the signed part of a server hello: every
// field up to and including the identity public key.
func appendServerHelloTBS(dst []byte, size KeySize, kemPK []byte, id *Identity) []byte {
	dst = append(dst, msgServerHello, Version)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(size))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(kemPK)))
	dst = append(dst, kemPK...)
	if id == nil {
		dst = append(dst, byte(IdentityNone))
		return binary.LittleEndian.AppendUint16(dst, 0)
	}
	raw := id.pub[1:]
	dst = append(dst, id.pub[0])
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(raw)))
	return append(dst, raw...)
}

// appendSignature appends the signature length and signature (empty when
// unsigned) that end a server hello.
func appendSignature(dst, sig []byte) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(sig)))
	return append(dst, sig...)
}

// parseServerHello checks b against the layout for key size size and
// returns its fields. Every length must be the exact size of its algorithm,
// and nothing may follow the signature.
func parseServerHello(b []byte, size KeySize) (serverHello, error) {
	const msg = nameServerHello
	var m serverHello
	if len(b) < serverHelloHeader {
		return m, malformed(msg, "header", 0, "body is %d bytes, header needs %d", len(b), serverHelloHeader)
	}
	if b[0] != msgServerHello {
		return m, malformed(msg, "type", 0, "got 0x%02x, want 0x%02x", b[0], msgServerHello)
	}
	if b[1] != Version {
		return m, &MessageError{Message: msg, Field: "version", Offset: 1,
			Detail: fmt.Sprintf("got %d, want %d", b[1], Version), Err: ErrUnsupportedVersion}
	}
	if got := KeySize(binary.LittleEndian.Uint16(b[2:])); got != size {
		return m, &MessageError{Message: msg, Field: "key size", Offset: 2,
			Detail: fmt.Sprintf("got %d bits, hello-ack negotiated %v", int(got), size), Err: ErrKeySizeMismatch}
	}
	sch := size.kemScheme()
	n := int(binary.LittleEndian.Uint16(b[4:]))
	if n != sch.PublicKeySize() {
		return m, malformed(msg, "kem public key length", 4, "got %d, %s needs %d", n, sch.Name(), sch.PublicKeySize())
	}
	off := serverHelloHeader
	if len(b) < off+n+serverHelloIdentityHeader {
		return m, malformed(msg, "kem public key", off, "body ends at byte %d, inside the key or before the identity", len(b))
	}
	m.kemPK = b[off : off+n]
	off += n
	m.alg = IdentityAlg(b[off])
	if m.alg != IdentityNone && !m.alg.known() {
		return m, malformed(msg, "identity algorithm", off, "unknown algorithm %d", b[off])
	}
	idLen := int(binary.LittleEndian.Uint16(b[off+1:]))
	if want := m.alg.publicKeySize(); idLen != want {
		return m, malformed(msg, "identity key length", off+1, "got %d, %v needs %d", idLen, m.alg, want)
	}
	off += serverHelloIdentityHeader
	if len(b) < off+idLen+serverHelloSigHeader {
		return m, malformed(msg, "identity key", off, "body ends at byte %d, inside the key or before the signature", len(b))
	}
	m.idKey = b[off : off+idLen]
	off += idLen
	m.tbsLen = off
	sigLen := int(binary.LittleEndian.Uint16(b[off:]))
	if want := m.alg.signatureSize(); sigLen != want {
		return m, malformed(msg, "signature length", off, "got %d, %v needs %d", sigLen, m.alg, want)
	}
	off += serverHelloSigHeader
	if len(b) != off+sigLen {
		return m, malformed(msg, "signature", off, "body is %d bytes, want exactly %d", len(b), off+sigLen)
	}
	m.sig = b[off:]
	return m, nil
}

// appendClientFinish appends a KexClientFinish carrying ciphertext ct.
func appendClientFinish(dst, ct []byte) []byte {
	dst = append(dst, msgClientFinish, Version)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(ct)))
	return append(dst, ct...)
}

// parseClientFinish checks b and returns the ML-KEM ciphertext (aliasing b).
func parseClientFinish(b []byte, size KeySize) ([]byte, error) {
	const msg = nameClientFinish
	if len(b) < clientFinishHeader {
		return nil, malformed(msg, "header", 0, "body is %d bytes, header needs %d", len(b), clientFinishHeader)
	}
	if b[0] != msgClientFinish {
		return nil, malformed(msg, "type", 0, "got 0x%02x, want 0x%02x", b[0], msgClientFinish)
	}
	if b[1] != Version {
		return nil, &MessageError{Message: msg, Field: "version", Offset: 1,
			Detail: fmt.Sprintf("got %d, want %d", b[1], Version), Err: ErrUnsupportedVersion}
	}
	sch := size.kemScheme()
	n := int(binary.LittleEndian.Uint16(b[2:]))
	if n != sch.CiphertextSize() {
		return nil, malformed(msg, "ciphertext length", 2, "got %d, %s needs %d", n, sch.Name(), sch.CiphertextSize())
	}
	if len(b) != clientFinishHeader+n {
		return nil, malformed(msg, "ciphertext", clientFinishHeader, "body is %d bytes, want exactly %d", len(b), clientFinishHeader+n)
	}
	return b[clientFinishHeader:], nil
}

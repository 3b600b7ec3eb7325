package kex

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cloudflare/circl/kem"
	"github.com/cloudflare/circl/kem/mlkem/mlkem1024"
	"github.com/cloudflare/circl/kem/mlkem/mlkem512"
	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
)

// KeySize is a wire-encryption strength in bits: [KeySizeNone] (no
// encryption), [KeySize128], [KeySize192] or [KeySize256]. It selects both the
// KEM (ML-KEM-512, -768, -1024) and the AES-GCM key length (16, 24, 32 bytes).
// The hello and hello-ack carry it as a number of bits.
type KeySize int

// Key sizes. Their values are the numbers of bits carried on the wire.
const (
	KeySizeNone KeySize = 0   // no wire encryption
	KeySize128  KeySize = 128 // ML-KEM-512 and AES-128-GCM
	KeySize192  KeySize = 192 // ML-KEM-768 and AES-192-GCM
	KeySize256  KeySize = 256 // ML-KEM-1024 and AES-256-GCM
)

var (
	// ErrInvalidKeySize is matched by errors for a key size that is not one
	// of 0, 128, 192, 256, or that is 0 where a handshake needs a real size.
	ErrInvalidKeySize = errors.New("kex: invalid key size")
	// ErrDowngrade is matched by a [*NegotiationError]: the server answered
	// with less encryption than the client asked for.
	ErrDowngrade = errors.New("kex: server refused the requested wire encryption")
)

// Valid reports whether k is one of KeySizeNone, KeySize128, KeySize192 or
// KeySize256.
func (k KeySize) Valid() bool {
	switch k {
	case KeySizeNone, KeySize128, KeySize192, KeySize256:
		return true
	}
	return false
}

// String returns "none", "128", "192" or "256", or "KeySize(n)" for an
// invalid value.
func (k KeySize) String() string {
	switch k {
	case KeySizeNone:
		return "none"
	case KeySize128, KeySize192, KeySize256:
		return strconv.Itoa(int(k))
	}
	return "KeySize(" + strconv.Itoa(int(k)) + ")"
}

// ParseKeySize parses a flag value: "128", "192", "256", or "0", "none",
// "off" for no encryption. Anything else returns an error matching
// [ErrInvalidKeySize] that quotes the input.
func ParseKeySize(s string) (KeySize, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "none", "off":
		return KeySizeNone, nil
	case "128":
		return KeySize128, nil
	case "192":
		return KeySize192, nil
	case "256":
		return KeySize256, nil
	}
	return 0, fmt.Errorf("%w: %q (want 128, 192, 256 or none)", ErrInvalidKeySize, s)
}

// Negotiate returns the key size a connection uses: the larger of what the
// client wants and the server's setting, so the server's setting is a floor
// that a client cannot lower, and a client can raise it. Both sides compute
// it: the server to fill in the hello-ack, the client (through
// [CheckNegotiated]) to refuse a weaker answer. The inputs should be valid
// (see [KeySize.Valid]); with an invalid input the result may be invalid,
// which [ServerHandshake] refuses with [ErrInvalidKeySize].
func Negotiate(clientWants, serverFloor KeySize) KeySize {
	return max(clientWants, serverFloor)
}

// NegotiationError reports a hello-ack whose negotiated key size the client
// cannot accept. errors.Is(err, ErrDowngrade) is true when Negotiated is
// valid but below Wanted (including a server that answered without
// encryption); errors.Is(err, ErrInvalidKeySize) is true when Negotiated is
// not a valid size at all.
type NegotiationError struct {
	Wanted     KeySize // what the client's hello asked for
	Negotiated KeySize // what the server's hello-ack answered
}

func (e *NegotiationError) Error() string {
	if !e.Negotiated.Valid() {
		return fmt.Sprintf("kex: hello-ack carries invalid key size %d (client asked for %v)", int(e.Negotiated), e.Wanted)
	}
	if e.Negotiated == KeySizeNone {
		return fmt.Sprintf("kex: server answered without wire encryption, client asked for %v bits", e.Wanted)
	}
	return fmt.Sprintf("kex: server answered with %v-bit wire encryption, client asked for %v bits", e.Negotiated, e.Wanted)
}

// Is reports whether target is ErrDowngrade or ErrInvalidKeySize as
// described on [NegotiationError].
func (e *NegotiationError) Is(target error) bool {
	if !e.Negotiated.Valid() {
		return target == ErrInvalidKeySize
	}
	return target == ErrDowngrade
}

// CheckNegotiated is the client's check of the hello-ack: it returns nil
// when negotiated is a valid key size at least as large as wanted (the
// result of [Negotiate] can never be smaller), and a [*NegotiationError]
// otherwise. A client that asked for encryption must call it and drop the
// connection on error, so a server (or a man in the middle rewriting the
// hello) cannot turn encryption off or weaken it.
func CheckNegotiated(wanted, negotiated KeySize) error {
	if !negotiated.Valid() || negotiated < wanted {
		return &NegotiationError{Wanted: wanted, Negotiated: negotiated}
	}
	return nil
}

// kemScheme returns the ML-KEM parameter set for k, or nil for
// KeySizeNone and invalid sizes.
func (k KeySize) kemScheme() kem.Scheme {
	switch k {
	case KeySize128:
		return mlkem512.Scheme()
	case KeySize192:
		return mlkem768.Scheme()
	case KeySize256:
		return mlkem1024.Scheme()
	}
	return nil
}

// aesKeyLen returns the AES-GCM key length in bytes for k.
func (k KeySize) aesKeyLen() int { return int(k) / 8 }

package kex

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// IdentityAlg names the signature algorithm of a server identity key. Its
// value is the algorithm byte on the wire (part of the wire format; never
// change).
type IdentityAlg uint8

// Identity algorithms.
const (
	IdentityNone    IdentityAlg = 0 // no identity: the server hello is unsigned
	IdentityEd25519 IdentityAlg = 1 // Ed25519 (RFC 8032, pure)
	IdentityMLDSA44 IdentityAlg = 2 // ML-DSA-44 (FIPS 204)
	IdentityMLDSA65 IdentityAlg = 3 // ML-DSA-65 (FIPS 204)
	IdentityMLDSA87 IdentityAlg = 4 // ML-DSA-87 (FIPS 204)
)

// IdentitySeedSize is the size of the seed an identity key is derived from,
// for every algorithm.
const IdentitySeedSize = 32

// FingerprintSize is the size of a raw fingerprint (a SHA-256 digest).
const FingerprintSize = sha256.Size

// fingerprintPrefix starts the text form of a fingerprint.
const fingerprintPrefix = "sha256:"

var (
	// ErrUnknownIdentityAlg is matched by errors for an identity algorithm
	// byte or name that is not one of the Identity* constants.
	ErrUnknownIdentityAlg = errors.New("kex: unknown identity algorithm")
	// ErrBadIdentityKey is matched by errors for a malformed identity key
	// encoding or fingerprint.
	ErrBadIdentityKey = errors.New("kex: malformed identity key")
)

// mldsa returns the circl ML-DSA scheme of a, or nil for Ed25519 (the
// standard library's, which needs no extra module) and unknown values.
func (a IdentityAlg) mldsa() sign.Scheme {
	switch a {
	case IdentityMLDSA44:
		return mldsa44.Scheme()
	case IdentityMLDSA65:
		return mldsa65.Scheme()
	case IdentityMLDSA87:
		return mldsa87.Scheme()
	}
	return nil
}

// known reports whether a is a signature algorithm (not IdentityNone).
func (a IdentityAlg) known() bool { return a == IdentityEd25519 || a.mldsa() != nil }

// String returns "none", "ed25519", "ml-dsa-44", "ml-dsa-65", "ml-dsa-87",
// or "IdentityAlg(n)" for an unknown value.
func (a IdentityAlg) String() string {
	switch a {
	case IdentityNone:
		return "none"
	case IdentityEd25519:
		return "ed25519"
	case IdentityMLDSA44:
		return "ml-dsa-44"
	case IdentityMLDSA65:
		return "ml-dsa-65"
	case IdentityMLDSA87:
		return "ml-dsa-87"
	}
	return fmt.Sprintf("IdentityAlg(%d)", uint8(a))
}

// ParseIdentityAlg parses the names printed by [IdentityAlg.String]
// (case-insensitive, "mldsa65" accepted too) except "none". Unknown names
// return an error matching [ErrUnknownIdentityAlg].
func ParseIdentityAlg(s string) (IdentityAlg, error) {
	n := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "")
	switch n {
	case "ed25519":
		return IdentityEd25519, nil
	case "mldsa44":
		return IdentityMLDSA44, nil
	case "mldsa65":
		return IdentityMLDSA65, nil
	case "mldsa87":
		return IdentityMLDSA87, nil
	}
	return 0, fmt.Errorf("%w: %q (want ed25519, ml-dsa-44, ml-dsa-65 or ml-dsa-87)", ErrUnknownIdentityAlg, s)
}

// publicKeySize returns the raw public key size of a, or 0.
func (a IdentityAlg) publicKeySize() int {
	if a == IdentityEd25519 {
		return ed25519.PublicKeySize
	}
	if s := a.mldsa(); s != nil {
		return s.PublicKeySize()
	}
	return 0
}

// signatureSize returns the signature size of a, or 0.
func (a IdentityAlg) signatureSize() int {
	if a == IdentityEd25519 {
		return ed25519.SignatureSize
	}
	if s := a.mldsa(); s != nil {
		return s.SignatureSize()
	}
	return 0
}

// verify checks sig over msg with the raw public key raw of algorithm a.
// It returns false for an unknown algorithm or a malformed key.
func (a IdentityAlg) verify(raw, msg, sig []byte) bool {
	if a == IdentityEd25519 {
		return len(raw) == ed25519.PublicKeySize && ed25519.Verify(ed25519.PublicKey(raw), msg, sig)
	}
	s := a.mldsa()
	if s == nil || len(raw) != s.PublicKeySize() {
		return false
	}
	pk, err := s.UnmarshalBinaryPublicKey(raw)
	if err != nil {
		return false
	}
	return s.Verify(pk, msg, sig, nil)
}

// Identity is a server's long-term signing key. A server configured with
// one signs every handshake transcript with it, and clients can pin its
// [Identity.Fingerprint]. The zero value is not usable; build one with
// [GenerateIdentity], [NewIdentity] or [ParseIdentity]. An Identity is
// immutable and safe for concurrent use.
type Identity struct {
	alg  IdentityAlg
	seed [IdentitySeedSize]byte
	ed   ed25519.PrivateKey // IdentityEd25519
	sk   sign.PrivateKey    // ML-DSA
	pub  []byte             // encoded public key: alg byte || raw key
}

// GenerateIdentity creates a new identity key for alg from
// IdentitySeedSize bytes of rand (crypto/rand when rand is nil). It returns
// an error matching [ErrUnknownIdentityAlg] for an unknown alg, or the
// error of rand.
func GenerateIdentity(alg IdentityAlg, rand io.Reader) (*Identity, error) {
	if !alg.known() {
		return nil, fmt.Errorf("%w: %v", ErrUnknownIdentityAlg, alg)
	}
	var seed [IdentitySeedSize]byte
	if _, err := io.ReadFull(randOrDefault(rand), seed[:]); err != nil {
		return nil, fmt.Errorf("kex: generate identity: read randomness: %w", err)
	}
	id, err := NewIdentity(alg, seed[:])
	clear(seed[:])
	return id, err
}

// NewIdentity derives the identity key of alg from a seed of
// IdentitySeedSize bytes (the same seed always gives the same key). It
// returns an error matching [ErrUnknownIdentityAlg] or [ErrBadIdentityKey].
// seed is copied.
func NewIdentity(alg IdentityAlg, seed []byte) (*Identity, error) {
	if !alg.known() {
		return nil, fmt.Errorf("%w: %v", ErrUnknownIdentityAlg, alg)
	}
	if len(seed) != IdentitySeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrBadIdentityKey, len(seed), IdentitySeedSize)
	}
	id := &Identity{alg: alg}
	copy(id.seed[:], seed)
	var raw []byte
	if alg == IdentityEd25519 {
		id.ed = ed25519.NewKeyFromSeed(seed)
		raw = id.ed[ed25519.SeedSize:]
	} else {
		pk, sk := alg.mldsa().DeriveKey(seed)
		var err error
		if raw, err = pk.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("kex: marshal identity public key: %w", err)
		}
		id.sk = sk
	}
	id.pub = append([]byte{byte(alg)}, raw...)
	return id, nil
}

// ParseIdentity decodes what [Identity.MarshalBinary] produced (the
// algorithm byte, then the 32-byte seed). Errors match
// [ErrUnknownIdentityAlg] or [ErrBadIdentityKey].
func ParseIdentity(b []byte) (*Identity, error) {
	if len(b) != 1+IdentitySeedSize {
		return nil, fmt.Errorf("%w: encoded identity is %d bytes, want %d", ErrBadIdentityKey, len(b), 1+IdentitySeedSize)
	}
	return NewIdentity(IdentityAlg(b[0]), b[1:])
}

// MarshalBinary returns the secret encoding of id: the algorithm byte then
// the seed (33 bytes). Store it like any private key (mode 0600). The error
// is always nil.
func (id *Identity) MarshalBinary() ([]byte, error) {
	return append([]byte{byte(id.alg)}, id.seed[:]...), nil
}

// Alg returns the signature algorithm of id.
func (id *Identity) Alg() IdentityAlg { return id.alg }

// PublicKey returns the encoded public key (the algorithm byte, then the
// algorithm's raw public key), as the server hello carries it and as
// [Fingerprint] hashes it. The result is a fresh copy.
func (id *Identity) PublicKey() []byte { return append([]byte(nil), id.pub...) }

// Fingerprint returns the text fingerprint of id's public key; see
// [Fingerprint].
func (id *Identity) Fingerprint() string { return Fingerprint(id.pub) }

// sign signs msg (deterministically for every algorithm).
func (id *Identity) sign(msg []byte) []byte {
	if id.alg == IdentityEd25519 {
		return ed25519.Sign(id.ed, msg)
	}
	return id.alg.mldsa().Sign(id.sk, msg, nil)
}

// Fingerprint returns "sha256:" followed by the 64 lowercase hex digits of
// the SHA-256 of an encoded identity public key ([Identity.PublicKey]).
// Servers print it at start; clients pin it ([ClientConfig]).
func Fingerprint(identityPublicKey []byte) string {
	sum := sha256.Sum256(identityPublicKey)
	return fingerprintPrefix + hex.EncodeToString(sum[:])
}

// ParseFingerprint parses the text form printed by [Fingerprint] (the
// "sha256:" prefix is optional, hex is case-insensitive) into the raw
// FingerprintSize-byte digest. Errors match [ErrBadIdentityKey].
func ParseFingerprint(s string) ([]byte, error) {
	t := strings.TrimSpace(s)
	if len(t) >= len(fingerprintPrefix) && strings.EqualFold(t[:len(fingerprintPrefix)], fingerprintPrefix) {
		t = t[len(fingerprintPrefix):]
	}
	if len(t) != 2*FingerprintSize {
		return nil, fmt.Errorf("%w: fingerprint %q: want %d hex digits", ErrBadIdentityKey, s, 2*FingerprintSize)
	}
	raw, err := hex.DecodeString(t)
	if err != nil {
		return nil, fmt.Errorf("%w: fingerprint %q: %v", ErrBadIdentityKey, s, err)
	}
	return raw, nil
}

// pinnedDigest returns the raw digest of a pinned fingerprint given either
// raw (FingerprintSize bytes) or in text form.
func pinnedDigest(pin []byte) ([]byte, error) {
	if len(pin) == FingerprintSize {
		return pin, nil
	}
	return ParseFingerprint(string(pin))
}

// fingerprintMatches compares the fingerprint of an encoded identity public
// key with a raw pinned digest in constant time.
func fingerprintMatches(identityPublicKey, pinned []byte) bool {
	sum := sha256.Sum256(identityPublicKey)
	return subtle.ConstantTimeCompare(sum[:], pinned) == 1
}

// randOrDefault returns r, or crypto/rand's Reader when r is nil.
func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

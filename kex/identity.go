package kex

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/trust"
)

// IdentityAlg names the signature algorithm of a server identity key. Its
// value is the algorithm byte on the wire (part of the wire format; never
// change) and equals the [proto.KeyType] of the same algorithm; package
// trust owns the keys themselves (derivation, signing, verifying).
type IdentityAlg uint8

// Identity algorithms.
const (
	IdentityNone    IdentityAlg = 0                             // no identity: the server hello is unsigned
	IdentityEd25519 IdentityAlg = IdentityAlg(proto.KeyEd25519) // Ed25519 (RFC 8032, pure)
	IdentityMLDSA44 IdentityAlg = IdentityAlg(proto.KeyMLDSA44) // ML-DSA-44 (FIPS 204)
	IdentityMLDSA65 IdentityAlg = IdentityAlg(proto.KeyMLDSA65) // ML-DSA-65 (FIPS 204)
	IdentityMLDSA87 IdentityAlg = IdentityAlg(proto.KeyMLDSA87) // ML-DSA-87 (FIPS 204)
)

// IdentitySeedSize is the size of the seed an identity key is derived from,
// for every algorithm.
const IdentitySeedSize = trust.SeedSize

// FingerprintSize is the size of a raw fingerprint (a SHA-256 digest).
const FingerprintSize = sha256.Size

var (
	// ErrUnknownIdentityAlg is matched by errors for an identity algorithm
	// byte or name that is not one of the Identity* constants.
	ErrUnknownIdentityAlg = errors.New("kex: unknown identity algorithm")
	// ErrBadIdentityKey is matched by errors for a malformed identity key
	// encoding or fingerprint.
	ErrBadIdentityKey = errors.New("kex: malformed identity key")
)

// keyType returns a as a proto key type.
func (a IdentityAlg) keyType() proto.KeyType { return proto.KeyType(a) }

// known reports whether a is a signature algorithm (not IdentityNone).
func (a IdentityAlg) known() bool { return a != IdentityNone && trust.Known(a.keyType()) }

// String returns "none", "ed25519", "ml-dsa-44", "ml-dsa-65", "ml-dsa-87",
// or "IdentityAlg(n)" for an unknown value.
func (a IdentityAlg) String() string {
	switch {
	case a == IdentityNone:
		return "none"
	case a.known():
		return a.keyType().String()
	}
	return fmt.Sprintf("IdentityAlg(%d)", uint8(a))
}

// ParseIdentityAlg parses the names printed by [IdentityAlg.String]
// (case-insensitive, "mldsa65" accepted too) except "none". Unknown names
// return an error matching [ErrUnknownIdentityAlg].
func ParseIdentityAlg(s string) (IdentityAlg, error) {
	t, err := trust.ParseKeyType(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %q (want ed25519, ml-dsa-44, ml-dsa-65 or ml-dsa-87)", ErrUnknownIdentityAlg, s)
	}
	return IdentityAlg(t), nil
}

// publicKeySize returns the raw public key size of a, or 0.
func (a IdentityAlg) publicKeySize() int {
	if !a.known() {
		return 0
	}
	return a.keyType().Size()
}

// signatureSize returns the signature size of a, or 0.
func (a IdentityAlg) signatureSize() int {
	if !a.known() {
		return 0
	}
	return trust.SignatureSize(a.keyType())
}

// verify checks sig over msg with the raw public key raw of algorithm a.
// It returns false for an unknown algorithm or a malformed key.
func (a IdentityAlg) verify(raw, msg, sig []byte) bool {
	if !a.known() {
		return false
	}
	pk, err := trust.NewPublicKey(a.keyType(), raw)
	return err == nil && pk.Verify(msg, sig)
}

// Identity is a server's long-term signing key. A server configured with
// one signs every handshake transcript with it, and clients can pin its
// [Identity.Fingerprint]. The zero value is not usable; build one with
// [GenerateIdentity], [NewIdentity] or [ParseIdentity]. An Identity is
// immutable and safe for concurrent use.
type Identity struct {
	key *trust.PrivateKey
	pub []byte // encoded public key: alg byte || raw key
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
	defer clear(seed[:])
	if _, err := io.ReadFull(randOrDefault(rand), seed[:]); err != nil {
		return nil, fmt.Errorf("kex: generate identity: read randomness: %w", err)
	}
	return NewIdentity(alg, seed[:])
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
	k, err := trust.NewPrivateKey(alg.keyType(), seed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadIdentityKey, err)
	}
	return IdentityFromKey(k), nil
}

// IdentityFromKey makes a trust signing key (for instance one written by
// "atedb keygen") the server's identity. The fingerprint of the identity
// is the key hash of k.
func IdentityFromKey(k *trust.PrivateKey) *Identity {
	pub := k.Public()
	return &Identity{key: k, pub: append([]byte{byte(pub.Type())}, pub.Bytes()...)}
}

// Key returns the signing key of id.
func (id *Identity) Key() *trust.PrivateKey { return id.key }

// ParseIdentity decodes what [Identity.MarshalBinary] produced (the
// algorithm byte, then the 32-byte seed: trust's secret binary encoding). Errors match
// [ErrUnknownIdentityAlg] or [ErrBadIdentityKey].
func ParseIdentity(b []byte) (*Identity, error) {
	k, err := trust.ParsePrivateKey(b)
	if errors.Is(err, trust.ErrUnknownKeyType) {
		return nil, fmt.Errorf("%w: %w", ErrUnknownIdentityAlg, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadIdentityKey, err)
	}
	return IdentityFromKey(k), nil
}

// MarshalBinary returns the secret encoding of id: the algorithm byte then
// the seed (33 bytes; trust.PrivateKey.SecretBinary). Store it like any private key (mode 0600). The error
// is always nil.
func (id *Identity) MarshalBinary() ([]byte, error) {
	return id.key.SecretBinary(), nil
}

// Alg returns the signature algorithm of id.
func (id *Identity) Alg() IdentityAlg { return IdentityAlg(id.key.Type()) }

// PublicKey returns the encoded public key (the algorithm byte, then the
// algorithm's raw public key), as the server hello carries it and as
// [Fingerprint] hashes it. The result is a fresh copy.
func (id *Identity) PublicKey() []byte { return append([]byte(nil), id.pub...) }

// Fingerprint returns the text fingerprint of id's public key; see
// [Fingerprint].
func (id *Identity) Fingerprint() string { return trust.FormatKeyHash(id.key.Hash()) }

// sign signs msg (deterministically for every algorithm).
func (id *Identity) sign(msg []byte) []byte { return id.key.Sign(msg) }

// Fingerprint returns "sha256:" followed by the 64 lowercase hex digits of
// the SHA-256 of an encoded identity public key ([Identity.PublicKey]):
// the key hash of the identity key in trust's text form
// (trust.FormatKeyHash). Servers print it at start; clients pin it
// ([ClientConfig]).
func Fingerprint(identityPublicKey []byte) string {
	return trust.FormatKeyHash(sha256.Sum256(identityPublicKey))
}

// ParseFingerprint parses the text form printed by [Fingerprint] (the
// "sha256:" prefix is optional, hex is case-insensitive) into the raw
// FingerprintSize-byte digest. Errors match [ErrBadIdentityKey].
func ParseFingerprint(s string) ([]byte, error) {
	h, err := trust.ParseKeyHash(s)
	if err != nil {
		return nil, fmt.Errorf("%w: fingerprint %q: %w", ErrBadIdentityKey, s, err)
	}
	return h[:], nil
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

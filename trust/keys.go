package trust

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"

	"github.com/atedb/atedb/proto"
)

// SeedSize is the size of the secret seed every private key is derived
// from, for every key type (the Ed25519 seed of RFC 8032, the ξ of FIPS 204
// ML-DSA.KeyGen_internal).
const SeedSize = 32

// Sentinel errors. Every error of this package matches one of them (or
// [ErrRefused] for an authority refusal) with errors.Is.
var (
	// ErrUnknownKeyType is matched by errors for a key type byte or name
	// that is not one of proto's key types.
	ErrUnknownKeyType = errors.New("trust: unknown key type")
	// ErrBadKey is matched by errors for a malformed key: wrong length, bad
	// seed, a hash that does not match the key.
	ErrBadKey = errors.New("trust: malformed key")
	// ErrBadSignature is matched by errors for a signature that does not
	// verify.
	ErrBadSignature = errors.New("trust: signature does not verify")
	// ErrEmptyBatch is matched by errors for a batch signature over no
	// event hashes (or a malformed hash list): an empty batch never
	// verifies and is never signed.
	ErrEmptyBatch = errors.New("trust: empty batch")
)

// keyTypes lists the key types this package signs and verifies with, in
// type byte order.
var keyTypes = [...]proto.KeyType{proto.KeyEd25519, proto.KeyMLDSA44, proto.KeyMLDSA65, proto.KeyMLDSA87}

// KeyTypes returns every key type this package supports, in type byte
// order. The result is a fresh slice.
func KeyTypes() []proto.KeyType { return append([]proto.KeyType(nil), keyTypes[:]...) }

// Known reports whether t is a key type this package supports.
func Known(t proto.KeyType) bool { return t.Size() != 0 && (t == proto.KeyEd25519 || mldsa(t) != nil) }

// mldsa returns the circl scheme of an ML-DSA key type, or nil.
func mldsa(t proto.KeyType) sign.Scheme {
	switch t {
	case proto.KeyMLDSA44:
		return mldsa44.Scheme()
	case proto.KeyMLDSA65:
		return mldsa65.Scheme()
	case proto.KeyMLDSA87:
		return mldsa87.Scheme()
	}
	return nil
}

// SignatureSize returns the signature size of key type t (every supported
// type has fixed-size signatures), or 0 for an unknown type.
func SignatureSize(t proto.KeyType) int {
	if t == proto.KeyEd25519 {
		return ed25519.SignatureSize
	}
	if s := mldsa(t); s != nil {
		return s.SignatureSize()
	}
	return 0
}

// ParseKeyType parses a key type name as [proto.KeyType.String] prints it
// ("ed25519", "ml-dsa-44", "ml-dsa-65", "ml-dsa-87"), case-insensitively
// and with or without the dashes ("mldsa65"). Other names return an error
// matching [ErrUnknownKeyType].
func ParseKeyType(s string) (proto.KeyType, error) {
	n := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "")
	for _, t := range keyTypes {
		if n == strings.ReplaceAll(t.String(), "-", "") {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want ed25519, ml-dsa-44, ml-dsa-65 or ml-dsa-87)", ErrUnknownKeyType, s)
}

// PrivateKey is a signing key of one of proto's key types, derived from a
// SeedSize-byte seed. Build one with [GenerateKey], [NewPrivateKey],
// [ParsePrivateKey], [ParsePrivateKeyText] or [LoadPrivateKeyFile]. A
// PrivateKey is immutable and safe for concurrent use.
//
// Its String, GoString and LogValue methods print the type and key hash
// only, never the seed, so a key that ends up in a log or an error message
// leaks nothing. Signing is deterministic (the same key and message give the
// same signature) for every type.
type PrivateKey struct {
	typ  proto.KeyType
	seed [SeedSize]byte
	ed   ed25519.PrivateKey // proto.KeyEd25519
	ml   sign.PrivateKey    // ML-DSA
	pub  *PublicKey
}

// GenerateKey creates a new private key of type t from SeedSize bytes of
// rand (crypto/rand when rand is nil). It returns an error matching
// [ErrUnknownKeyType] for an unknown type, or the error of rand.
func GenerateKey(t proto.KeyType, rand io.Reader) (*PrivateKey, error) {
	if !Known(t) {
		return nil, fmt.Errorf("%w: %v", ErrUnknownKeyType, t)
	}
	var seed [SeedSize]byte
	defer clear(seed[:])
	if _, err := io.ReadFull(randOrDefault(rand), seed[:]); err != nil {
		return nil, fmt.Errorf("trust: generate key: read randomness: %w", err)
	}
	return NewPrivateKey(t, seed[:])
}

// NewPrivateKey derives the private key of type t from a SeedSize-byte
// seed; the same seed always gives the same key. seed is copied. Errors
// match [ErrUnknownKeyType] or [ErrBadKey].
func NewPrivateKey(t proto.KeyType, seed []byte) (*PrivateKey, error) {
	if !Known(t) {
		return nil, fmt.Errorf("%w: %v", ErrUnknownKeyType, t)
	}
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrBadKey, len(seed), SeedSize)
	}
	k := &PrivateKey{typ: t}
	copy(k.seed[:], seed)
	pub := &PublicKey{typ: t}
	if t == proto.KeyEd25519 {
		k.ed = ed25519.NewKeyFromSeed(seed)
		pub.ed = ed25519.PublicKey(k.ed[ed25519.SeedSize:])
		pub.raw = pub.ed
	} else {
		pk, sk := mldsa(t).DeriveKey(seed)
		raw, err := pk.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("trust: marshal %v public key: %w", t, err)
		}
		k.ml, pub.ml, pub.raw = sk, pk, raw
	}
	pub.hash = proto.PublicKey{Type: t, Key: pub.raw}.Hash()
	k.pub = pub
	return k, nil
}

// Type returns the key type of k.
func (k *PrivateKey) Type() proto.KeyType { return k.typ }

// Public returns the public key of k (shared, immutable).
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// Hash returns the key hash of k's public key (see [PublicKey.Hash]).
func (k *PrivateKey) Hash() proto.Hash { return k.pub.hash }

// Sign signs msg as it is and returns a signature of [SignatureSize] bytes.
//
// Sign is the raw primitive and does no domain separation: the caller owns
// the layout of msg and must start it with a context string that no other
// signed layout of atedb starts with (docs/TRUST.md lists them). Sign batch
// signatures with [PrivateKey.SignBatch] and proofs with
// [PrivateKey.SignProof], which do.
func (k *PrivateKey) Sign(msg []byte) []byte {
	if k.typ == proto.KeyEd25519 {
		return ed25519.Sign(k.ed, msg)
	}
	return mldsa(k.typ).Sign(k.ml, msg, nil)
}

// SecretBinary returns the binary secret encoding of k: the key type byte
// followed by the seed (1+SeedSize bytes). It is the secret itself: store
// it like any private key and clear the slice after use. [ParsePrivateKey]
// reads it back.
func (k *PrivateKey) SecretBinary() []byte {
	return append([]byte{byte(k.typ)}, k.seed[:]...)
}

// ParsePrivateKey decodes what [PrivateKey.SecretBinary] produced. Errors
// match [ErrUnknownKeyType] or [ErrBadKey] and never contain key bytes.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	if len(b) != 1+SeedSize {
		return nil, fmt.Errorf("%w: encoded private key is %d bytes, want %d", ErrBadKey, len(b), 1+SeedSize)
	}
	return NewPrivateKey(proto.KeyType(b[0]), b[1:])
}

// String returns "trust.PrivateKey(TYPE sha256:HASH)", without the secret.
func (k *PrivateKey) String() string {
	if k == nil || k.pub == nil {
		return "trust.PrivateKey(nil)"
	}
	return fmt.Sprintf("trust.PrivateKey(%v %s)", k.typ, FormatKeyHash(k.pub.hash))
}

// GoString is [PrivateKey.String], so that %#v prints no secret either.
func (k *PrivateKey) GoString() string { return k.String() }

// LogValue makes log/slog print [PrivateKey.String] instead of the fields.
func (k *PrivateKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// PublicKey is a parsed public key of one of proto's key types, ready to
// verify signatures (an ML-DSA key keeps its expanded matrix, so verifying
// many signatures with one PublicKey does not re-parse it). Build one with
// [NewPublicKey], [PublicKeyFromProto], [ParsePublicKeyText] or
// [PrivateKey.Public]. A PublicKey is immutable and safe for concurrent
// use.
type PublicKey struct {
	typ  proto.KeyType
	raw  []byte
	hash proto.Hash
	ed   ed25519.PublicKey // proto.KeyEd25519
	ml   sign.PublicKey    // ML-DSA
}

// NewPublicKey parses the raw public key bytes raw of type t (as
// [proto.PublicKey] carries them). raw is copied. Errors match
// [ErrUnknownKeyType] or [ErrBadKey]; an Ed25519 key that is a point of
// small order (anyone can forge signatures for it) or whose encoding is not
// canonical is refused too.
func NewPublicKey(t proto.KeyType, raw []byte) (*PublicKey, error) {
	if !Known(t) {
		return nil, fmt.Errorf("%w: %v", ErrUnknownKeyType, t)
	}
	if len(raw) != t.Size() {
		return nil, fmt.Errorf("%w: %v public key of %d bytes, want %d", ErrBadKey, t, len(raw), t.Size())
	}
	p := &PublicKey{typ: t, raw: append([]byte(nil), raw...)}
	if t == proto.KeyEd25519 {
		if !ed25519Canonical(raw) || ed25519SmallOrder(raw) {
			return nil, fmt.Errorf("%w: ed25519 public key is a point of small order or not canonically encoded", ErrBadKey)
		}
		p.ed = ed25519.PublicKey(p.raw)
	} else {
		pk, err := mldsa(t).UnmarshalBinaryPublicKey(p.raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %v public key: %v", ErrBadKey, t, err)
		}
		p.ml = pk
	}
	p.hash = proto.PublicKey{Type: t, Key: p.raw}.Hash()
	return p, nil
}

// PublicKeyFromProto parses a public key as events and Prove messages carry
// it (see [NewPublicKey]).
func PublicKeyFromProto(k proto.PublicKey) (*PublicKey, error) { return NewPublicKey(k.Type, k.Key) }

// Type returns the key type of p.
func (p *PublicKey) Type() proto.KeyType { return p.typ }

// Bytes returns the raw public key bytes. The slice is shared: do not
// modify it.
func (p *PublicKey) Bytes() []byte { return p.raw }

// Proto returns p as events and Prove messages carry it. Its Key is shared
// with p: do not modify it.
func (p *PublicKey) Proto() proto.PublicKey { return proto.PublicKey{Type: p.typ, Key: p.raw} }

// Hash returns the key hash that names p in write authorisations,
// signatures and sign-with hints: SHA-256(type byte || raw key), as
// [proto.PublicKey.Hash] defines it.
func (p *PublicKey) Hash() proto.Hash { return p.hash }

// Equal reports whether p and q are the same key.
func (p *PublicKey) Equal(q *PublicKey) bool { return p.hash == q.hash && p.typ == q.typ }

// String returns "TYPE sha256:HASH".
func (p *PublicKey) String() string { return fmt.Sprintf("%v %s", p.typ, FormatKeyHash(p.hash)) }

// Verify reports whether sig is p's signature of msg as it is (the raw
// primitive, see [PrivateKey.Sign]). Ed25519 follows RFC 8032 as Go's
// crypto/ed25519 implements it (cofactorless, canonical S and R encodings
// required); ML-DSA follows FIPS 204 with an empty context. A signature of
// the wrong length is false.
func (p *PublicKey) Verify(msg, sig []byte) bool {
	if len(sig) != SignatureSize(p.typ) {
		return false
	}
	if p.typ == proto.KeyEd25519 {
		return !ed25519SmallOrder(sig[:32]) && ed25519.Verify(p.ed, msg, sig)
	}
	return mldsa(p.typ).Verify(p.ml, msg, sig, nil)
}

// smallOrder lists the encodings, sign bit cleared, of the eight Ed25519
// points of small order (y = 0, 1, -1 and the two y of the points of order
// 8), with the non-canonical encodings p and p+1 of y = 0 and 1: the list
// libsodium checks. A key or a signature's R among them is refused.
var smallOrder = [...][32]byte{
	{},     // y = 0: order 4
	{0x01}, // y = 1: the identity
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05}, // order 8
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a}, // order 8
	pMinus(1),  // y = -1: order 2
	pMinus(0),  // y = p ≡ 0, non-canonical
	pMinus(-1), // y = p+1 ≡ 1, non-canonical
}

// pMinus returns the little-endian encoding of 2^255-19-d.
func pMinus(d int) [32]byte {
	var b [32]byte
	for i := range b {
		b[i] = 0xff
	}
	b[0], b[31] = byte(0xed-d), 0x7f
	return b
}

// ed25519SmallOrder reports whether the 32-byte point encoding b (a public
// key, or a signature's R) is a point of small order.
func ed25519SmallOrder(b []byte) bool {
	for i := range smallOrder {
		if string(b[:31]) == string(smallOrder[i][:31]) && b[31]&0x7f == smallOrder[i][31] {
			return true
		}
	}
	return false
}

// ed25519Canonical reports whether the y coordinate of the 32-byte point
// encoding b is below p = 2^255-19.
func ed25519Canonical(b []byte) bool {
	if b[31]&0x7f != 0x7f || b[0] < 0xed {
		return true
	}
	for _, c := range b[1:31] {
		if c != 0xff {
			return true
		}
	}
	return false
}

// usableKey reports, without parsing it, whether [PublicKeyFromProto]
// accepts k: a known type, the type's size, and for Ed25519 a canonical
// encoding of a point not of small order.
func usableKey(k proto.PublicKey) bool {
	if !Known(k.Type) || len(k.Key) != k.Type.Size() {
		return false
	}
	return k.Type != proto.KeyEd25519 || (ed25519Canonical(k.Key) && !ed25519SmallOrder(k.Key))
}

// randOrDefault returns r, or crypto/rand's Reader when r is nil.
func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

package trust

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/atedb/atedb/proto"
)

// Signed layouts: part of the wire and disk format; never change. Every
// byte string atedb signs starts with a context string, and no context
// string is a prefix of another (TestContextsPrefixFree), so a signature
// made for one purpose never verifies as another:
//
//	batch signature   = BatchContext || uvarint(len(chain key)) || chain key || uvarint(n) || n × 32-byte event hash
//	centralized proof = ProofContext || 32-byte conversation nonce || uvarint(len(chain key)) || chain key
//	kex server identity (package kex) = "atedb-kex-v1 server signature" || 32-byte transcript hash
//
// uvarint is the unsigned LEB128 varint of encoding/binary (7 bits per
// byte, least significant group first, high bit set on every byte but the
// last). docs/TRUST.md has worked examples.
const (
	// BatchContext starts every batch signature's signed bytes: the ASCII
	// text "atedb batch v1" and one zero byte.
	BatchContext = "atedb batch v1\x00"
	// ProofContext starts every centralized-trust proof's signed bytes; it
	// is [proto.ProofDomain] ("atedb prove v1" and one zero byte), whose
	// layout proto owns ([proto.ProofMessage]).
	ProofContext = proto.ProofDomain
	// MaxBatchHashes bounds the event hashes one batch signature covers
	// (the most events one Append can carry is far below it).
	MaxBatchHashes = 1 << 20
)

// AppendBatchMessage appends to dst the bytes a batch signature covers:
// BatchContext, the chain key and the event hashes (layout above). It does
// not check hashes; [PrivateKey.SignBatch] and [PublicKey.VerifyBatch] do.
func AppendBatchMessage(dst []byte, chainKey string, hashes proto.HashList) []byte {
	dst = append(dst, BatchContext...)
	dst = binary.AppendUvarint(dst, uint64(len(chainKey)))
	dst = append(dst, chainKey...)
	dst = binary.AppendUvarint(dst, uint64(hashes.Len()))
	return append(dst, hashes...)
}

// BatchMessageSize returns len(AppendBatchMessage(nil, chainKey, hashes))
// for a chain key of chainKeyLen bytes and n hashes.
func BatchMessageSize(chainKeyLen, n int) int {
	return len(BatchContext) + uvarintLen(uint64(chainKeyLen)) + chainKeyLen + uvarintLen(uint64(n)) + n*proto.HashSize
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// checkBatch returns an error matching ErrEmptyBatch unless hashes holds
// 1..MaxBatchHashes whole hashes.
func checkBatch(hashes proto.HashList) error {
	if len(hashes) == 0 || len(hashes)%proto.HashSize != 0 {
		return fmt.Errorf("%w: hash list of %d bytes (want a non-empty multiple of %d)", ErrEmptyBatch, len(hashes), proto.HashSize)
	}
	if hashes.Len() > MaxBatchHashes {
		return fmt.Errorf("%w: %d hashes, limit %d", ErrEmptyBatch, hashes.Len(), MaxBatchHashes)
	}
	return nil
}

// SignBatch signs the batch message of chainKey and hashes (the event
// hashes the signature covers, in the order they are listed in the
// [proto.Signature]) and returns the signature record to put in an event.
// Its Hashes is a copy. An empty or malformed hash list returns an error
// matching [ErrEmptyBatch].
func (k *PrivateKey) SignBatch(chainKey string, hashes proto.HashList) (proto.Signature, error) {
	if err := checkBatch(hashes); err != nil {
		return proto.Signature{}, err
	}
	msg := AppendBatchMessage(make([]byte, 0, BatchMessageSize(len(chainKey), hashes.Len())), chainKey, hashes)
	return proto.Signature{
		KeyHash:   k.pub.hash,
		Hashes:    append(proto.HashList(nil), hashes...),
		Signature: k.Sign(msg),
	}, nil
}

// VerifyBatch checks that sig is p's batch signature over chainKey and
// hashes. It returns nil, or an error matching [ErrEmptyBatch] (no hashes)
// or [ErrBadSignature]. It allocates the message;
// [PublicKey.VerifyBatchBuffer] reuses a buffer.
func (p *PublicKey) VerifyBatch(chainKey string, hashes proto.HashList, sig []byte) error {
	if err := checkBatch(hashes); err != nil {
		return err
	}
	_, err := p.VerifyBatchBuffer(make([]byte, 0, BatchMessageSize(len(chainKey), hashes.Len())), chainKey, hashes, sig)
	return err
}

// VerifyBatchBuffer is [PublicKey.VerifyBatch] building the message in
// buf, which it returns (grown if needed) for the next call: a verifier that
// checks many signatures reuses one buffer and allocates nothing when they
// verify.
func (p *PublicKey) VerifyBatchBuffer(buf []byte, chainKey string, hashes proto.HashList, sig []byte) ([]byte, error) {
	if err := checkBatch(hashes); err != nil {
		return buf, err
	}
	buf = AppendBatchMessage(buf[:0], chainKey, hashes)
	if !p.Verify(buf, sig) {
		return buf, fmt.Errorf("%w: batch signature by %s over %d events", ErrBadSignature, FormatKeyHash(p.hash), hashes.Len())
	}
	return buf, nil
}

// VerifySignature checks a signature record s from an event against p: the
// record must name p's key hash and cover at least one event hash.
func (p *PublicKey) VerifySignature(chainKey string, s proto.Signature) error {
	if s.KeyHash != p.hash {
		return fmt.Errorf("%w: signature names key %s, verified with %s", ErrBadSignature, FormatKeyHash(s.KeyHash), FormatKeyHash(p.hash))
	}
	return p.VerifyBatch(chainKey, s.Hashes, s.Signature)
}

// SignProof signs the centralized-trust proof for the connection whose
// conversation nonce (from the HelloAck) is nonce, for the chain chainKey:
// the signature a [proto.Prove] carries.
func (k *PrivateKey) SignProof(nonce [proto.NonceSize]byte, chainKey string) []byte {
	return k.Sign(proto.ProofMessage(nonce, chainKey))
}

// VerifyProof checks that sig is p's proof for the conversation nonce and
// chainKey. It returns nil or an error matching [ErrBadSignature].
func (p *PublicKey) VerifyProof(nonce [proto.NonceSize]byte, chainKey string, sig []byte) error {
	if !p.Verify(proto.ProofMessage(nonce, chainKey), sig) {
		return fmt.Errorf("%w: proof by %s", ErrBadSignature, FormatKeyHash(p.hash))
	}
	return nil
}

// keyHashPrefix starts the text form of a key hash.
const keyHashPrefix = "sha256:"

// FormatKeyHash returns the text form of a key hash: "sha256:" and 64
// lowercase hex digits. It is what keygen prints and what key files hold;
// kex.Fingerprint of the same public key is the same string.
func FormatKeyHash(h proto.Hash) string { return keyHashPrefix + hex.EncodeToString(h[:]) }

// ParseKeyHash parses the text form of a key hash ([FormatKeyHash]; the
// "sha256:" prefix is optional, hex digits of either case). Errors match
// [ErrBadKey].
func ParseKeyHash(s string) (proto.Hash, error) {
	t := strings.TrimSpace(s)
	if len(t) >= len(keyHashPrefix) && strings.EqualFold(t[:len(keyHashPrefix)], keyHashPrefix) {
		t = t[len(keyHashPrefix):]
	}
	var h proto.Hash
	if len(t) != 2*proto.HashSize {
		return h, fmt.Errorf("%w: key hash: want %d hex digits, got %d characters", ErrBadKey, 2*proto.HashSize, len(t))
	}
	if _, err := hex.Decode(h[:], []byte(t)); err != nil {
		return proto.Hash{}, fmt.Errorf("%w: key hash: %v", ErrBadKey, err)
	}
	return h, nil
}

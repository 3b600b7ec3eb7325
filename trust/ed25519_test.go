package trust

import (
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"math/big"
	"slices"
	"testing"

	"github.com/atedb/atedb/proto"
)

// TestEd25519WeakKeysRefused: every small-order point encoding (both sign
// bits) and non-canonical encodings are refused as public keys. With such a
// key, anyone forges signatures (R = identity, S = 0 verifies in
// crypto/ed25519 for one message in eight).
func TestEd25519WeakKeysRefused(t *testing.T) {
	for i, enc := range smallOrder {
		for _, sign := range []byte{0, 0x80} {
			b := enc
			b[31] |= sign
			if _, err := NewPublicKey(proto.KeyEd25519, b[:]); !errors.Is(err, ErrBadKey) {
				t.Errorf("small-order encoding %d sign %x accepted: %v", i, sign, err)
			}
		}
	}
	nonCanonical := pMinus(-2) // y = p+2
	if _, err := NewPublicKey(proto.KeyEd25519, nonCanonical[:]); !errors.Is(err, ErrBadKey) {
		t.Errorf("non-canonical y accepted: %v", err)
	}
	// The forgery the check prevents: crypto/ed25519 alone accepts it for
	// some messages.
	weak := smallOrder[3]
	forged := make([]byte, 64)
	forged[0] = 1 // R = identity, S = 0
	accepted := 0
	for i := range 64 {
		if ed25519.Verify(weak[:], []byte{byte(i)}, forged) {
			accepted++
		}
	}
	if accepted == 0 {
		t.Fatalf("the forgery never verifies in crypto/ed25519: the test no longer shows anything")
	}
}

// TestEd25519SmallOrderRRefused: a key's owner can make a signature whose
// R is the identity (S = k·a); crypto/ed25519 accepts it, strict verifiers
// (libsodium) do not, so trust refuses it and every reader agrees.
func TestEd25519SmallOrderRRefused(t *testing.T) {
	seed := make([]byte, SeedSize)
	k, err := NewPrivateKey(proto.KeyEd25519, seed)
	if err != nil {
		t.Fatal(err)
	}
	h := sha512.Sum512(seed)
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	a := leInt(h[:32])
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10) // 2^252 + 27742317777372353535851937790883648493
	msg := []byte("atedb batch v1 forged")
	var rEnc [32]byte
	rEnc[0] = 1 // the identity
	kh := sha512.New()
	kh.Write(rEnc[:])
	kh.Write(k.Public().Bytes())
	kh.Write(msg)
	kk := leInt(kh.Sum(nil))
	s := new(big.Int).Mod(new(big.Int).Mul(kk, a), l)
	sig := append(rEnc[:], leBytes(s, 32)...)
	if !ed25519.Verify(ed25519.PublicKey(k.Public().Bytes()), msg, sig) {
		t.Fatalf("crypto/ed25519 refuses the R = identity signature: the test no longer shows anything")
	}
	if k.Public().Verify(msg, sig) {
		t.Fatalf("trust accepts a signature whose R has small order")
	}
}

func leInt(b []byte) *big.Int {
	r := slices.Clone(b)
	slices.Reverse(r)
	return new(big.Int).SetBytes(r)
}

func leBytes(x *big.Int, n int) []byte {
	b := x.FillBytes(make([]byte, n))
	slices.Reverse(b)
	return b
}

package trust

import (
	"bytes"
	"testing"

	"github.com/atedb/atedb/proto"
)

// FuzzKeyText: the key file parsers never panic, never accept more than
// MaxKeyTextSize bytes, and what they accept re-encodes to a file that
// parses to the same key.
func FuzzKeyText(f *testing.F) {
	for _, typ := range KeyTypes() {
		k := testKey(f, typ, "fuzz")
		f.Add(k.AppendSecretText(nil))    // a valid private key file of each type
		f.Add(k.Public().AppendText(nil)) // a valid public key file of each type
	}
	f.Add([]byte(PrivateKeyHeader + "\ntype ed25519\nseed 00\n")) // short seed
	f.Add([]byte("# only a comment\n\r\n"))                       // no header
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParsePrivateKeyText(b); err == nil {
			if len(b) > MaxKeyTextSize {
				t.Fatalf("accepted %d bytes", len(b))
			}
			back, err := ParsePrivateKeyText(k.AppendSecretText(nil))
			if err != nil || back.Hash() != k.Hash() || !bytes.Equal(back.SecretBinary(), k.SecretBinary()) {
				t.Fatalf("re-encoded private key: %v, %v", back, err)
			}
		}
		if p, err := ParsePublicKeyText(b); err == nil {
			back, err := ParsePublicKeyText(p.AppendText(nil))
			if err != nil || !back.Equal(p) || !bytes.Equal(back.Bytes(), p.Bytes()) {
				t.Fatalf("re-encoded public key: %v, %v", back, err)
			}
		}
	})
}

// FuzzKeyBinary: the binary key decoders (the secret encoding kex's server
// identity files use, and raw public keys as events carry them) never
// panic, and a key they accept round-trips.
func FuzzKeyBinary(f *testing.F) {
	for _, typ := range KeyTypes() {
		k := testKey(f, typ, "fuzz")
		f.Add(k.SecretBinary())                                 // valid secret
		f.Add(append([]byte{byte(typ)}, k.Public().Bytes()...)) // type byte + valid public key
	}
	f.Add([]byte{0})  // type 0
	f.Add([]byte{42}) // unknown type
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParsePrivateKey(b); err == nil {
			if !bytes.Equal(k.SecretBinary(), b) {
				t.Fatalf("SecretBinary does not round-trip")
			}
		}
		if len(b) == 0 {
			return
		}
		if p, err := NewPublicKey(proto.KeyType(b[0]), b[1:]); err == nil {
			if !bytes.Equal(p.Bytes(), b[1:]) || p.Hash() != (proto.PublicKey{Type: proto.KeyType(b[0]), Key: b[1:]}).Hash() {
				t.Fatalf("public key does not round-trip")
			}
			if p.Verify([]byte("m"), make([]byte, SignatureSize(p.Type()))) {
				t.Fatalf("a zero signature verifies")
			}
		}
	})
}

// fuzzKeys are fixed keys whose valid signatures seed FuzzVerifyBatch.
var fuzzKeys = func() map[proto.KeyType]*PrivateKey {
	m := map[proto.KeyType]*PrivateKey{}
	for _, typ := range KeyTypes() {
		k, err := NewPrivateKey(typ, bytes.Repeat([]byte{byte(typ)}, SeedSize))
		if err != nil {
			panic(err)
		}
		m[typ] = k
	}
	return m
}()

const fuzzChain = "fuzz/chain"

var fuzzHashes = proto.MakeHashList(proto.Hash{1}, proto.Hash{2})

// FuzzVerifyBatch: verifying a batch signature never panics, whatever the
// chain key, hash list or signature bytes, and the only input that verifies
// under a fixed key is the one it signed (signatures are strongly
// unforgeable and bound to chain and hashes: any change, even to the
// signature alone, fails).
func FuzzVerifyBatch(f *testing.F) {
	for _, typ := range KeyTypes() {
		s, err := fuzzKeys[typ].SignBatch(fuzzChain, fuzzHashes)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(typ), fuzzChain, []byte(fuzzHashes), s.Signature) // valid: the fuzzer mutates from here
	}
	f.Add(byte(1), "", []byte{}, []byte{})                   // empty batch
	f.Add(byte(9), fuzzChain, []byte(fuzzHashes), []byte{1}) // unknown type
	f.Fuzz(func(t *testing.T, typ byte, chain string, hashes, sig []byte) {
		k, ok := fuzzKeys[proto.KeyType(typ)]
		if !ok {
			return
		}
		err := k.Public().VerifyBatch(chain, hashes, sig)
		if err != nil {
			return
		}
		if chain != fuzzChain || !bytes.Equal(hashes, fuzzHashes) {
			t.Fatalf("a %v signature verified for chain %q and %d hash bytes", k.Type(), chain, len(hashes))
		}
		want, _ := k.SignBatch(fuzzChain, fuzzHashes)
		if !bytes.Equal(sig, want.Signature) {
			t.Fatalf("a second %v signature of the same batch verified", k.Type())
		}
	})
}

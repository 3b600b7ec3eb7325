package trust

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/atedb/atedb/proto"
)

// kexLabel is the context string of kex's server identity signature
// (kex/schedule.go labelSignature), repeated here because kex imports trust.
const kexLabel = "atedb-kex-v1 server signature"

// TestContextsPrefixFree: no signed layout's context string is a prefix of
// another's, so no signature can be read as another kind.
func TestContextsPrefixFree(t *testing.T) {
	ctx := []string{BatchContext, ProofContext, kexLabel}
	for i, a := range ctx {
		for j, b := range ctx {
			if i != j && strings.HasPrefix(b, a) {
				t.Errorf("%q is a prefix of %q", a, b)
			}
		}
	}
}

// TestBatchMessageLayout pins the batch layout byte for byte (docs/TRUST.md
// shows the same example).
func TestBatchMessageLayout(t *testing.T) {
	var h1, h2 proto.Hash
	for i := range h1 {
		h1[i], h2[i] = 0x11, 0x22
	}
	got := hex.EncodeToString(AppendBatchMessage(nil, "app/db", proto.MakeHashList(h1, h2)))
	want := hex.EncodeToString([]byte("atedb batch v1\x00")) + "06" + hex.EncodeToString([]byte("app/db")) + "02" +
		strings.Repeat("11", 32) + strings.Repeat("22", 32)
	if got != want {
		t.Fatalf("batch message\n got %s\nwant %s", got, want)
	}
	if n := BatchMessageSize(6, 2); n != len(got)/2 {
		t.Fatalf("BatchMessageSize = %d, want %d", n, len(got)/2)
	}
	long := strings.Repeat("k", 200)
	if n, m := BatchMessageSize(len(long), 200), len(AppendBatchMessage(nil, long, make(proto.HashList, 200*32))); n != m {
		t.Fatalf("BatchMessageSize(200, 200) = %d, message is %d", n, m)
	}
}

func TestBatchSignatures(t *testing.T) {
	var h1, h2, h3 proto.Hash
	h1[0], h2[0], h3[0] = 1, 2, 3
	list := proto.MakeHashList(h1, h2)
	for _, typ := range KeyTypes() {
		t.Run(typ.String(), func(t *testing.T) {
			k := testKey(t, typ, "batch")
			s, err := k.SignBatch("a/b", list)
			if err != nil {
				t.Fatal(err)
			}
			if s.KeyHash != k.Hash() || string(s.Hashes) != string(list) {
				t.Fatalf("record names %x over %d hashes", s.KeyHash, s.Hashes.Len())
			}
			if err := k.Public().VerifySignature("a/b", s); err != nil {
				t.Fatalf("VerifySignature: %v", err)
			}
			// Every change to what is covered breaks it.
			for name, tc := range map[string]struct {
				chain  string
				hashes proto.HashList
				key    *PublicKey
			}{
				"other chain":     {"a/c", list, k.Public()},
				"chain prefix":    {"a/", list, k.Public()},
				"reordered":       {"a/b", proto.MakeHashList(h2, h1), k.Public()},
				"one dropped":     {"a/b", proto.MakeHashList(h1), k.Public()},
				"one added":       {"a/b", proto.MakeHashList(h1, h2, h3), k.Public()},
				"one replaced":    {"a/b", proto.MakeHashList(h1, h3), k.Public()},
				"another key":     {"a/b", list, testKey(t, typ, "other").Public()},
				"chain key moved": {"a/b" + string(h1[:]), proto.MakeHashList(h2), k.Public()},
			} {
				if err := tc.key.VerifyBatch(tc.chain, tc.hashes, s.Signature); !errors.Is(err, ErrBadSignature) {
					t.Errorf("%s: %v, want ErrBadSignature", name, err)
				}
			}
			// A batch signature is not a proof, nor the other way round.
			var nonce [proto.NonceSize]byte
			if err := k.Public().VerifyProof(nonce, "a/b", s.Signature); !errors.Is(err, ErrBadSignature) {
				t.Errorf("batch signature verifies as a proof: %v", err)
			}
			proof := k.SignProof(nonce, "a/b")
			if err := k.Public().VerifyProof(nonce, "a/b", proof); err != nil {
				t.Errorf("VerifyProof: %v", err)
			}
			if err := k.Public().VerifyBatch("a/b", list, proof); !errors.Is(err, ErrBadSignature) {
				t.Errorf("proof verifies as a batch signature: %v", err)
			}
			nonce[31] ^= 1
			if err := k.Public().VerifyProof(nonce, "a/b", proof); !errors.Is(err, ErrBadSignature) {
				t.Errorf("proof verifies for another conversation: %v", err)
			}
			nonce[31] ^= 1
			if err := k.Public().VerifyProof(nonce, "a/c", proof); !errors.Is(err, ErrBadSignature) {
				t.Errorf("proof verifies for another chain: %v", err)
			}
			// A record that names another key does not verify with this one.
			other := s
			other.KeyHash[0] ^= 1
			if err := k.Public().VerifySignature("a/b", other); !errors.Is(err, ErrBadSignature) {
				t.Errorf("record naming another key: %v", err)
			}
			// Empty batches are neither signed nor verified.
			if _, err := k.SignBatch("a/b", nil); !errors.Is(err, ErrEmptyBatch) {
				t.Errorf("SignBatch(empty) = %v", err)
			}
			if err := k.Public().VerifyBatch("a/b", nil, s.Signature); !errors.Is(err, ErrEmptyBatch) {
				t.Errorf("VerifyBatch(empty) = %v", err)
			}
			if err := k.Public().VerifyBatch("a/b", list[:33], s.Signature); !errors.Is(err, ErrEmptyBatch) {
				t.Errorf("VerifyBatch(33 bytes) = %v", err)
			}
		})
	}
}

// TestEmptyBatchSignatureNeverVerifies: even a signature made over the
// batch message of zero hashes (with the raw primitive) is refused.
func TestEmptyBatchSignatureNeverVerifies(t *testing.T) {
	k := testKey(t, proto.KeyEd25519, "empty")
	sig := k.Sign(AppendBatchMessage(nil, "a/b", nil))
	if err := k.Public().VerifyBatch("a/b", nil, sig); !errors.Is(err, ErrEmptyBatch) {
		t.Fatalf("VerifyBatch(empty, raw signature) = %v", err)
	}
}

// TestDocVectors pins the worked example of docs/TRUST.md §3 (checked
// independently with OpenSSL: `openssl pkeyutl -sign -rawin` over the same
// message with the same seed gives the same signature).
func TestDocVectors(t *testing.T) {
	k, err := NewPrivateKey(proto.KeyEd25519, bytes.Repeat([]byte{1}, SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	var h1, h2 proto.Hash
	var nonce [proto.NonceSize]byte
	for i := range h1 {
		h1[i], h2[i], nonce[i] = 0x11, 0x22, 0x07
	}
	s, err := k.SignBatch("app/db", proto.MakeHashList(h1, h2))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ got, want string }{
		"public key":    {hex.EncodeToString(k.Public().Bytes()), "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"},
		"key hash":      {FormatKeyHash(k.Hash()), "sha256:d2dd6e81a001b70a13607f6fbbb3b129ff367216fc1f8e3ae53e63976bf573a2"},
		"batch sig":     {hex.EncodeToString(s.Signature), "8e320420ff6784d66864ee2061f8330e451d361b7141e4b893a777bdf00c027ad2fed7ed711222c949f7284818975d9e4af4df6aad8c74ab45861d9854887703"},
		"proof message": {hex.EncodeToString(proto.ProofMessage(nonce, "app/db")), "61746564622070726f7665207631000707070707070707070707070707070707070707070707070707070707070707066170702f6462"},
		"proof":         {hex.EncodeToString(k.SignProof(nonce, "app/db")), "b1d6a09007a1c08031a0768cb10e8dedb4aae3f94668d8ab700b7511882e1a9de2f1f10bd5ce1a9ec05a587d718779d139aa35dd4731dd9a4dd9c11456e90805"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", name, tc.got, tc.want)
		}
	}
}

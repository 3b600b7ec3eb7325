package kex

import (
	"bytes"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/trust"
)

func TestIdentityRoundTrip(t *testing.T) {
	fp := regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	for _, alg := range allAlgs[1:] {
		t.Run(alg.String(), func(t *testing.T) {
			id := testIdentity(t, alg, "round trip")
			if id.Alg() != alg {
				t.Fatalf("Alg() = %v, want %v", id.Alg(), alg)
			}
			pub := id.PublicKey()
			if pub[0] != byte(alg) || len(pub) != 1+alg.publicKeySize() {
				t.Fatalf("PublicKey() = alg %d, %d bytes; want alg %d, %d bytes", pub[0], len(pub), alg, 1+alg.publicKeySize())
			}
			pub[1] ^= 1
			if id.PublicKey()[1] == pub[1] {
				t.Fatalf("PublicKey() returns the identity's own slice")
			}
			if !fp.MatchString(id.Fingerprint()) {
				t.Fatalf("Fingerprint() = %q", id.Fingerprint())
			}
			b, err := id.MarshalBinary()
			if err != nil || len(b) != 1+IdentitySeedSize {
				t.Fatalf("MarshalBinary = %d bytes, %v", len(b), err)
			}
			back, err := ParseIdentity(b)
			if err != nil {
				t.Fatalf("ParseIdentity: %v", err)
			}
			if back.Fingerprint() != id.Fingerprint() {
				t.Fatalf("parsed identity has fingerprint %s, want %s", back.Fingerprint(), id.Fingerprint())
			}
			msg := []byte("transcript")
			sig := id.sign(msg)
			if len(sig) != alg.signatureSize() {
				t.Fatalf("signature is %d bytes, want %d", len(sig), alg.signatureSize())
			}
			if !alg.verify(id.PublicKey()[1:], msg, sig) {
				t.Fatalf("own signature does not verify")
			}
			other := testIdentity(t, alg, "other")
			if alg.verify(other.PublicKey()[1:], msg, sig) {
				t.Fatalf("signature verifies under another key")
			}
			if alg.verify(id.PublicKey()[1:], []byte("transcripT"), sig) {
				t.Fatalf("signature verifies for another message")
			}
			if alg.verify(id.PublicKey()[2:], msg, sig) {
				t.Fatalf("signature verifies with a cut public key")
			}
			raw, err := ParseFingerprint(strings.ToUpper(id.Fingerprint()))
			if err != nil || !fingerprintMatches(id.PublicKey(), raw) {
				t.Fatalf("ParseFingerprint(upper case) = %x, %v", raw, err)
			}
		})
	}
}

// TestEd25519RFC8032 checks the Ed25519 identity against RFC 8032 §7.1
// test 1 (independent vector).
func TestEd25519RFC8032(t *testing.T) {
	seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	id := mustIdentity(t, IdentityEd25519, seed)
	if got := hex.EncodeToString(id.PublicKey()[1:]); got != "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" {
		t.Fatalf("public key %s", got)
	}
	want := "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
	if got := hex.EncodeToString(id.sign(nil)); got != want {
		t.Fatalf("signature of the empty message %s", got)
	}
}

func TestIdentityErrors(t *testing.T) {
	if _, err := NewIdentity(IdentityNone, make([]byte, 32)); !errors.Is(err, ErrUnknownIdentityAlg) {
		t.Errorf("NewIdentity(none) = %v", err)
	}
	if _, err := NewIdentity(IdentityAlg(9), make([]byte, 32)); !errors.Is(err, ErrUnknownIdentityAlg) {
		t.Errorf("NewIdentity(9) = %v", err)
	}
	if _, err := NewIdentity(IdentityEd25519, make([]byte, 31)); !errors.Is(err, ErrBadIdentityKey) {
		t.Errorf("NewIdentity(short seed) = %v", err)
	}
	if _, err := ParseIdentity(make([]byte, 32)); !errors.Is(err, ErrBadIdentityKey) {
		t.Errorf("ParseIdentity(32 bytes) = %v", err)
	}
	if _, err := ParseIdentity(append([]byte{7}, make([]byte, 32)...)); !errors.Is(err, ErrUnknownIdentityAlg) {
		t.Errorf("ParseIdentity(alg 7) = %v", err)
	}
	boom := errors.New("no entropy")
	if _, err := GenerateIdentity(IdentityMLDSA65, failingReader{boom}); !errors.Is(err, boom) {
		t.Errorf("GenerateIdentity(failing rand) = %v", err)
	}
	if _, err := GenerateIdentity(IdentityNone, nil); !errors.Is(err, ErrUnknownIdentityAlg) {
		t.Errorf("GenerateIdentity(none) = %v", err)
	}
	for _, s := range []string{"", "sha256:", "sha256:zz" + strings.Repeat("0", 62), strings.Repeat("0", 63), "md5:" + strings.Repeat("0", 64)} {
		if _, err := ParseFingerprint(s); !errors.Is(err, ErrBadIdentityKey) {
			t.Errorf("ParseFingerprint(%q) = %v", s, err)
		}
	}
	names := map[string]IdentityAlg{"ed25519": IdentityEd25519, "ML-DSA-44": IdentityMLDSA44, "mldsa65": IdentityMLDSA65, "ml-dsa-87": IdentityMLDSA87}
	for s, want := range names {
		if got, err := ParseIdentityAlg(s); err != nil || got != want {
			t.Errorf("ParseIdentityAlg(%q) = %v, %v", s, got, err)
		}
		if got, _ := ParseIdentityAlg(want.String()); got != want {
			t.Errorf("ParseIdentityAlg(%v.String()) = %v", want, got)
		}
	}
	for _, s := range []string{"", "none", "rsa", "ml-dsa-99"} {
		if _, err := ParseIdentityAlg(s); !errors.Is(err, ErrUnknownIdentityAlg) {
			t.Errorf("ParseIdentityAlg(%q) = %v", s, err)
		}
	}
	if IdentityAlg(9).known() || IdentityAlg(9).verify(make([]byte, 32), nil, nil) {
		t.Errorf("unknown algorithm treated as known")
	}
}

// TestIdentityConcurrentUse: one Identity signs many handshakes at once
// (run with -race).
func TestIdentityConcurrentUse(t *testing.T) {
	id := testIdentity(t, IdentityMLDSA44, "shared")
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			r := runHandshake(t, hsOpts{size: KeySize128, scfg: ServerConfig{Identity: id}, ccfg: ClientConfig{PinnedFingerprint: []byte(id.Fingerprint())}})
			errs <- errors.Join(r.srvErr, r.cliErr)
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent handshake: %v", err)
		}
	}
}

// TestIdentityIsTrustKey: identity algorithms are proto's key types, an
// identity is a trust key, and its fingerprint is that key's hash.
func TestIdentityIsTrustKey(t *testing.T) {
	for _, alg := range allAlgs[1:] {
		if got := proto.KeyType(alg).String(); got != alg.String() {
			t.Errorf("IdentityAlg %d is %s, proto.KeyType %d is %s", alg, alg, alg, got)
		}
		id := testIdentity(t, alg, "trust")
		k := id.Key()
		if got := trust.FormatKeyHash(k.Hash()); got != id.Fingerprint() || got != Fingerprint(id.PublicKey()) {
			t.Errorf("%v: key hash %s, fingerprint %s / %s", alg, got, id.Fingerprint(), Fingerprint(id.PublicKey()))
		}
		again := IdentityFromKey(k)
		if !bytes.Equal(again.PublicKey(), id.PublicKey()) || again.Alg() != alg {
			t.Errorf("%v: IdentityFromKey gives another identity", alg)
		}
		msg := []byte("transcript")
		if !k.Public().Verify(msg, id.sign(msg)) || !alg.verify(k.Public().Bytes(), msg, k.Sign(msg)) {
			t.Errorf("%v: identity and trust key signatures differ", alg)
		}
	}
}

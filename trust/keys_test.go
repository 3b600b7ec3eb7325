package trust

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/atedb/atedb/proto"
)

// detRand returns the SHAKE-128 stream of label: deterministic randomness.
func detRand(label string) io.Reader {
	h := sha3.NewSHAKE128()
	h.Write([]byte(label))
	return h
}

// testKey returns the key of type t derived from label.
func testKey(tb testing.TB, t proto.KeyType, label string) *PrivateKey {
	tb.Helper()
	k, err := GenerateKey(t, detRand(label))
	if err != nil {
		tb.Fatalf("GenerateKey(%v): %v", t, err)
	}
	return k
}

func TestKeysRoundTrip(t *testing.T) {
	for _, typ := range KeyTypes() {
		t.Run(typ.String(), func(t *testing.T) {
			k := testKey(t, typ, "round trip")
			if k.Type() != typ || k.Public().Type() != typ {
				t.Fatalf("Type() = %v / %v, want %v", k.Type(), k.Public().Type(), typ)
			}
			if got := len(k.Public().Bytes()); got != typ.Size() {
				t.Fatalf("public key is %d bytes, want %d", got, typ.Size())
			}
			if want := (proto.PublicKey{Type: typ, Key: k.Public().Bytes()}).Hash(); k.Hash() != want {
				t.Fatalf("Hash() = %x, want proto's %x", k.Hash(), want)
			}
			msg := []byte("message")
			sig := k.Sign(msg)
			if len(sig) != SignatureSize(typ) {
				t.Fatalf("signature is %d bytes, want %d", len(sig), SignatureSize(typ))
			}
			if !bytes.Equal(sig, k.Sign(msg)) {
				t.Fatalf("signing is not deterministic")
			}
			if !k.Public().Verify(msg, sig) {
				t.Fatalf("own signature does not verify")
			}
			other := testKey(t, typ, "other")
			for name, ok := range map[string]bool{
				"other key":      other.Public().Verify(msg, sig),
				"other message":  k.Public().Verify([]byte("messagE"), sig),
				"flipped bit":    k.Public().Verify(msg, flip(sig, 9)),
				"short":          k.Public().Verify(msg, sig[:len(sig)-1]),
				"long":           k.Public().Verify(msg, append(bytes.Clone(sig), 0)),
				"empty":          k.Public().Verify(msg, nil),
				"other type sig": k.Public().Verify(msg, testKey(t, otherType(typ), "x").Sign(msg)),
			} {
				if ok {
					t.Errorf("%s: verifies", name)
				}
			}

			back, err := ParsePrivateKey(k.SecretBinary())
			if err != nil || back.Hash() != k.Hash() {
				t.Fatalf("ParsePrivateKey(SecretBinary) = %v, %v", back, err)
			}
			text := k.AppendSecretText(nil)
			back, err = ParsePrivateKeyText(text)
			if err != nil || back.Hash() != k.Hash() {
				t.Fatalf("ParsePrivateKeyText = %v, %v\n%s", back, err, text)
			}
			pt := k.Public().AppendText(nil)
			pub, err := ParsePublicKeyText(pt)
			if err != nil || !pub.Equal(k.Public()) {
				t.Fatalf("ParsePublicKeyText = %v, %v", pub, err)
			}
			if !pub.Verify(msg, sig) {
				t.Fatalf("parsed public key does not verify")
			}
			pp, err := PublicKeyFromProto(k.Public().Proto())
			if err != nil || !pp.Equal(k.Public()) {
				t.Fatalf("PublicKeyFromProto = %v, %v", pp, err)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i%len(c)] ^= 1
	return c
}

func otherType(t proto.KeyType) proto.KeyType {
	if t == proto.KeyEd25519 {
		return proto.KeyMLDSA44
	}
	return proto.KeyEd25519
}

// TestNoSecretInText: the ways a key can end up in a log or an error
// print its hash, never its seed.
func TestNoSecretInText(t *testing.T) {
	k := testKey(t, proto.KeyEd25519, "secret")
	seedHex := hex.EncodeToString(k.seed[:])
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("key", "k", k)
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("key", "k", k)
	for name, s := range map[string]string{
		"%v": fmt.Sprintf("%v", k), "%+v": fmt.Sprintf("%+v", k), "%#v": fmt.Sprintf("%#v", k),
		//lint:ignore S1025 the test checks what fmt's %s verb prints, not String
		"%s": fmt.Sprintf("%s", k),
		"%x": fmt.Sprintf("%x", k), "slog": logBuf.String(),
	} {
		if strings.Contains(strings.ToLower(s), seedHex[:16]) {
			t.Errorf("%s prints the seed: %s", name, s)
		}
		if name != "%x" && !strings.Contains(s, FormatKeyHash(k.Hash())) {
			t.Errorf("%s = %q, want the key hash in it", name, s)
		}
	}
	// A seed misplaced as a field name or type must not be quoted either.
	for _, text := range []string{
		PrivateKeyHeader + "\n" + seedHex + " x\n",
		PrivateKeyHeader + "\ntype " + seedHex + "\nseed " + seedHex + "\n",
	} {
		if _, err := ParsePrivateKeyText([]byte(text)); err == nil || strings.Contains(err.Error(), seedHex[:16]) {
			t.Errorf("ParsePrivateKeyText(misplaced seed) = %v", err)
		}
	}
	// A bad seed's error must not quote it.
	bad := bytes.Replace(k.AppendSecretText(nil), []byte(seedHex), []byte("zz"+seedHex[2:]), 1)
	if _, err := ParsePrivateKeyText(bad); err == nil || strings.Contains(err.Error(), seedHex[2:18]) {
		t.Errorf("ParsePrivateKeyText(bad hex) = %v", err)
	}
}

// TestEd25519RFC8032 checks Ed25519 against RFC 8032 §7.1 test 2.
func TestEd25519RFC8032(t *testing.T) {
	seed, _ := hex.DecodeString("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
	k, err := NewPrivateKey(proto.KeyEd25519, seed)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(k.Public().Bytes()); got != "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c" {
		t.Fatalf("public key %s", got)
	}
	want := "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
	if got := hex.EncodeToString(k.Sign([]byte{0x72})); got != want {
		t.Fatalf("signature %s", got)
	}
}

// TestGolden pins every key type's derivation and signatures, and the
// batch layout, through one digest per type: a change of circl's signing
// (hedged instead of deterministic, say) or of the layout shows here.
func TestGolden(t *testing.T) {
	want := map[proto.KeyType]string{
		proto.KeyEd25519: "d4dacbba9a15f61a71bdc6a70679bb655abb2951e3e8b10f9c7267fca61eeaab",
		proto.KeyMLDSA44: "1342e3df08b2ce251402d8ac805745f19ed3758460a89f8f335b3b2d4e66c60d",
		proto.KeyMLDSA65: "1391c3f66144a82881b222e277ac3015583c00abfe1e424521146eb23dba13db",
		proto.KeyMLDSA87: "4595707c57f3c9a5d4454993401513c19b691445559e414f0d94ed568ec36680",
	}
	var h1, h2 proto.Hash
	h1[0], h2[31] = 1, 2
	for _, typ := range KeyTypes() {
		seed := bytes.Repeat([]byte{byte(typ)}, SeedSize)
		k, err := NewPrivateKey(typ, seed)
		if err != nil {
			t.Fatal(err)
		}
		s, err := k.SignBatch("golden/chain", proto.MakeHashList(h1, h2))
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.New()
		d.Write(k.Public().Bytes())
		d.Write(s.Signature)
		d.Write(k.SignProof([proto.NonceSize]byte{7}, "golden/chain"))
		if got := hex.EncodeToString(d.Sum(nil)); got != want[typ] {
			t.Errorf("%v: digest %s, want %s", typ, got, want[typ])
		}
	}
}

func TestKeyErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		want error
	}{
		"unknown type":      {err2(NewPrivateKey(9, make([]byte, 32))), ErrUnknownKeyType},
		"type zero":         {err2(GenerateKey(0, nil)), ErrUnknownKeyType},
		"short seed":        {err2(NewPrivateKey(proto.KeyEd25519, make([]byte, 31))), ErrBadKey},
		"secret too short":  {err2(ParsePrivateKey(make([]byte, 32))), ErrBadKey},
		"secret bad type":   {err2(ParsePrivateKey(append([]byte{7}, make([]byte, 32)...))), ErrUnknownKeyType},
		"public wrong size": {err2(NewPublicKey(proto.KeyMLDSA44, make([]byte, 32))), ErrBadKey},
		"public bad type":   {err2(NewPublicKey(0, nil)), ErrUnknownKeyType},
		"failing rand":      {err2(GenerateKey(proto.KeyEd25519, strings.NewReader("short"))), io.ErrUnexpectedEOF},
		"key type name":     {err2(ParseKeyType("rsa")), ErrUnknownKeyType},
		"key hash":          {err2(ParseKeyHash("sha256:1234")), ErrBadKey},
		"key hash not hex":  {err2(ParseKeyHash(strings.Repeat("g", 64))), ErrBadKey},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: error %v, want %v", name, tc.err, tc.want)
		}
	}
	for s, want := range map[string]proto.KeyType{"ed25519": proto.KeyEd25519, "ML-DSA-44": proto.KeyMLDSA44, "mldsa65": proto.KeyMLDSA65, " ml-dsa-87 ": proto.KeyMLDSA87} {
		if got, err := ParseKeyType(s); err != nil || got != want {
			t.Errorf("ParseKeyType(%q) = %v, %v", s, got, err)
		}
	}
	k := testKey(t, proto.KeyEd25519, "hash")
	for _, s := range []string{FormatKeyHash(k.Hash()), strings.ToUpper(FormatKeyHash(k.Hash())), hexHash(k.Hash())} {
		if h, err := ParseKeyHash(s); err != nil || h != k.Hash() {
			t.Errorf("ParseKeyHash(%q) = %x, %v", s, h, err)
		}
	}
}

func err2[T any](_ T, err error) error { return err }

func TestKeyTextErrors(t *testing.T) {
	k := testKey(t, proto.KeyMLDSA44, "text")
	good := string(k.AppendSecretText(nil))
	pub := string(k.Public().AppendText(nil))
	other := testKey(t, proto.KeyMLDSA44, "other")
	cases := map[string]struct {
		text   string
		public bool
		want   error
	}{
		"empty":             {"", false, ErrBadKeyText},
		"public as private": {pub, false, ErrBadKeyText},
		"private as public": {good, true, ErrBadKeyText},
		"no seed":           {dropLine(good, "seed "), false, ErrBadKeyText},
		"no type":           {dropLine(good, "type "), false, ErrBadKeyText},
		"unknown type":      {strings.Replace(good, "type ml-dsa-44", "type ml-dsa-99", 1), false, ErrUnknownKeyType},
		"wrong type":        {strings.Replace(good, "type ml-dsa-44", "type ed25519", 1), false, ErrBadKeyText}, // hash mismatch
		"hash mismatch":     {strings.Replace(good, FormatKeyHash(k.Hash()), FormatKeyHash(other.Hash()), 1), false, ErrBadKeyText},
		"repeated field":    {good + "type ml-dsa-44\n", false, ErrBadKeyText},
		"unknown field":     {good + "comment hello\n", false, ErrBadKeyText},
		"three words":       {good + "type ml-dsa-44 x\n", false, ErrBadKeyText},
		"binary":            {good + "\x00\n", false, ErrBadKeyText},
		"too large":         {good + strings.Repeat("#\n", MaxKeyTextSize), false, ErrBadKeyText},
		"public short key":  {strings.Replace(pub, "key ", "key 00", 1), true, ErrBadKeyText},
		"public not hex":    {strings.Replace(pub, "key ", "key zz", 1)[:len(pub)], true, ErrBadKeyText},
		"public hash":       {strings.Replace(pub, FormatKeyHash(k.Hash()), FormatKeyHash(other.Hash()), 1), true, ErrBadKeyText},
	}
	for name, tc := range cases {
		var err error
		if tc.public {
			_, err = ParsePublicKeyText([]byte(tc.text))
		} else {
			_, err = ParsePrivateKeyText([]byte(tc.text))
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", name, err, tc.want)
		}
	}
	// Accepted variations: CRLF, comments, blank lines, no hash, upper-case hex.
	crlf := strings.ReplaceAll(good, "\n", "\r\n")
	noHash := dropLine(good, "hash ")
	upper := strings.Replace(good, hex.EncodeToString(k.seed[:]), strings.ToUpper(hex.EncodeToString(k.seed[:])), 1)
	for name, s := range map[string]string{"crlf": crlf, "no hash": noHash, "upper hex": upper, "comments": "# hi\n\n" + good + "\n# bye"} {
		if got, err := ParsePrivateKeyText([]byte(s)); err != nil || got.Hash() != k.Hash() {
			t.Errorf("%s: %v, %v", name, got, err)
		}
	}
}

func dropLine(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func hexHash(h proto.Hash) string { return hex.EncodeToString(h[:]) }

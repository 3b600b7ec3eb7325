package kex

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"testing"
)

// refSecrets is a straightforward reference of the key schedule in
// PROTOCOL-handshake.md, written without the package's helpers: it
// re-derives the server's ML-KEM key from the first seed bytes of
// detRand(srvRand), decapsulates the client finish's ciphertext (found at
// byte 4), hashes the transcript as one concatenated byte string, and runs
// HKDF-SHA256 with crypto/hkdf.Key.
func refSecrets(t *testing.T, size KeySize, srvRand string, hello, ack, serverHello, clientFinish []byte) (c2s, s2c [32]byte) {
	t.Helper()
	sch := size.kemScheme()
	seed := make([]byte, sch.SeedSize())
	if _, err := io.ReadFull(detRand(srvRand), seed); err != nil {
		t.Fatal(err)
	}
	_, sk := sch.DeriveKeyPair(seed)
	ss, err := sch.Decapsulate(sk, clientFinish[4:])
	if err != nil {
		t.Fatalf("reference decapsulate: %v", err)
	}
	lp := func(b []byte) []byte { return append(binary.LittleEndian.AppendUint32(nil, uint32(len(b))), b...) }
	var tr []byte
	tr = append(tr, "atedb-kex-v1 transcript"...)
	tr = append(tr, lp(hello)...)
	tr = append(tr, lp(ack)...)
	tr = append(tr, lp(serverHello)...)
	tr = append(tr, lp(clientFinish)...)
	th := sha256.Sum256(tr)
	a, err := hkdf.Key(sha256.New, ss, th[:], "atedb-kex-v1 c2s", 32)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hkdf.Key(sha256.New, ss, th[:], "atedb-kex-v1 s2c", 32)
	if err != nil {
		t.Fatal(err)
	}
	copy(c2s[:], a)
	copy(s2c[:], b)
	return c2s, s2c
}

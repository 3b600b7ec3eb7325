package kex

import (
	"bytes"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"testing"
)

// refSecrets is a straightforward reference of the key schedule in
// docs/PROTOCOL.md §11, written without the package's helpers: it
// re-derives the server's ML-KEM key from the first seed bytes of
// detRand(srvRand), decapsulates the client finish's ciphertext (found at
// byte 4), hashes the transcript as one concatenated byte string, and runs
// HKDF-SHA256 with crypto/hkdf.Key.
func refSecrets(t *testing.T, size KeySize, srvRand string, hello, ack, serverHello, clientFinish []byte) (c2s, s2c [32]byte) {
	t.Helper()
	c2s, s2c, _ = refSchedule(t, size, srvRand, hello, ack, serverHello, clientFinish)
	return c2s, s2c
}

// refSchedule is refSecrets that also returns the ML-KEM shared secret.
func refSchedule(t *testing.T, size KeySize, srvRand string, hello, ack, serverHello, clientFinish []byte) (c2s, s2c [32]byte, ss []byte) {
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
	return c2s, s2c, ss
}

// TestKEMAgainstStdlib cross-checks circl's ML-KEM-768 and -1024 in the
// known-answer vectors with the standard library's crypto/mlkem (an
// independent implementation): the server's key pair derived from the same
// 64-byte seed (d || z) has the same encapsulation key bytes, and it
// decapsulates the recorded client finish to the recorded shared secret.
func TestKEMAgainstStdlib(t *testing.T) {
	b, err := os.ReadFile(katFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs []katVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, v := range vs {
		size := KeySize(v.KeySize)
		if size == KeySize128 {
			continue // crypto/mlkem has no ML-KEM-512
		}
		seed := make([]byte, 64)
		if _, err := io.ReadFull(detRand(v.ServerRand), seed); err != nil {
			t.Fatal(err)
		}
		sh, cf := unhex(t, v.ServerHello), unhex(t, v.ClientFinish)
		pk := sh[serverHelloHeader : serverHelloHeader+size.kemScheme().PublicKeySize()]
		ct := cf[clientFinishHeader:]
		var ekBytes, ss []byte
		if size == KeySize192 {
			dk, err := mlkem.NewDecapsulationKey768(seed)
			if err != nil {
				t.Fatal(err)
			}
			ekBytes = dk.EncapsulationKey().Bytes()
			if ss, err = dk.Decapsulate(ct); err != nil {
				t.Fatal(err)
			}
		} else {
			dk, err := mlkem.NewDecapsulationKey1024(seed)
			if err != nil {
				t.Fatal(err)
			}
			ekBytes = dk.EncapsulationKey().Bytes()
			if ss, err = dk.Decapsulate(ct); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(ekBytes, pk) {
			t.Fatalf("%s: crypto/mlkem derives another encapsulation key from the seed", v.Name)
		}
		if hex.EncodeToString(ss) != v.SharedSecret {
			t.Fatalf("%s: crypto/mlkem decapsulates to %x, want %s", v.Name, ss, v.SharedSecret)
		}
		checked++
	}
	if checked != 6 {
		t.Fatalf("checked %d vectors, want 6", checked)
	}
}

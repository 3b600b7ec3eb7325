package kex

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// transcript is the running SHA-256 of the handshake:
//
//	"atedb-kex-v1 transcript" || lp(hello) || lp(hello-ack) || lp(server hello) || lp(client finish)
//
// where lp(x) = u32 little-endian len(x) || x.
type transcript struct{ h hash.Hash }

func newTranscript(hello, helloAck []byte) *transcript {
	t := &transcript{h: sha256.New()}
	t.h.Write([]byte(labelTranscript))
	t.add(hello)
	t.add(helloAck)
	return t
}

// add hashes one length-prefixed item.
func (t *transcript) add(b []byte) {
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(b)))
	t.h.Write(n[:])
	t.h.Write(b)
}

// sum returns the hash of everything added so far without ending the
// transcript.
func (t *transcript) sum() [secretSize]byte {
	var out [secretSize]byte
	t.h.Sum(out[:0])
	return out
}

// signedMessage returns what the server identity signs: the signature label
// then the transcript hash up to the signed part of the server hello,
//
//	"atedb-kex-v1 server signature" || SHA-256(label || lp(hello) || lp(hello-ack) || lp(server hello TBS))
func signedMessage(hello, helloAck, tbs []byte) []byte {
	t := newTranscript(hello, helloAck)
	t.add(tbs)
	th := t.sum()
	return append([]byte(labelSignature), th[:]...)
}

// deriveTrafficSecrets runs the key schedule:
//
//	PRK     = HKDF-Extract(salt = TH, IKM = shared secret)
//	c2s[0]  = HKDF-Expand(PRK, "atedb-kex-v1 c2s", 32)
//	s2c[0]  = HKDF-Expand(PRK, "atedb-kex-v1 s2c", 32)
//
// It writes the two secrets into c2s and s2c and wipes its intermediate
// values.
func deriveTrafficSecrets(sharedSecret []byte, th [secretSize]byte, c2s, s2c *[secretSize]byte) error {
	prk, err := hkdf.Extract(sha256.New, sharedSecret, th[:])
	if err != nil {
		return err
	}
	defer clear(prk)
	for _, out := range []struct {
		dst   *[secretSize]byte
		label string
	}{{c2s, labelC2S}, {s2c, labelS2C}} {
		b, err := hkdf.Expand(sha256.New, prk, out.label, secretSize)
		if err != nil {
			return err
		}
		copy(out.dst[:], b)
		clear(b)
	}
	return nil
}

// trafficKey returns the AES key of one epoch:
// HKDF-Expand(secret[n], "atedb-kex-v1 key", keyLen). The caller wipes it.
func trafficKey(secret *[secretSize]byte, keyLen int) ([]byte, error) {
	return hkdf.Expand(sha256.New, secret[:], labelKey, keyLen)
}

// ratchetSecret replaces secret[n] by
// secret[n+1] = HKDF-Expand(secret[n], "atedb-kex-v1 ratchet", 32).
func ratchetSecret(secret *[secretSize]byte) error {
	next, err := hkdf.Expand(sha256.New, secret[:], labelRatchet, secretSize)
	if err != nil {
		return err
	}
	copy(secret[:], next)
	clear(next)
	return nil
}

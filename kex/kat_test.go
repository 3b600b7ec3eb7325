package kex

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/atedb/atedb/proto"
)

var update = flag.Bool("update", false, "rewrite testdata/kat.json and testdata/fuzz seeds from the current code")

const katFile = "testdata/kat.json"

// katVector is one known-answer handshake: fixed randomness in, every byte
// on the wire and every derived secret out. All byte fields are hex.
type katVector struct {
	Name          string `json:"name"`
	KeySize       int    `json:"key_size"`
	Identity      string `json:"identity"`
	IdentitySeed  string `json:"identity_seed,omitempty"` // 32 bytes
	Fingerprint   string `json:"fingerprint,omitempty"`
	ServerRand    string `json:"server_rand"` // label of the SHAKE-128 stream (the first 64 bytes seed ML-KEM key generation)
	ClientRand    string `json:"client_rand"` // label of the SHAKE-128 stream (the first 32 bytes seed encapsulation)
	Hello         string `json:"hello"`
	HelloAck      string `json:"hello_ack"`
	ServerHello   string `json:"server_hello"`
	ClientFinish  string `json:"client_finish"`
	ClientConfirm string `json:"client_confirm"`
	ServerConfirm string `json:"server_confirm"`
	SharedSecret  string `json:"shared_secret"`
	Transcript    string `json:"transcript_hash"`
	C2SSecret     string `json:"c2s_secret_0"`
	S2CSecret     string `json:"s2c_secret_0"`
	C2SKey        string `json:"c2s_key_0"`
	S2CKey        string `json:"s2c_key_0"`
	C2SSecret1    string `json:"c2s_secret_1"`
	C2SKey1       string `json:"c2s_key_1"`
	C2SFrame1     string `json:"c2s_frame_1"` // "ping" sealed at counter 1
	S2CFrame1     string `json:"s2c_frame_1"` // "pong" sealed at counter 1
}

// runKAT performs the deterministic handshake of v (its inputs only) and
// fills in every output field.
func runKAT(t *testing.T, in katVector) katVector {
	t.Helper()
	v := in
	var id *Identity
	if v.Identity != "none" {
		alg, err := ParseIdentityAlg(v.Identity)
		if err != nil {
			t.Fatal(err)
		}
		id = mustIdentity(t, alg, unhex(t, v.IdentitySeed))
		v.Fingerprint = id.Fingerprint()
	}
	hello, ack := unhex(t, v.Hello), unhex(t, v.HelloAck)
	size := KeySize(v.KeySize)
	r := mustHandshake(t, hsOpts{size: size, srvHello: hello, srvAck: ack,
		scfg: ServerConfig{Identity: id, Rand: detRand(v.ServerRand)},
		ccfg: ClientConfig{Rand: detRand(v.ClientRand)}})
	s2c, c2s := r.srvEnd.frames(), r.cliEnd.frames()
	v.ServerHello, v.ServerConfirm = hex.EncodeToString(s2c[0]), hex.EncodeToString(s2c[1])
	v.ClientFinish, v.ClientConfirm = hex.EncodeToString(c2s[0]), hex.EncodeToString(c2s[1])
	th := r.cli.TranscriptHash()
	v.Transcript = hex.EncodeToString(th[:])
	// Default limits: no ratchet yet, so the live secrets are epoch 0.
	v.C2SSecret, v.S2CSecret = hex.EncodeToString(r.cli.tx.secret[:]), hex.EncodeToString(r.srv.tx.secret[:])
	key := func(s [secretSize]byte) string {
		k, err := trafficKey(&s, size.aesKeyLen())
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(k)
	}
	v.C2SKey, v.S2CKey = key(r.cli.tx.secret), key(r.srv.tx.secret)
	s1 := r.cli.tx.secret
	if err := ratchetSecret(&s1); err != nil {
		t.Fatal(err)
	}
	v.C2SSecret1, v.C2SKey1 = hex.EncodeToString(s1[:]), key(s1)
	v.C2SFrame1 = hex.EncodeToString(sealFrames(t, r.cli, "ping")[0])
	v.S2CFrame1 = hex.EncodeToString(sealFrames(t, r.srv, "pong")[0])

	// Cross-check the schedule against the plain reference.
	rc, rs, ss := refSchedule(t, size, v.ServerRand, hello, ack, s2c[0], c2s[0])
	if rc != r.cli.tx.secret || rs != r.srv.tx.secret {
		t.Fatalf("%s: secrets differ from the reference schedule", v.Name)
	}
	v.SharedSecret = hex.EncodeToString(ss)
	return v
}

func katInputs() []katVector {
	var out []katVector
	seeds := map[string]string{
		"none":      "",
		"ed25519":   "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
		"ml-dsa-65": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	}
	for _, size := range allSizes {
		for _, idName := range []string{"none", "ed25519", "ml-dsa-65"} {
			name := fmt.Sprintf("%v/%s", size, idName)
			h := proto.Hello{Version: proto.ProtocolVersion, KeySize: proto.KeySize(size), Route: "/db", ChainKey: "kat/" + name}
			a := proto.HelloAck{Version: proto.ProtocolVersion, KeySize: proto.KeySize(size)}
			copy(a.Nonce[:], bytes.Repeat([]byte{0xa5}, proto.NonceSize))
			if idName != "none" {
				h.Features = proto.FeatureServerIdentity
				a.Features = proto.FeatureServerIdentity
			}
			out = append(out, katVector{
				Name: name, KeySize: int(size), Identity: idName, IdentitySeed: seeds[idName],
				ServerRand: "atedb kat server " + name, ClientRand: "atedb kat client " + name,
				Hello:    hex.EncodeToString(encode(&h)),
				HelloAck: hex.EncodeToString(encode(&a)),
			})
		}
	}
	return out
}

// TestKnownAnswers runs every handshake of testdata/kat.json with its fixed
// randomness and compares every message, secret, key and sealed frame.
// Regenerate with: go test ./kex -run TestKnownAnswers -update
func TestKnownAnswers(t *testing.T) {
	if *update {
		var out []katVector
		for _, in := range katInputs() {
			out = append(out, runKAT(t, in))
		}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(katFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(katFile)
	if err != nil {
		t.Fatalf("read %s: %v", katFile, err)
	}
	var want []katVector
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("parse %s: %v", katFile, err)
	}
	if len(want) != 9 {
		t.Fatalf("%s has %d vectors, want 9", katFile, len(want))
	}
	for _, w := range want {
		t.Run(w.Name, func(t *testing.T) {
			got := runKAT(t, katVector{Name: w.Name, KeySize: w.KeySize, Identity: w.Identity, IdentitySeed: w.IdentitySeed,
				ServerRand: w.ServerRand, ClientRand: w.ClientRand, Hello: w.Hello, HelloAck: w.HelloAck})
			if got != w {
				gj, _ := json.MarshalIndent(got, "", "  ")
				t.Fatalf("handshake differs from the known answer; got:\n%s", gj)
			}
		})
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// writeFuzzSeed writes one seed in the go test fuzz v1 format.
func writeFuzzSeed(t *testing.T, target, name string, data []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

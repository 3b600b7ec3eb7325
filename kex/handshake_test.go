package kex

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/atedb/atedb/proto"
)

func TestNegotiate(t *testing.T) {
	tests := map[string]struct {
		client, floor, want KeySize
	}{
		"neither":              {KeySizeNone, KeySizeNone, KeySizeNone},
		"client only":          {KeySize192, KeySizeNone, KeySize192},
		"server only":          {KeySizeNone, KeySize128, KeySize128},
		"client raises floor":  {KeySize256, KeySize128, KeySize256},
		"floor above client":   {KeySize128, KeySize256, KeySize256},
		"equal":                {KeySize192, KeySize192, KeySize192},
		"client cannot lower":  {KeySizeNone, KeySize256, KeySize256},
		"client 128 floor 192": {KeySize128, KeySize192, KeySize192},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Negotiate(tc.client, tc.floor); got != tc.want {
				t.Errorf("Negotiate(%v, %v) = %v, want %v", tc.client, tc.floor, got, tc.want)
			}
			if err := CheckNegotiated(tc.client, Negotiate(tc.client, tc.floor)); err != nil {
				t.Errorf("CheckNegotiated refuses Negotiate's own answer: %v", err)
			}
		})
	}
}

func TestCheckNegotiated(t *testing.T) {
	tests := map[string]struct {
		wanted, got KeySize
		want        error // nil, ErrDowngrade or ErrInvalidKeySize
	}{
		"none asked none got":     {KeySizeNone, KeySizeNone, nil},
		"none asked 128 got":      {KeySizeNone, KeySize128, nil},
		"128 asked 256 got":       {KeySize128, KeySize256, nil},
		"256 asked 256 got":       {KeySize256, KeySize256, nil},
		"128 asked none got":      {KeySize128, KeySizeNone, ErrDowngrade},
		"256 asked none got":      {KeySize256, KeySizeNone, ErrDowngrade},
		"256 asked 128 got":       {KeySize256, KeySize128, ErrDowngrade},
		"192 asked 128 got":       {KeySize192, KeySize128, ErrDowngrade},
		"invalid answer 100":      {KeySize128, KeySize(100), ErrInvalidKeySize},
		"invalid answer 512":      {KeySizeNone, KeySize(512), ErrInvalidKeySize},
		"invalid negative answer": {KeySizeNone, KeySize(-128), ErrInvalidKeySize},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := CheckNegotiated(tc.wanted, tc.got)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CheckNegotiated(%v, %v) = %v, want nil", tc.wanted, tc.got, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("CheckNegotiated(%v, %v) = %v, want %v", tc.wanted, tc.got, err, tc.want)
			}
			var ne *NegotiationError
			if !errors.As(err, &ne) || ne.Wanted != tc.wanted || ne.Negotiated != tc.got {
				t.Fatalf("error %#v does not carry wanted %v and negotiated %v", err, tc.wanted, tc.got)
			}
		})
	}
}

func TestParseKeySize(t *testing.T) {
	good := map[string]KeySize{"128": KeySize128, "192": KeySize192, " 256 ": KeySize256, "0": KeySizeNone, "none": KeySizeNone, "OFF": KeySizeNone}
	for in, want := range good {
		got, err := ParseKeySize(in)
		if err != nil || got != want {
			t.Errorf("ParseKeySize(%q) = %v, %v; want %v", in, got, err, want)
		}
		if want != KeySizeNone && got.String() != fmt.Sprint(int(want)) {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
	for _, in := range []string{"", "64", "512", "128bit", "-128"} {
		if _, err := ParseKeySize(in); !errors.Is(err, ErrInvalidKeySize) {
			t.Errorf("ParseKeySize(%q) error = %v, want ErrInvalidKeySize", in, err)
		}
	}
	if got := KeySize(100).String(); got != "KeySize(100)" {
		t.Errorf("KeySize(100).String() = %q", got)
	}
}

// TestHandshakeAllSizes: both sides derive the same keys for every size and
// identity algorithm, and sealed frames flow both ways.
func TestHandshakeAllSizes(t *testing.T) {
	for _, size := range allSizes {
		for _, alg := range allAlgs {
			t.Run(fmt.Sprintf("size=%v/identity=%v", size, alg), func(t *testing.T) {
				id := testIdentity(t, alg, "all sizes")
				r := mustHandshake(t, hsOpts{size: size, scfg: ServerConfig{Identity: id}})
				if r.srv.TranscriptHash() != r.cli.TranscriptHash() {
					t.Fatalf("transcript hashes differ")
				}
				if r.srv.tx.secret != r.cli.rx.secret || r.cli.tx.secret != r.srv.rx.secret {
					t.Fatalf("traffic secrets differ between the two sides")
				}
				if r.srv.tx.secret == r.srv.rx.secret {
					t.Fatalf("both directions have the same traffic secret")
				}
				if got := r.srv.tx.keyLen; got != size.aesKeyLen() {
					t.Fatalf("AES key length %d, want %d", got, size.aesKeyLen())
				}
				if r.srv.KeySize() != size || r.cli.KeySize() != size {
					t.Fatalf("KeySize() = %v/%v, want %v", r.srv.KeySize(), r.cli.KeySize(), size)
				}
				wantFP := ""
				if id != nil {
					wantFP = id.Fingerprint()
				}
				if got := r.cli.PeerFingerprint(); got != wantFP {
					t.Fatalf("client PeerFingerprint() = %q, want %q", got, wantFP)
				}
				if got := r.srv.PeerFingerprint(); got != "" {
					t.Fatalf("server PeerFingerprint() = %q, want empty", got)
				}
				exchange(t, r, 5)
			})
		}
	}
}

// exchange sends n frames each way over the sessions' Conns and checks them.
func exchange(t *testing.T, r hsResult, n int) {
	t.Helper()
	cc := r.cli.Conn(r.cliEnd)
	sc := r.srv.Conn(r.srvEnd)
	for i := range n {
		msg := bytes.Repeat([]byte{byte(i)}, i*100)
		if err := cc.WriteFrame(msg); err != nil {
			t.Fatalf("client WriteFrame %d: %v", i, err)
		}
		if err := cc.Flush(); err != nil {
			t.Fatalf("client Flush: %v", err)
		}
		got, err := sc.ReadFrame()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("server ReadFrame %d = %d bytes, %v; want %d bytes", i, len(got), err, len(msg))
		}
		reply := append([]byte("re: "), msg...)
		if err := sc.WriteFrame(reply); err != nil {
			t.Fatalf("server WriteFrame %d: %v", i, err)
		}
		if err := sc.Flush(); err != nil {
			t.Fatalf("server Flush: %v", err)
		}
		got, err = cc.ReadFrame()
		if err != nil || !bytes.Equal(got, reply) {
			t.Fatalf("client ReadFrame %d = %d bytes, %v; want %d bytes", i, len(got), err, len(reply))
		}
	}
}

// TestHandshakeFreshKEMKey: with real randomness every connection gets a new
// ML-KEM key pair and a new session key (forward secrecy), and with the
// same deterministic randomness the whole exchange repeats exactly.
func TestHandshakeFreshKEMKey(t *testing.T) {
	a := mustHandshake(t, hsOpts{size: KeySize192})
	b := mustHandshake(t, hsOpts{size: KeySize192})
	if bytes.Equal(a.srvEnd.frames()[0], b.srvEnd.frames()[0]) {
		t.Fatalf("two connections sent the same server hello (same KEM key)")
	}
	if a.srv.TranscriptHash() == b.srv.TranscriptHash() || a.srv.tx.secret == b.srv.tx.secret {
		t.Fatalf("two connections derived the same transcript or keys")
	}
	det := func() hsResult {
		return mustHandshake(t, hsOpts{size: KeySize192,
			scfg: ServerConfig{Rand: detRand("srv")}, ccfg: ClientConfig{Rand: detRand("cli")}})
	}
	c, d := det(), det()
	if c.srv.tx.secret != d.srv.tx.secret {
		t.Fatalf("same randomness gave different keys")
	}
}

func TestHandshakeInvalidSize(t *testing.T) {
	cli, srv := memPipe(nil, nil)
	hello, ack := hellos(KeySize128)
	for _, size := range []KeySize{KeySizeNone, 100, 512, -1} {
		if _, err := ServerHandshake(srv, hello, ack, size, ServerConfig{}); !errors.Is(err, ErrInvalidKeySize) {
			t.Errorf("ServerHandshake(size %v) error = %v, want ErrInvalidKeySize", size, err)
		}
		if _, err := ClientHandshake(cli, hello, ack, size, ClientConfig{}); !errors.Is(err, ErrInvalidKeySize) {
			t.Errorf("ClientHandshake(size %v) error = %v, want ErrInvalidKeySize", size, err)
		}
	}
	if len(cli.pending)+len(srv.pending) != 0 {
		t.Fatalf("a refused handshake wrote frames")
	}
}

func TestHandshakeRandFailure(t *testing.T) {
	boom := errors.New("entropy pool on fire")
	r := runHandshake(t, hsOpts{size: KeySize128, scfg: ServerConfig{Rand: failingReader{boom}}})
	if !errors.Is(r.srvErr, boom) {
		t.Errorf("server error = %v, want the randomness error", r.srvErr)
	}
	if r.cliErr == nil {
		t.Errorf("client succeeded against a server that failed")
	}
	r = runHandshake(t, hsOpts{size: KeySize128, ccfg: ClientConfig{Rand: failingReader{boom}}})
	if !errors.Is(r.cliErr, boom) {
		t.Errorf("client error = %v, want the randomness error", r.cliErr)
	}
	if r.srvErr == nil {
		t.Errorf("server succeeded against a client that failed")
	}
}

// TestHandshakeChangedHello: a man in the middle who changes any field of
// the hello or the hello-ack (for instance to lower the key size the client
// asked for) makes both sides fail, with or without a server identity.
func TestHandshakeChangedHello(t *testing.T) {
	const size = KeySize192
	type change func(h *proto.Hello, a *proto.HelloAck)
	cases := map[string]change{
		"hello wanted size lowered": func(h *proto.Hello, a *proto.HelloAck) { h.KeySize = 128 },
		"hello wanted size none":    func(h *proto.Hello, a *proto.HelloAck) { h.KeySize = 0 },
		"hello chain key":           func(h *proto.Hello, a *proto.HelloAck) { h.ChainKey += "x" },
		"hello route":               func(h *proto.Hello, a *proto.HelloAck) { h.Route = "/auth" },
		"hello features":            func(h *proto.Hello, a *proto.HelloAck) { h.Features |= proto.FeatureServerIdentity },
		"ack nonce":                 func(h *proto.Hello, a *proto.HelloAck) { a.Nonce[31] ^= 1 },
		"ack features":              func(h *proto.Hello, a *proto.HelloAck) { a.Features = 1 << 9 },
		"hello and ack":             func(h *proto.Hello, a *proto.HelloAck) { h.ChainKey = "other"; a.Nonce[0] ^= 1 },
	}
	for name, ch := range cases {
		for _, alg := range []IdentityAlg{IdentityNone, IdentityEd25519, IdentityMLDSA65} {
			t.Run(fmt.Sprintf("%s/identity=%v", name, alg), func(t *testing.T) {
				h, a := helloMsgs(size, size)
				ch(&h, &a) // the server's view; the client keeps the original
				o := hsOpts{size: size, srvHello: encode(&h), srvAck: encode(&a)}
				o.cliHello, o.cliAck = hellos(size)
				o.scfg.Identity = testIdentity(t, alg, "changed hello")
				r := runHandshake(t, o)
				if r.srvErr == nil || r.cliErr == nil {
					t.Fatalf("server error %v, client error %v; want both to fail", r.srvErr, r.cliErr)
				}
				if alg != IdentityNone {
					if !errors.Is(r.cliErr, ErrBadSignature) {
						t.Fatalf("client error = %v, want ErrBadSignature", r.cliErr)
					}
				} else if !errors.Is(r.srvErr, ErrKeyConfirmation) {
					t.Fatalf("server error = %v, want ErrKeyConfirmation", r.srvErr)
				}
			})
		}
	}
}

// TestHandshakeHelloChecks: the hello and hello-ack bodies must decode and
// agree with the size the handshake runs with, on both sides.
func TestHandshakeHelloChecks(t *testing.T) {
	good, goodAck := hellos(KeySize256)
	h, a := helloMsgs(KeySize256, KeySize128) // ack below what the hello asked
	downHello, downAck := encode(&h), encode(&a)
	h, a = helloMsgs(KeySize128, KeySize128)
	a.Code, a.Reason = proto.CodeInternal, "refused"
	refusedAck := encode(&a)
	tests := map[string]struct {
		hello, ack []byte
		size       KeySize
		want       error
	}{
		"hello cut":             {good[:len(good)-1], goodAck, KeySize256, proto.ErrTruncated},
		"ack empty":             {good, []byte{}, KeySize256, proto.ErrTruncated},
		"hello is an ack":       {goodAck, goodAck, KeySize256, proto.ErrInvalid},
		"size differs from ack": {good, goodAck, KeySize192, ErrKeySizeMismatch},
		"downgraded ack":        {downHello, downAck, KeySize128, ErrDowngrade},
		"refusing ack":          {good, refusedAck, KeySize128, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cli, srv := memPipe(nil, nil)
			_, serr := ServerHandshake(srv, tc.hello, tc.ack, tc.size, ServerConfig{})
			_, cerr := ClientHandshake(cli, tc.hello, tc.ack, tc.size, ClientConfig{})
			for side, err := range map[string]error{"server": serr, "client": cerr} {
				var he *HandshakeError
				if !errors.As(err, &he) || he.Step != "check hello" {
					t.Fatalf("%s error = %v, want a HandshakeError at step check hello", side, err)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Fatalf("%s error = %v, want %v", side, err, tc.want)
				}
			}
			if len(cli.pending)+len(srv.pending) != 0 {
				t.Fatalf("a refused handshake wrote frames")
			}
		})
	}
}

// TestHandshakeSizeMismatch: a hello-ack rewritten to show the client a
// smaller size than the server negotiated fails at the server hello.
func TestHandshakeSizeMismatch(t *testing.T) {
	o := hsOpts{size: KeySize256, cliSize: KeySize128}
	o.cliHello, o.cliAck = hellos(KeySize128)
	r := runHandshake(t, o)
	var me *MessageError
	if !errors.Is(r.cliErr, ErrKeySizeMismatch) || !errors.As(r.cliErr, &me) || me.Field != "key size" || me.Offset != 2 {
		t.Fatalf("client error = %v, want ErrKeySizeMismatch in field key size at byte 2", r.cliErr)
	}
	if r.srvErr == nil {
		t.Fatalf("server succeeded")
	}
}

// TestHandshakeTamperedMessages flips bytes across every handshake message
// (header, lengths, keys, signature, ciphertext, confirmation frames): the
// client always fails, and the server fails unless only its own final
// confirmation was hit (which it cannot see).
func TestHandshakeTamperedMessages(t *testing.T) {
	type target struct {
		name      string
		c2s       bool
		index     int
		serverSee bool // server must fail too
	}
	targets := []target{
		{"server hello", false, 0, true},
		{"client finish", true, 0, true},
		{"client confirm", true, 1, true},
		{"server confirm", false, 1, false},
	}
	for _, alg := range []IdentityAlg{IdentityNone, IdentityEd25519} {
		id := testIdentity(t, alg, "tamper")
		clean := mustHandshake(t, hsOpts{size: KeySize128, scfg: ServerConfig{Identity: id, Rand: detRand("s")}, ccfg: ClientConfig{Rand: detRand("c")}})
		lens := map[string]int{
			"server hello": len(clean.srvEnd.frames()[0]), "server confirm": len(clean.srvEnd.frames()[1]),
			"client finish": len(clean.cliEnd.frames()[0]), "client confirm": len(clean.cliEnd.frames()[1]),
		}
		for _, tg := range targets {
			n := lens[tg.name]
			var positions []int
			for p := 0; p < n; p++ {
				if p < 12 || p >= n-4 || p%61 == 0 || (tg.name == "server hello" && p >= 806 && p < 815) {
					positions = append(positions, p)
				}
			}
			for _, pos := range positions {
				name := fmt.Sprintf("identity=%v/%s/byte=%d", alg, tg.name, pos)
				hook := func(i int, b []byte) [][]byte {
					if i == tg.index {
						b[pos] ^= 0x04
					}
					return [][]byte{b}
				}
				o := hsOpts{size: KeySize128, scfg: ServerConfig{Identity: id}}
				if tg.c2s {
					o.c2s = hook
				} else {
					o.s2c = hook
				}
				r := runHandshake(t, o)
				if r.cliErr == nil {
					t.Errorf("%s: client accepted a tampered handshake", name)
				}
				if tg.serverSee && r.srvErr == nil {
					t.Errorf("%s: server accepted a tampered handshake", name)
				}
			}
		}
	}
}

// TestHandshakeMalformed checks the typed errors for cut, extended and
// mislabelled handshake messages.
func TestHandshakeMalformed(t *testing.T) {
	cut := func(n int) frameHook {
		return func(i int, b []byte) [][]byte {
			if i == 0 {
				return [][]byte{b[:min(n, len(b))]}
			}
			return [][]byte{b}
		}
	}
	set := func(pos int, v byte) frameHook {
		return func(i int, b []byte) [][]byte {
			if i == 0 {
				b[pos] = v
			}
			return [][]byte{b}
		}
	}
	extend := func(i int, b []byte) [][]byte {
		if i == 0 {
			return [][]byte{append(b, 0)}
		}
		return [][]byte{b}
	}
	// ML-KEM-512 server hello without identity: 6 + 800 + 3 + 2 = 811 bytes.
	tests := map[string]struct {
		c2s, s2c  frameHook
		side      string // which side reports the MessageError
		sentinel  error
		field     string
		offset    int
		identity  bool
		sameCause bool
	}{
		"server hello empty":         {s2c: cut(0), side: "client", sentinel: ErrMalformed, field: "header", offset: 0},
		"server hello header cut":    {s2c: cut(5), side: "client", sentinel: ErrMalformed, field: "header", offset: 0},
		"server hello kem key cut":   {s2c: cut(500), side: "client", sentinel: ErrMalformed, field: "kem public key", offset: 6},
		"server hello identity cut":  {s2c: cut(807), side: "client", sentinel: ErrMalformed, field: "kem public key", offset: 6},
		"server hello signature cut": {s2c: cut(810), side: "client", sentinel: ErrMalformed, field: "identity key", offset: 809},
		"server hello extended":      {s2c: extend, side: "client", sentinel: ErrMalformed, field: "signature", offset: 811},
		"server hello type":          {s2c: set(0, msgClientFinish), side: "client", sentinel: ErrMalformed, field: "type", offset: 0},
		"server hello version":       {s2c: set(1, 2), side: "client", sentinel: ErrUnsupportedVersion, field: "version", offset: 1},
		"server hello key size":      {s2c: set(3, 1), side: "client", sentinel: ErrKeySizeMismatch, field: "key size", offset: 2},
		"server hello kem length":    {s2c: set(4, 0), side: "client", sentinel: ErrMalformed, field: "kem public key length", offset: 4},
		"server hello unknown alg":   {s2c: set(806, 9), side: "client", sentinel: ErrMalformed, field: "identity algorithm", offset: 806},
		"server hello alg, no key":   {s2c: set(806, byte(IdentityEd25519)), side: "client", sentinel: ErrMalformed, field: "identity key length", offset: 807},
		"server hello sig length":    {s2c: set(809, 1), side: "client", sentinel: ErrMalformed, field: "signature length", offset: 809},
		"server hello dropped alg":   {s2c: set(806, byte(IdentityNone)), identity: true, side: "client", sentinel: ErrMalformed, field: "identity key length", offset: 807},
		"client finish empty":        {c2s: cut(0), side: "server", sentinel: ErrMalformed, field: "header", offset: 0},
		"client finish cut":          {c2s: cut(700), side: "server", sentinel: ErrMalformed, field: "ciphertext", offset: 4},
		"client finish extended":     {c2s: extend, side: "server", sentinel: ErrMalformed, field: "ciphertext", offset: 4},
		"client finish type":         {c2s: set(0, msgServerHello), side: "server", sentinel: ErrMalformed, field: "type", offset: 0},
		"client finish version":      {c2s: set(1, 0), side: "server", sentinel: ErrUnsupportedVersion, field: "version", offset: 1},
		"client finish length":       {c2s: set(3, 0), side: "server", sentinel: ErrMalformed, field: "ciphertext length", offset: 2},
		"client finish max length":   {c2s: func(i int, b []byte) [][]byte { b[2], b[3] = 0xff, 0xff; return [][]byte{b} }, side: "server", sentinel: ErrMalformed, field: "ciphertext length", offset: 2},
		"server hello kem key out of range": {s2c: func(i int, b []byte) [][]byte {
			if i == 0 { // first 12-bit coefficient = 4095 >= q (FIPS 203 input check)
				b[serverHelloHeader] = 0xff
				b[serverHelloHeader+1] |= 0x0f
			}
			return [][]byte{b}
		}, side: "client", sentinel: ErrMalformed, field: "kem public key", offset: 6},
		"server hello max kem length": {s2c: func(i int, b []byte) [][]byte { b[4], b[5] = 0xff, 0xff; return [][]byte{b} }, side: "client", sentinel: ErrMalformed, field: "kem public key length", offset: 4},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := hsOpts{size: KeySize128, c2s: tc.c2s, s2c: tc.s2c}
			if tc.identity {
				o.scfg.Identity = testIdentity(t, IdentityEd25519, "malformed")
			}
			r := runHandshake(t, o)
			err := r.cliErr
			if tc.side == "server" {
				err = r.srvErr
			}
			var me *MessageError
			if !errors.As(err, &me) {
				t.Fatalf("%s error = %v, want a MessageError", tc.side, err)
			}
			if !errors.Is(err, tc.sentinel) || me.Field != tc.field || me.Offset != tc.offset {
				t.Fatalf("%s error = %v (field %q offset %d), want %v in field %q at %d", tc.side, err, me.Field, me.Offset, tc.sentinel, tc.field, tc.offset)
			}
			var he *HandshakeError
			if !errors.As(err, &he) || he.Side != tc.side {
				t.Fatalf("error %v is not a HandshakeError from the %s", err, tc.side)
			}
			if r.srvErr == nil || r.cliErr == nil {
				t.Fatalf("one side succeeded: server %v, client %v", r.srvErr, r.cliErr)
			}
		})
	}
}

// TestHandshakeEarlyEOF: a peer that disappears at any step gives an error
// wrapping io.EOF, never a session.
func TestHandshakeEarlyEOF(t *testing.T) {
	for stop := 0; stop < 2; stop++ {
		for _, c2s := range []bool{true, false} {
			t.Run(fmt.Sprintf("c2s=%v/after=%d", c2s, stop), func(t *testing.T) {
				hello, ack := hellos(KeySize128)
				cliEnd, srvEnd := memPipe(nil, nil)
				if c2s {
					cliEnd.cutAt = stop
				} else {
					srvEnd.cutAt = stop
				}
				var srvErr error
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, srvErr = ServerHandshake(srvEnd, hello, ack, KeySize128, ServerConfig{})
					srvEnd.Close()
				}()
				_, cliErr := ClientHandshake(cliEnd, hello, ack, KeySize128, ClientConfig{})
				cliEnd.Close()
				<-done
				victim := srvErr
				if !c2s {
					victim = cliErr
				}
				if !errors.Is(victim, io.EOF) {
					t.Fatalf("error = %v, want io.EOF (server %v, client %v)", victim, srvErr, cliErr)
				}
			})
		}
	}
}

// TestPinnedFingerprint: a pinned client accepts only the server with that
// identity.
func TestPinnedFingerprint(t *testing.T) {
	id := testIdentity(t, IdentityMLDSA44, "pinned")
	other := testIdentity(t, IdentityMLDSA44, "impostor")
	raw, err := ParseFingerprint(id.Fingerprint())
	if err != nil {
		t.Fatalf("ParseFingerprint(%q): %v", id.Fingerprint(), err)
	}
	tests := map[string]struct {
		srv  *Identity
		pin  []byte
		want error
	}{
		"raw pin":            {id, raw, nil},
		"text pin":           {id, []byte(id.Fingerprint()), nil},
		"bare hex pin":       {id, []byte(id.Fingerprint()[len("sha256:"):]), nil},
		"other server":       {other, raw, ErrFingerprintMismatch},
		"no identity":        {nil, raw, ErrIdentityRequired},
		"malformed pin":      {id, []byte("sha256:1234"), ErrBadIdentityKey},
		"flipped pin":        {id, flip(raw, 31), ErrFingerprintMismatch},
		"same seed, ed25519": {mustIdentity(t, IdentityEd25519, id.Key().SecretBinary()[1:]), raw, ErrFingerprintMismatch},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := runHandshake(t, hsOpts{size: KeySize128, scfg: ServerConfig{Identity: tc.srv}, ccfg: ClientConfig{PinnedFingerprint: tc.pin}})
			if tc.want == nil {
				if r.cliErr != nil || r.srvErr != nil {
					t.Fatalf("pinned handshake failed: client %v, server %v", r.cliErr, r.srvErr)
				}
				if r.cli.PeerFingerprint() != id.Fingerprint() {
					t.Fatalf("PeerFingerprint() = %q, want %q", r.cli.PeerFingerprint(), id.Fingerprint())
				}
				return
			}
			if !errors.Is(r.cliErr, tc.want) {
				t.Fatalf("client error = %v, want %v", r.cliErr, tc.want)
			}
			if r.srvErr == nil {
				t.Fatalf("server succeeded with a client that refused it")
			}
		})
	}
}

// TestIdentityRequiredByHello: a client whose hello carries
// FeatureServerIdentity refuses an unsigned server hello even without a
// pin; a server whose hello-ack grants it needs an identity.
func TestIdentityRequiredByHello(t *testing.T) {
	h, a := helloMsgs(KeySize128, KeySize128)
	h.Features = proto.FeatureServerIdentity
	hello, ack := encode(&h), encode(&a)
	r := runHandshake(t, hsOpts{size: KeySize128, srvHello: hello, srvAck: ack})
	if !errors.Is(r.cliErr, ErrIdentityRequired) {
		t.Fatalf("client error = %v, want ErrIdentityRequired", r.cliErr)
	}
	id := testIdentity(t, IdentityEd25519, "required")
	mustHandshake(t, hsOpts{size: KeySize128, srvHello: hello, srvAck: ack, scfg: ServerConfig{Identity: id}})

	a.Features = proto.FeatureServerIdentity
	grant := encode(&a)
	_, err := ServerHandshake(&recordConn{}, hello, grant, KeySize128, ServerConfig{})
	if !errors.Is(err, ErrIdentityRequired) {
		t.Fatalf("server without identity granting it: %v, want ErrIdentityRequired", err)
	}
	mustHandshake(t, hsOpts{size: KeySize128, srvHello: hello, srvAck: grant, scfg: ServerConfig{Identity: id}})
}

// TestIdentitySubstitution: a man in the middle who keeps the pinned
// server's identity key and signature but substitutes his own KEM key is
// caught by the signature.
func TestIdentitySubstitution(t *testing.T) {
	id := testIdentity(t, IdentityEd25519, "victim")
	mitmKEM, _ := KeySize128.kemScheme().DeriveKeyPair(make([]byte, 64))
	mitmPK, _ := mitmKEM.MarshalBinary()
	hook := func(i int, b []byte) [][]byte {
		if i == 0 {
			copy(b[serverHelloHeader:], mitmPK)
		}
		return [][]byte{b}
	}
	r := runHandshake(t, hsOpts{size: KeySize128, scfg: ServerConfig{Identity: id}, ccfg: ClientConfig{PinnedFingerprint: []byte(id.Fingerprint())}, s2c: hook})
	if !errors.Is(r.cliErr, ErrBadSignature) {
		t.Fatalf("client error = %v, want ErrBadSignature", r.cliErr)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}

func mustIdentity(t *testing.T, alg IdentityAlg, seed []byte) *Identity {
	t.Helper()
	id, err := NewIdentity(alg, seed)
	if err != nil {
		t.Fatalf("NewIdentity(%v): %v", alg, err)
	}
	return id
}

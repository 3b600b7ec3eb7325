package kex

import (
	"crypto/sha3"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/proto"
)

// detRand returns a deterministic randomness source: the SHAKE-128 stream
// of label. Known-answer tests use it for key generation and encapsulation.
func detRand(label string) io.Reader {
	h := sha3.NewSHAKE128()
	h.Write([]byte(label))
	return h
}

// failingReader returns err on every read.
type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

// frameHook may change, drop (return nil) or multiply the i-th frame (from
// 0) flushed in one direction of a memPipe.
type frameHook func(i int, body []byte) [][]byte

// memConn is one end of an in-memory frame pipe: WriteFrame queues a copy,
// Flush delivers the queue (through the hook) to the peer, ReadFrame takes
// the next delivered frame. Close makes the peer's reads return io.EOF once
// they have drained what was delivered.
type memConn struct {
	in      <-chan []byte
	out     chan<- []byte
	hook    frameHook
	sent    int
	pending [][]byte
	once    sync.Once
	timeout time.Duration
	cutAt   int // when >= 0, Flush closes the pipe instead of delivering frame cutAt

	mu  sync.Mutex
	log [][]byte // copies of every frame delivered to the peer, after the hook
}

// memPipe returns the two ends (client, server) of an in-memory frame pipe.
// c2s and s2c may be nil.
func memPipe(c2s, s2c frameHook) (*memConn, *memConn) {
	a := make(chan []byte, 64)
	b := make(chan []byte, 64)
	cli := &memConn{in: b, out: a, hook: c2s, timeout: 20 * time.Second, cutAt: -1}
	srv := &memConn{in: a, out: b, hook: s2c, timeout: 20 * time.Second, cutAt: -1}
	return cli, srv
}

var errPipeTimeout = errors.New("memConn: read timed out")

func (c *memConn) ReadFrame() ([]byte, error) {
	select {
	case f, ok := <-c.in:
		if !ok {
			return nil, io.EOF
		}
		return f, nil
	case <-time.After(c.timeout):
		return nil, errPipeTimeout
	}
}

func (c *memConn) WriteFrame(body []byte) error {
	c.pending = append(c.pending, append([]byte(nil), body...))
	return nil
}

func (c *memConn) Flush() error {
	for _, f := range c.pending {
		if c.cutAt >= 0 && c.sent >= c.cutAt {
			c.Close()
			break
		}
		out := [][]byte{f}
		if c.hook != nil {
			out = c.hook(c.sent, f)
		}
		c.sent++
		for _, g := range out {
			c.mu.Lock()
			c.log = append(c.log, append([]byte(nil), g...))
			c.mu.Unlock()
			c.out <- g
		}
	}
	c.pending = c.pending[:0]
	return nil
}

// Close ends the direction this end writes.
func (c *memConn) Close() { c.once.Do(func() { close(c.out) }) }

// frames returns copies of the frames this end delivered.
func (c *memConn) frames() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.log...)
}

// helloMsgs returns a proto Hello and HelloAck for the test chain, the
// client wanting wanted and the server answering negotiated.
func helloMsgs(wanted, negotiated KeySize) (proto.Hello, proto.HelloAck) {
	h := proto.Hello{Version: proto.ProtocolVersion, KeySize: proto.KeySize(wanted), Route: "/db", ChainKey: "kex/test/chain"}
	a := proto.HelloAck{Version: proto.ProtocolVersion, KeySize: proto.KeySize(negotiated)}
	for i := range a.Nonce {
		a.Nonce[i] = byte(i * 7)
	}
	return h, a
}

// encode returns the frame body of a proto message.
func encode(m interface{ AppendBinary([]byte) ([]byte, error) }) []byte {
	b, err := m.AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	return b
}

// hellos returns encoded hello and hello-ack bodies for a connection that
// negotiated size (the client wanting as much).
func hellos(size KeySize) (hello, ack []byte) {
	h, a := helloMsgs(size, size)
	return encode(&h), encode(&a)
}

// hsResult is the outcome of both sides of one handshake.
type hsResult struct {
	srv, cli       *Session
	srvErr, cliErr error
	srvEnd, cliEnd *memConn
}

// hsOpts describe one handshake run.
type hsOpts struct {
	size             KeySize
	cliSize          KeySize // when not zero, the client's size differs
	scfg             ServerConfig
	ccfg             ClientConfig
	srvHello, srvAck []byte // server's view; default testHello/testHelloAck
	cliHello, cliAck []byte // client's view; default the server's
	c2s, s2c         frameHook
}

// runHandshake runs ServerHandshake and ClientHandshake against each other
// over a memPipe. Each side closes its end when it returns, so a failure on
// one side ends the other with io.EOF instead of a hang.
func runHandshake(t testing.TB, o hsOpts) hsResult {
	t.Helper()
	defHello, defAck := hellos(o.size)
	if o.srvHello == nil {
		o.srvHello = defHello
	}
	if o.srvAck == nil {
		o.srvAck = defAck
	}
	if o.cliHello == nil {
		o.cliHello = o.srvHello
	}
	if o.cliAck == nil {
		o.cliAck = o.srvAck
	}
	cliSize := o.size
	if o.cliSize != 0 {
		cliSize = o.cliSize
	}
	cliEnd, srvEnd := memPipe(o.c2s, o.s2c)
	var r hsResult
	r.srvEnd, r.cliEnd = srvEnd, cliEnd
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.srv, r.srvErr = ServerHandshake(srvEnd, o.srvHello, o.srvAck, o.size, o.scfg)
		if r.srvErr != nil {
			srvEnd.Close()
		}
	}()
	r.cli, r.cliErr = ClientHandshake(cliEnd, o.cliHello, o.cliAck, cliSize, o.ccfg)
	if r.cliErr != nil {
		cliEnd.Close()
	}
	<-done
	return r
}

// mustHandshake runs a handshake that must succeed.
func mustHandshake(t testing.TB, o hsOpts) hsResult {
	t.Helper()
	r := runHandshake(t, o)
	if r.srvErr != nil || r.cliErr != nil {
		t.Fatalf("handshake %v: server error %v, client error %v", o.size, r.srvErr, r.cliErr)
	}
	return r
}

var allSizes = []KeySize{KeySize128, KeySize192, KeySize256}

var allAlgs = []IdentityAlg{IdentityNone, IdentityEd25519, IdentityMLDSA44, IdentityMLDSA65, IdentityMLDSA87}

// testIdentity returns a deterministic identity for alg (nil for none).
func testIdentity(t testing.TB, alg IdentityAlg, label string) *Identity {
	t.Helper()
	if alg == IdentityNone {
		return nil
	}
	id, err := GenerateIdentity(alg, detRand("identity "+label))
	if err != nil {
		t.Fatalf("GenerateIdentity(%v): %v", alg, err)
	}
	return id
}

package kex_test

import (
	"fmt"
	"net"

	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// A complete connection start over an in-memory socket: plain hello and
// hello-ack, the key exchange, then a sealed request and reply.
func Example() {
	clientSide, serverSide := net.Pipe()
	defer clientSide.Close()
	defer serverSide.Close()
	id, err := kex.NewIdentity(kex.IdentityEd25519, make([]byte, kex.IdentitySeedSize)) // use GenerateIdentity in real life
	if err != nil {
		panic(err)
	}

	go func() { // the server
		fc := proto.NewStream(serverSide, 0)
		helloBody, err := fc.ReadFrame()
		if err != nil {
			panic(err)
		}
		helloBody = append([]byte(nil), helloBody...) // valid only until the next read
		var hello proto.Hello
		if err := hello.Decode(helloBody); err != nil {
			panic(err)
		}
		size := kex.Negotiate(kex.KeySize(hello.KeySize), kex.KeySize128)
		ack := proto.HelloAck{Version: proto.ProtocolVersion, KeySize: proto.KeySize(size)}
		ackBody, _ := ack.AppendBinary(nil)
		if err := fc.WriteFrame(ackBody); err != nil {
			panic(err)
		}
		s, err := kex.ServerHandshake(fc, helloBody, ackBody, size, kex.ServerConfig{Identity: id})
		if err != nil {
			panic(err)
		}
		defer s.Close()
		sc := s.Conn(fc)
		req, err := sc.ReadFrame()
		if err != nil {
			panic(err)
		}
		sc.WriteFrame(append([]byte("echo: "), req...))
		sc.Flush()
	}()

	// The client wants 192 bits and pins the server's fingerprint.
	fc := proto.NewStream(clientSide, 0)
	hello := proto.Hello{Version: proto.ProtocolVersion, KeySize: 192, Route: "/db", ChainKey: "example"}
	helloBody, _ := hello.AppendBinary(nil)
	fc.WriteFrame(helloBody)
	fc.Flush()
	ackBody, err := fc.ReadFrame()
	if err != nil {
		panic(err)
	}
	ackBody = append([]byte(nil), ackBody...)
	var ack proto.HelloAck
	if err := ack.Decode(ackBody); err != nil {
		panic(err)
	}
	if err := kex.CheckNegotiated(kex.KeySize(hello.KeySize), kex.KeySize(ack.KeySize)); err != nil {
		panic(err)
	}
	s, err := kex.ClientHandshake(fc, helloBody, ackBody, kex.KeySize(ack.KeySize), kex.ClientConfig{
		PinnedFingerprint: []byte(id.Fingerprint()),
	})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	cc := s.Conn(fc)
	cc.WriteFrame([]byte("hello, sealed"))
	cc.Flush()
	reply, err := cc.ReadFrame()
	if err != nil {
		panic(err)
	}
	fmt.Println("negotiated", s.KeySize(), "bits; server", s.PeerFingerprint() == id.Fingerprint())
	fmt.Printf("%s\n", reply)
	// Output:
	// negotiated 192 bits; server true
	// echo: hello, sealed
}

// Fingerprint is what a server prints at start and what a client pins.
func ExampleFingerprint() {
	seed := make([]byte, kex.IdentitySeedSize) // all zero: an example, never a real key
	id, err := kex.NewIdentity(kex.IdentityEd25519, seed)
	if err != nil {
		panic(err)
	}
	fmt.Println(kex.Fingerprint(id.PublicKey()) == id.Fingerprint())
	fmt.Println(id.Fingerprint())
	// Output:
	// true
	// sha256:4654a09c3796d409448689fd1926cddf48b98b7dcc3245f74a02073cbbc44c7b
}

// CheckNegotiated is how a client refuses a server that answers without
// the encryption it asked for.
func ExampleCheckNegotiated() {
	fmt.Println(kex.CheckNegotiated(kex.KeySize256, kex.KeySizeNone))
	fmt.Println(kex.CheckNegotiated(kex.KeySize128, kex.KeySize256))
	// Output:
	// kex: server answered without wire encryption, client asked for 256 bits
	// <nil>
}

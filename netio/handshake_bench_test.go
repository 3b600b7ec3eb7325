package netio

import (
	"bytes"
	"net"
	"testing"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// BenchmarkConnectionSetup measures complete connection setups over
// loopback, as bench's handshake workload does: TCP connect, hello,
// ML-KEM-768 key exchange, channel 0 opened, close. Both ends run in this
// process; the client here is minimal and gives its stream's buffers back,
// so B/op and allocs/op are mostly the server's.
func BenchmarkConnectionSetup(b *testing.B) {
	ts := startServer(b, Config{WireEncryption: kex.KeySize192}, chain.Config{}, storeOpts{})
	addr := ts.addrs["v4"]
	hello, err := (&proto.Hello{Version: proto.ProtocolVersion, KeySize: proto.KeySize(kex.KeySize192),
		Route: Route, ChainKey: "bench/setup"}).AppendBinary(nil)
	if err != nil {
		b.Fatal(err)
	}
	setup := func() {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		s := proto.NewStream(nc, 0)
		defer s.Release()
		if err := s.WriteFrame(hello); err != nil {
			b.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			b.Fatal(err)
		}
		ack, err := s.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		ack = bytes.Clone(ack)
		sess, err := kex.ClientHandshake(s, hello, ack, kex.KeySize192, kex.ClientConfig{})
		if err != nil {
			b.Fatal(err)
		}
		defer sess.Close()
		body, err := sess.Conn(s).ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		if t, _ := proto.PeekType(body); t != proto.TypeOpened {
			b.Fatalf("got %s, want Opened", t)
		}
	}
	setup() // create the chain
	b.ReportAllocs()
	for b.Loop() {
		setup()
	}
}

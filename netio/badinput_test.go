package netio

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// readAck reads the first frame a refused connection gets: a HelloAck.
func readAck(t *testing.T, nc net.Conn) proto.HelloAck {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	fr := proto.NewFrameReader(nc, 0)
	body, err := fr.ReadFrame()
	if err != nil {
		t.Fatalf("read HelloAck: %v", err)
	}
	var ack proto.HelloAck
	if err := ack.Decode(body); err != nil {
		t.Fatalf("decode HelloAck: %v", err)
	}
	return ack
}

func TestBadInput(t *testing.T) {
	ts := startServer(t, Config{HandshakeTimeout: 300 * time.Millisecond, MaxFrameSize: 64 << 10},
		chain.Config{}, storeOpts{})
	addr := ts.addrs["v4"]
	// A healthy client stays connected through everything below.
	good := dial(t, addr, "good", kex.KeySizeNone)
	expect[*proto.Opened](good)

	t.Run("garbage instead of hello", func(t *testing.T) {
		nc := dialRaw(t, addr)
		_, _ = nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		ack := readAck(t, nc)
		if ack.Code != proto.CodeMalformed || !contains(ack.Reason, "atedb hello") {
			t.Fatalf("HelloAck %+v", ack)
		}
	})
	t.Run("small garbage frame", func(t *testing.T) {
		nc := dialRaw(t, addr)
		_, _ = nc.Write(proto.AppendFrame(nil, []byte{0x01, 'n', 'o', 'p', 'e'}))
		if ack := readAck(t, nc); ack.Code != proto.CodeMalformed || !contains(ack.Reason, "hello") {
			t.Fatalf("HelloAck %+v", ack)
		}
	})
	t.Run("half-open handshake", func(t *testing.T) {
		nc := dialRaw(t, addr)
		var hdr [4]byte
		binary.LittleEndian.PutUint32(hdr[:], 100)
		_, _ = nc.Write(append(hdr[:], 0x01, 'A'))
		ack := readAck(t, nc)
		if ack.Code != proto.CodeTimeout {
			t.Fatalf("HelloAck %+v, want timeout", ack)
		}
	})
	t.Run("silent client", func(t *testing.T) {
		nc := dialRaw(t, addr)
		if ack := readAck(t, nc); ack.Code != proto.CodeTimeout {
			t.Fatalf("HelloAck %+v, want timeout", ack)
		}
	})
	t.Run("wrong route", func(t *testing.T) {
		nc := dialRaw(t, addr)
		body, _ := (&proto.Hello{Version: proto.ProtocolVersion, Route: "/auth", ChainKey: "x"}).AppendBinary(nil)
		_, _ = nc.Write(proto.AppendFrame(nil, body))
		if ack := readAck(t, nc); ack.Code != proto.CodeInvalidChainKey || !contains(ack.Reason, "/db") {
			t.Fatalf("HelloAck %+v", ack)
		}
	})
	for name, key := range map[string]string{
		"traversal":    "../../etc",
		"absolute":     "/etc/passwd",
		"inner dotdot": "a/../../b",
		"hidden":       "a/.ssh",
		"home":         "~root/x",
		"double slash": "a//b",
		"upper case":   "Alias/DB",
		"backslash":    `a\..\b`,
		"encoded":      "a%2f..%2fb",
	} {
		t.Run("hello key "+name, func(t *testing.T) {
			_, err := tryDial(t, addr, key, kex.KeySizeNone)
			ce, ok := err.(*proto.CodeError)
			if !ok || ce.Code != proto.CodeInvalidChainKey || !contains(ce.Reason, "bad chain key") {
				t.Fatalf("dial with key %q: %v", key, err)
			}
		})
	}
	t.Run("open bad key keeps the connection", func(t *testing.T) {
		c := dial(t, addr, "", kex.KeySizeNone)
		c.send(&proto.Open{Channel: 1, ChainKey: "../x"})
		e := expect[*proto.Error](c)
		if e.Code != proto.CodeInvalidChainKey || e.Request != proto.TypeOpen || e.Channel != 1 {
			t.Fatalf("Error %+v", e)
		}
		c.send(&proto.Open{Channel: 1, ChainKey: "fine"})
		expect[*proto.Opened](c)
	})
	t.Run("append before open", func(t *testing.T) {
		c := dial(t, addr, "", kex.KeySizeNone)
		ce := expect[*proto.CommitError](c.appendCheck(3, 42, testEvents("x", 1)))
		if ce.Code != proto.CodeUnknownChannel || ce.CommitID != 42 {
			t.Fatalf("CommitError %+v", ce)
		}
		c.send(&proto.Lock{Channel: 3, ID: 5, Key: 1})
		if lr := expect[*proto.LockResult](c); lr.Code != proto.CodeUnknownChannel || lr.ID != 5 {
			t.Fatalf("LockResult %+v", lr)
		}
		c.send(&proto.Subscribe{Channel: 3, Live: true})
		if e := expect[*proto.Error](c); e.Code != proto.CodeUnknownChannel {
			t.Fatalf("Error %+v", e)
		}
		c.send(&proto.Unsubscribe{Channel: 3})
		if e := expect[*proto.Error](c); e.Code != proto.CodeUnknownChannel {
			t.Fatalf("Error %+v", e)
		}
		c.send(&proto.Close{Channel: 3})
		if e := expect[*proto.Error](c); e.Code != proto.CodeUnknownChannel {
			t.Fatalf("Error %+v", e)
		}
	})
	t.Run("append before subscribe is accepted", func(t *testing.T) {
		c := dial(t, addr, "nosub", kex.KeySizeNone)
		expect[*proto.Opened](c)
		if conf := expect[*proto.Confirmed](c.appendCheck(0, 1, testEvents("y", 2))); len(conf.Offsets) != 2 {
			t.Fatalf("Confirmed %+v", conf)
		}
	})
	t.Run("malformed event", func(t *testing.T) {
		c := dial(t, addr, "badevent", kex.KeySizeNone)
		expect[*proto.Opened](c)
		ce := expect[*proto.CommitError](c.appendCheck(0, 9, [][]byte{testEvent("ok"), {0x03, 0x02, 0xff, 0xff}}))
		if ce.Code != proto.CodeMalformed || ce.Index != 1 {
			t.Fatalf("CommitError %+v", ce)
		}
	})
	t.Run("oversized frame", func(t *testing.T) {
		c := dial(t, addr, "", kex.KeySizeNone)
		var hdr [4]byte
		binary.LittleEndian.PutUint32(hdr[:], 1<<30)
		_, _ = c.nc.Write(hdr[:])
		f := c.expectClosed()
		if f == nil || f.Code != proto.CodeFrameTooLarge {
			t.Fatalf("Fatal %+v, want frame too large", f)
		}
	})
	t.Run("truncated frame", func(t *testing.T) {
		c := dial(t, addr, "", kex.KeySizeNone)
		var hdr [4]byte
		binary.LittleEndian.PutUint32(hdr[:], 100)
		_, _ = c.nc.Write(append(hdr[:], 1, 2, 3))
		c.nc.(*net.TCPConn).CloseWrite()
		c.expectClosed()
	})
	t.Run("unknown message", func(t *testing.T) {
		c := dial(t, addr, "", kex.KeySizeNone)
		c.sendRaw([]byte{0x7f, 1, 2})
		f := c.expectClosed()
		if f == nil || f.Code != proto.CodeUnknownMessage {
			t.Fatalf("Fatal %+v, want unknown message", f)
		}
	})
	t.Run("server-only message", func(t *testing.T) {
		c := dial(t, addr, "", kex.KeySizeNone)
		c.send(&proto.Opened{Channel: 1})
		if f := c.expectClosed(); f == nil || f.Code != proto.CodeUnknownMessage {
			t.Fatalf("Fatal %+v", f)
		}
	})
	t.Run("malformed known message", func(t *testing.T) {
		c := dial(t, addr, "", kex.KeySizeNone)
		c.sendRaw([]byte{byte(proto.TypeAppend), 0})
		if f := c.expectClosed(); f == nil || f.Code != proto.CodeMalformed {
			t.Fatalf("Fatal %+v", f)
		}
	})
	t.Run("tampered encrypted frame", func(t *testing.T) {
		c := dial(t, addr, "", kex.KeySize128)
		body, _ := (&proto.Ping{ID: 1}).AppendBinary(nil)
		sealed := proto.AppendFrame(nil, append(body, make([]byte, kex.Overhead)...))
		_, _ = c.nc.Write(sealed)
		// The session is dead: the server closes without a word (it
		// cannot seal one).
		if f := c.expectClosed(); f != nil {
			t.Fatalf("Fatal %+v on a dead session", f)
		}
	})

	// The healthy client was served all along.
	if conf := expect[*proto.Confirmed](good.appendCheck(0, 1, testEvents("still", 1))); len(conf.Offsets) != 1 {
		t.Fatalf("healthy client: %+v", conf)
	}
}

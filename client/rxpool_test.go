package client

import (
	"bytes"
	"context"
	"testing"

	"github.com/atedb/atedb/proto"
)

// TestFrameReaderReleasePoolsOnlyFreeSlots: release gives the buffer of a
// slot nothing references back to rxBufs, and never the buffer of a slot
// a chunk still holds (its frames could still be read through the chunk).
func TestFrameReaderReleasePoolsOnlyFreeSlots(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's pool drops items at random")
	}
	stream := proto.AppendFrame(nil, []byte("one"))
	stream = proto.AppendFrame(stream, []byte("two"))

	// A chunk still held: its slot must not be pooled.
	fr := newFrameReader(bytes.NewReader(stream), 0, make(chan struct{}))
	ch, err := fr.readChunk()
	if err != nil {
		t.Fatal(err)
	}
	held := &ch.slot.buf[0]
	fr.release()
	for range 4 {
		b := rxBufs.Get().(*[rxSlotMin]byte)
		if &b[0] == held {
			t.Fatal("release pooled a slot that a chunk still holds")
		}
	}
	if got := string(ch.b[proto.FrameHeaderSize:][:3]); got != "one" {
		t.Fatalf("held chunk reads %q, want %q", got, "one")
	}

	// Every chunk released: the slot's buffer goes back to the pool.
	fr = newFrameReader(bytes.NewReader(stream), 0, make(chan struct{}))
	ch, err = fr.readChunk()
	if err != nil {
		t.Fatal(err)
	}
	freed := &ch.slot.buf[0]
	ch.release()
	fr.release()
	if b := rxBufs.Get().(*[rxSlotMin]byte); &b[0] != freed {
		t.Fatal("release did not pool the slot nothing references")
	}
}

// TestCloseReleasesBuffers: once Close returns, the connection's receive
// slots have been handed back (release ran after its goroutines ended).
func TestCloseReleasesBuffers(t *testing.T) {
	fs := newFakeServer(t)
	fs.floor = 192
	c, err := Dial(context.Background(), fs.url("pool/chain"), WithReconnect(false, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	if cn == nil || cn.rx.cur == nil {
		t.Fatal("no connection with a receive slot after Dial")
	}
	c.Close()
	if cn.rx.cur != nil || len(cn.rx.free) != 0 || cn.rx.last != nil {
		t.Fatalf("after Close the reader still holds slots (current %v, %d free)", cn.rx.cur != nil, len(cn.rx.free))
	}
}

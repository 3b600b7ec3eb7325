package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// receiveRig feeds Events frames straight to a connection's dispatcher
// for a live subscription, to measure and check the client's receive
// path (decode the frame, buffer it, decode each event in Next) without
// the network or a server.
type receiveRig struct {
	c    *Client
	s    *Subscription
	d    *dispatcher
	body []byte
	offs []int // positions of the items' offsets in body
	next uint64
}

func newReceiveRig(tb testing.TB, events, size int) *receiveRig {
	return newReceiveRigOpts(tb, events, size, SubscribeOptions{Live: true})
}

func newReceiveRigOpts(tb testing.TB, events, size int, opts SubscribeOptions) *receiveRig {
	tb.Helper()
	fs := newFakeServer(tb)
	c, err := Dial(context.Background(), fs.url("rx"), WithWireEncryption(kex.KeySizeNone))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	s, err := c.Subscribe(context.Background(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	r := &receiveRig{c: c, s: s, d: &dispatcher{cn: cn}}
	r.body = proto.AppendEventsHeader(nil, s.num)
	for i := range events {
		raw, err := (&proto.Event{DataKey: uint64(i + 1), Timestamp: 1, Data: make([]byte, size)}).AppendBinary(nil)
		if err != nil {
			tb.Fatal(err)
		}
		r.offs = append(r.offs, len(r.body))
		r.body = proto.AppendEventsItem(r.body, uint64(i), 1, raw)
	}
	return r
}

// frame delivers one Events frame with the next offsets and reads every
// event back with Next.
func (r *receiveRig) frame(tb testing.TB) {
	for _, at := range r.offs {
		binary.LittleEndian.PutUint64(r.body[at:], r.next)
		r.next++
	}
	if err := r.d.dispatch(r.body); err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	for range r.offs {
		ev, err := r.s.Next(ctx)
		if err != nil || ev.DataKey == 0 {
			tb.Fatalf("Next = %+v, %v", ev, err)
		}
	}
}

// TestReceivePathAllocations proves the claim of Subscription's doc: a
// frame of events costs one allocation (its copy out of the read buffer),
// whatever the number of events in it.
func TestReceivePathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	for _, n := range []int{1, 256} {
		r := newReceiveRig(t, n, 1024)
		r.frame(t) // warm up: buffer slices reach their size
		if got := testing.AllocsPerRun(100, func() { r.frame(t) }); got > 1 {
			t.Errorf("%d events per frame: %.1f allocations per frame, want at most 1", n, got)
		}
	}
}

// TestReceivePathReuseBuffers: with ReuseBuffers, a frame of events costs
// no allocation once the subscription has a block to recycle.
func TestReceivePathReuseBuffers(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	for _, n := range []int{1, 256} {
		r := newReceiveRigOpts(t, n, 1024, SubscribeOptions{Live: true, ReuseBuffers: true})
		r.frame(t)
		r.frame(t) // the first block is recycled when the second is read
		if got := testing.AllocsPerRun(100, func() { r.frame(t) }); got != 0 {
			t.Errorf("%d events per frame: %.1f allocations per frame with ReuseBuffers, want 0", n, got)
		}
	}
}

// BenchmarkReceiveEvents measures the client's own receive path per event:
// no network, no server.
func BenchmarkReceiveEvents(b *testing.B) {
	for _, tc := range []struct {
		size  int
		reuse bool
	}{{100, false}, {1024, false}, {1024, true}} {
		b.Run(fmt.Sprintf("events=256/size=%dB/reuse=%v", tc.size, tc.reuse), func(b *testing.B) {
			size := tc.size
			r := newReceiveRigOpts(b, 256, size, SubscribeOptions{Live: true, ReuseBuffers: tc.reuse})
			b.SetBytes(int64(256 * size))
			b.ReportAllocs()
			for b.Loop() {
				r.frame(b)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*256), "ns/event")
		})
	}
}

// TestUndecodableEventEndsSubscription: the events before an undecodable
// one are delivered; then Next reports a *ProtocolError (again on every
// later call), the subscription's channel is released, and the connection
// carries on.
func TestUndecodableEventEndsSubscription(t *testing.T) {
	fs := newFakeServer(t)
	fs.appendRaw("garbled", rawEvent(t, "g0"), rawEvent(t, "g1"), []byte{0xff, 0x01}, rawEvent(t, "g3"))
	c := dial(t, fs, "garbled")
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, SubscribeOptions{History: true, Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSequence(t, collect(t, ctx, s, 2), 0, "g")
	for range 2 {
		_, err := s.Next(ctx)
		var pe *ProtocolError
		if !errors.As(err, &pe) || !errors.Is(err, ErrProtocol) || !strings.Contains(pe.Reason, "offset 2") {
			t.Fatalf("Next = %v, want a ProtocolError about offset 2", err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		st := c.chans[s.num]
		c.mu.Unlock()
		if st == nil {
			break // Closed received: the channel is free
		}
		if time.Now().After(deadline) {
			t.Fatal("the subscription's channel was not released")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Append(ctx, ev("after")); err != nil {
		t.Fatalf("Append after the protocol error: %v", err)
	}
}

// TestEventsStayValid: events handed out earlier keep their bytes while
// later frames arrive and are read (no buffer is reused under them).
func TestEventsStayValid(t *testing.T) {
	fs := newFakeServer(t)
	fs.eventsPerMsg = 2
	c := dial(t, fs, "valid")
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, SubscribeOptions{Live: true, BufferBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var kept []Event
	for round := range 20 {
		for i := range 10 {
			fs.appendRaw("valid", rawEvent(t, fmt.Sprintf("v%d", round*10+i)))
		}
		kept = append(kept, collect(t, ctx, s, 10)...)
	}
	checkSequence(t, kept, 0, "v")
	for _, e := range kept {
		var d proto.Event
		if err := d.Decode(e.Raw); err != nil || !bytes.Equal(d.Data, e.Data) {
			t.Fatalf("event %d: Raw %x no longer matches Data %q", e.Offset, e.Raw, e.Data)
		}
	}
}

// TestReuseBuffersKeepsOrderAndClones: a subscription with ReuseBuffers
// delivers the same sequence, across frames, pauses (a small buffer) and
// recycled blocks; events kept with Clone stay intact while later frames
// overwrite the blocks their originals pointed into.
func TestReuseBuffersKeepsOrderAndClones(t *testing.T) {
	fs := newFakeServer(t)
	fs.eventsPerMsg = 3
	c := dial(t, fs, "reuse")
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, SubscribeOptions{Live: true, BufferBytes: 1024, ReuseBuffers: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var kept []Event
	for round := range 20 {
		for i := range 10 {
			fs.appendRaw("reuse", rawEvent(t, fmt.Sprintf("r%d", round*10+i)))
		}
		for range 10 {
			ev, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			k, err := ev.Clone()
			if err != nil {
				t.Fatal(err)
			}
			if k.Offset != ev.Offset || !bytes.Equal(k.Raw, ev.Raw) || !bytes.Equal(k.Data, ev.Data) {
				t.Fatalf("Clone of event %d differs: %+v vs %+v", ev.Offset, k, ev)
			}
			kept = append(kept, k)
		}
	}
	checkSequence(t, kept, 0, "r") // the clones' data survived the recycling
}

// TestAppendAsyncEncodesOnce: a batch's event list points into its
// Append body (one copy of the bytes), each entry equal to the event's
// own encoding, for one-event and larger batches.
func TestAppendAsyncEncodesOnce(t *testing.T) {
	fs := newFakeServer(t)
	release := make(chan struct{})
	fs.onAppend = func(*fakeConn, *proto.Append) bool { <-release; return false } // no answer before the check
	c := dial(t, fs, "once")
	ctx := testCtx(t)
	for _, n := range []int{1, 3, 200} {
		evs := make([]proto.Event, n)
		for i := range evs {
			evs[i] = proto.Event{DataKey: uint64(n*1000 + i), Data: bytes.Repeat([]byte{byte(i)}, 50*i)}
		}
		f, err := c.Chain().AppendAsync(ctx, Batch{Events: evs})
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		events, body := f.events, f.body
		c.mu.Unlock()
		if events == nil {
			t.Fatal("the batch was answered while the server held it")
		}
		for i := range evs {
			want, _ := evs[i].AppendBinary(nil)
			if !bytes.Equal(events[i], want) {
				t.Fatalf("%d events: event %d is %x, want %x", n, i, events[i], want)
			}
			if len(want) > 0 && !within(events[i], body) {
				t.Fatalf("%d events: event %d does not point into the Append body", n, i)
			}
		}
		release <- struct{}{}
		offs, err := f.Wait(ctx)
		if err != nil || len(offs) != n {
			t.Fatalf("%d events: Wait = %v, %v", n, offs, err)
		}
	}
}

func within(b, outer []byte) bool {
	if len(b) == 0 || len(outer) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(&outer[0]))
	p := uintptr(unsafe.Pointer(&b[0]))
	return p >= start && p+uintptr(len(b)) <= start+uintptr(len(outer))
}

// sessionPair runs a key exchange over an in-memory pipe and returns its
// server and client sessions.
func sessionPair(tb testing.TB, size kex.KeySize) (srv, cli *kex.Session) {
	tb.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	hello, err := (&proto.Hello{Version: proto.ProtocolVersion, KeySize: proto.KeySize(size), Route: "/db", ChainKey: "rx"}).AppendBinary(nil)
	if err != nil {
		tb.Fatal(err)
	}
	ack, err := (&proto.HelloAck{Version: proto.ProtocolVersion, KeySize: proto.KeySize(size)}).AppendBinary(nil)
	if err != nil {
		tb.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		var err error
		srv, err = kex.ServerHandshake(proto.NewStream(a, 0), hello, ack, size, kex.ServerConfig{})
		errc <- err
	}()
	cli, err = kex.ClientHandshake(proto.NewStream(b, 0), hello, ack, size, kex.ClientConfig{})
	if err != nil {
		tb.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		tb.Fatalf("server handshake: %v", err)
	}
	return srv, cli
}

// sealedReceiveRig is a receiveRig whose frames are sealed by a server
// session and go through the connection's chunk handler, which opens
// them, as they do with wire encryption.
type sealedReceiveRig struct {
	*receiveRig
	cn     *conn
	sealer *kex.Conn
	wire   bytes.Buffer
	expect uint64 // offset of the next event Next must return
}

func newSealedReceiveRig(tb testing.TB, events, size int, opts SubscribeOptions) *sealedReceiveRig {
	tb.Helper()
	r := &sealedReceiveRig{receiveRig: newReceiveRigOpts(tb, events, size, opts)}
	srv, cli := sessionPair(tb, kex.KeySize128)
	r.cn = &conn{c: r.c, sc: cli.Conn(proto.NewStream(nil, 0))}
	r.d = &dispatcher{cn: r.cn}
	r.sealer = srv.Conn(proto.NewStream(&r.wire, 0))
	return r
}

// frame seals one Events frame with the next offsets, hands it to the
// chunk handler and reads every event back with Next, checking that the
// offsets come in order (a block reused too early would break them).
func (r *sealedReceiveRig) frame(tb testing.TB) {
	for _, at := range r.offs {
		binary.LittleEndian.PutUint64(r.body[at:], r.next)
		r.next++
	}
	r.wire.Reset()
	if err := r.sealer.WriteFrame(r.body); err != nil {
		tb.Fatal(err)
	}
	if err := r.sealer.Flush(); err != nil {
		tb.Fatal(err)
	}
	ch := rxChunk{b: r.wire.Bytes()}
	if err := r.cn.handleChunk(r.d, &ch); err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	for range r.offs {
		ev, err := r.s.Next(ctx)
		if err != nil || ev.DataKey == 0 || ev.Offset != r.expect {
			tb.Fatalf("Next = offset %d, key %d, %v; want offset %d", ev.Offset, ev.DataKey, err, r.expect)
		}
		r.expect++
	}
}

// TestSealedReceivePath: a large sealed Events frame is decrypted into a
// buffer that the subscription takes as its block. Without ReuseBuffers
// that is a new buffer per frame (the one allocation a frame costs, as
// without encryption); with ReuseBuffers the subscription hands back a
// recycled block each time and nothing is allocated. Small frames are
// opened in place and copied. Events come out in order either way.
func TestSealedReceivePath(t *testing.T) {
	for _, tc := range []struct {
		events, size int
		reuse        bool
		maxAllocs    float64
	}{
		{256, 1024, false, 1},
		{256, 1024, true, 0},
		{1, 100, false, 1}, // below rxOpenAsideMin: opened in place
		{1, 100, true, 0},
	} {
		t.Run(fmt.Sprintf("events=%d/size=%d/reuse=%v", tc.events, tc.size, tc.reuse), func(t *testing.T) {
			r := newSealedReceiveRig(t, tc.events, tc.size, SubscribeOptions{Live: true, ReuseBuffers: tc.reuse})
			for range 3 { // warm up: a block to recycle, buffers grown
				r.frame(t)
			}
			// A frame opened aside is taken over by the subscription, which
			// leaves the dispatcher a recycled block (ReuseBuffers) or
			// nothing; a small frame is opened in place, leaving nothing.
			p := unsafe.SliceData(r.d.open)
			r.frame(t)
			q := unsafe.SliceData(r.d.open)
			aside := len(r.body)+kex.TagSize >= rxOpenAsideMin
			switch {
			case aside && tc.reuse && (q == nil || q == p):
				t.Fatalf("frame of %d bytes: the dispatcher kept its buffer (or got none back); want the subscription to take it and return a recycled one", len(r.body))
			case aside && !tc.reuse && q != nil:
				t.Fatalf("frame of %d bytes: the dispatcher kept its buffer; want the subscription to take it", len(r.body))
			case !aside && q != nil:
				t.Fatalf("frame of %d bytes: opened aside, want in place", len(r.body))
			}
			if raceEnabled {
				return // allocation counts differ under -race
			}
			if got := testing.AllocsPerRun(100, func() { r.frame(t) }); got > tc.maxAllocs {
				t.Errorf("%.1f allocations per frame, want at most %v", got, tc.maxAllocs)
			}
		})
	}
}

// BenchmarkReceiveSealedEvents is BenchmarkReceiveEvents with AES-128-GCM
// frames opened by the chunk handler (no network, no server).
func BenchmarkReceiveSealedEvents(b *testing.B) {
	for _, reuse := range []bool{false, true} {
		b.Run(fmt.Sprintf("events=256/size=1024B/reuse=%v", reuse), func(b *testing.B) {
			r := newSealedReceiveRig(b, 256, 1024, SubscribeOptions{Live: true, ReuseBuffers: reuse})
			b.SetBytes(256 * 1024)
			b.ReportAllocs()
			for b.Loop() {
				r.frame(b)
			}
		})
	}
}

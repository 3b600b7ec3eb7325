package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// chunkedReader returns data in pieces of random size (1 to max bytes),
// then io.EOF, together with the last piece when eofWithData is set.
type chunkedReader struct {
	data        []byte
	rng         *rand.Rand
	max         int
	eofWithData bool
}

func (r *chunkedReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), 1+r.rng.IntN(r.max))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	if len(r.data) == 0 && r.eofWithData {
		return n, io.EOF
	}
	return n, nil
}

// testFrames returns bodies of mixed sizes (empty, tiny, a few KiB, and
// with big a few hundred KiB and some larger than rxSlotMax), each filled
// with a pattern that identifies it, and their encoding as a frame
// stream.
func testFrames(rng *rand.Rand, n int, big bool) (bodies [][]byte, stream []byte) {
	kinds := 14
	if big {
		kinds = 20
	}
	for i := range n {
		var size int
		switch k := rng.IntN(kinds); {
		case k == 0:
			size = 0
		case k < 8:
			size = rng.IntN(64)
		case k < 14:
			size = rng.IntN(8 << 10)
		case k < 19:
			size = rng.IntN(300 << 10)
		default:
			size = rxSlotMax + rng.IntN(rxSlotMax)
		}
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(i*31 + j)
		}
		bodies = append(bodies, b)
		stream = proto.AppendFrame(stream, b)
	}
	return bodies, stream
}

// TestFrameReaderMatchesInput reads random frame streams in random
// pieces through ReadFrame and through readChunk (holding up to hold
// chunks before releasing them, as a lagging dispatcher would; more than
// rxMaxSlots-2 would deadlock this single goroutine, the reader waiting
// for a slot only the holder can release): every
// frame comes out intact and in order, at most rxMaxSlots slots exist,
// and the stream ends with io.EOF.
func TestFrameReaderMatchesInput(t *testing.T) {
	for _, tc := range []struct {
		name     string
		chunk    bool
		hold     int
		maxPiece int
		eofData  bool
	}{
		{"ReadFrame/small-pieces", false, 0, 100, false},
		{"ReadFrame/large-pieces", false, 0, 1 << 20, true},
		{"readChunk/release-at-once", true, 0, 64 << 10, false},
		{"readChunk/hold-2", true, 2, 200 << 10, true},
		{"readChunk/hold-1/small-pieces", true, 1, 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			bodies, stream := testFrames(rng, 120, tc.maxPiece >= 64<<10)
			dead := make(chan struct{})
			fr := newFrameReader(&chunkedReader{data: stream, rng: rng, max: tc.maxPiece, eofWithData: tc.eofData}, 4<<20, dead)
			type heldChunk struct {
				ch    rxChunk
				first int // index of its first frame
			}
			var held []heldChunk
			// release checks that a held chunk still holds what the
			// dispatcher left in it (the reader wrote nothing over it),
			// then releases it.
			release := func(h heldChunk) {
				t.Helper()
				k := h.first
				for b := h.ch.b; len(b) > 0; k++ {
					var body []byte
					body, b = nextFrame(b)
					for j := range body {
						if body[j] != ^bodies[k][j] {
							t.Fatalf("frame %d changed at byte %d while its chunk was held", k, j)
						}
					}
				}
				h.ch.release()
			}
			i := 0
			check := func(body []byte) {
				t.Helper()
				if i >= len(bodies) {
					t.Fatalf("frame %d: more frames than sent", i)
				}
				if !bytes.Equal(body, bodies[i]) {
					t.Fatalf("frame %d: %d bytes, want %d (or different bytes)", i, len(body), len(bodies[i]))
				}
				// The dispatcher may write the body in place (decryption).
				for j := range body {
					body[j] ^= 0xff
				}
				i++
			}
			for {
				if fr.slots > rxMaxSlots {
					t.Fatalf("%d slots, want at most %d", fr.slots, rxMaxSlots)
				}
				if !tc.chunk {
					body, err := fr.ReadFrame()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("frame %d: %v", i, err)
					}
					check(body)
					continue
				}
				if len(held) > tc.hold {
					release(held[0])
					held = held[1:]
				}
				ch, err := fr.readChunk()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if len(ch.b) == 0 {
					t.Fatalf("empty chunk")
				}
				first := i
				for b := ch.b; len(b) > 0; {
					var body []byte
					body, b = nextFrame(b)
					check(body)
				}
				held = append(held, heldChunk{ch, first})
			}
			if i != len(bodies) {
				t.Fatalf("read %d frames, want %d", i, len(bodies))
			}
		})
	}
}

// TestFrameReaderErrors: the errors of proto.FrameReader, with the same
// types and offsets.
func TestFrameReaderErrors(t *testing.T) {
	one := proto.AppendFrame(nil, []byte("hello"))
	tests := map[string]struct {
		stream  []byte
		max     int
		frames  int
		wantEOF bool
		check   func(err error) bool
	}{
		"clean end":        {one, 0, 1, true, nil},
		"empty stream":     {nil, 0, 0, true, nil},
		"inside header":    {append(one, 3, 0), 0, 1, false, func(err error) bool { return errors.Is(err, proto.ErrUnexpectedEOF) }},
		"inside body":      {append(one, 9, 0, 0, 0, 'x'), 0, 1, false, func(err error) bool { return errors.Is(err, proto.ErrUnexpectedEOF) }},
		"too large":        {append(one, 0, 0, 1, 0), 1 << 10, 1, false, tooLarge(65536, 1<<10, int64(len(one)))},
		"too large at max": {proto.AppendFrame(nil, make([]byte, 1025)), 1 << 10, 0, false, tooLarge(1025, 1<<10, 0)},
		"exactly max":      {proto.AppendFrame(nil, make([]byte, 1024)), 1 << 10, 1, true, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fr := newFrameReader(bytes.NewReader(tc.stream), tc.max, nil)
			for i := range tc.frames {
				if _, err := fr.ReadFrame(); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			_, err := fr.ReadFrame()
			if tc.wantEOF {
				if err != io.EOF {
					t.Fatalf("end: %v, want io.EOF", err)
				}
				return
			}
			if err == nil || !tc.check(err) {
				t.Fatalf("end: %v (%T), not the error wanted", err, err)
			}
			if errors.Is(err, proto.ErrFrameTooLarge) {
				if _, err2 := fr.readChunk(); !tc.check(err2) {
					t.Fatalf("after %v: %v, want the same error again (sticky)", err, err2)
				}
			}
		})
	}
}

func tooLarge(size int64, max int, off int64) func(error) bool {
	return func(err error) bool {
		var e *proto.FrameTooLargeError
		return errors.As(err, &e) && e.Size == size && e.Max == max && e.Offset == off
	}
}

// stepReader answers each Read with its next step, then io.EOF.
type stepReader struct {
	steps []func(p []byte) (int, error)
}

func (r *stepReader) Read(p []byte) (int, error) {
	if len(r.steps) == 0 {
		return 0, io.EOF
	}
	f := r.steps[0]
	r.steps = r.steps[1:]
	return f(p)
}

func give(b []byte) func([]byte) (int, error) {
	return func(p []byte) (int, error) { return copy(p, b), nil }
}

// TestFrameReaderResumesAfterTimeout: a deadline in the middle of a frame
// keeps what was received, and the next read completes the frame.
func TestFrameReaderResumesAfterTimeout(t *testing.T) {
	body := bytes.Repeat([]byte("z"), 5000)
	stream := proto.AppendFrame(nil, body)
	r := &stepReader{steps: []func([]byte) (int, error){
		give(stream[:2]),
		func([]byte) (int, error) { return 0, os.ErrDeadlineExceeded },
		give(stream[2:3000]),
		func([]byte) (int, error) { return 0, os.ErrDeadlineExceeded },
		give(stream[3000:]),
	}}
	fr := newFrameReader(r, 0, nil)
	for _, op := range []string{"read header", "read body"} {
		_, err := fr.readChunk()
		var fe *proto.FrameError
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &fe) || fe.Op != op {
			t.Fatalf("%s: %v, want a FrameError wrapping the deadline", op, err)
		}
	}
	ch, err := fr.readChunk()
	if err != nil {
		t.Fatalf("after the deadlines: %v", err)
	}
	if got, rest := nextFrame(ch.b); !bytes.Equal(got, body) || len(rest) != 0 {
		t.Fatalf("resumed frame: %d bytes (+%d), want %d", len(got), len(rest), len(body))
	}
}

// TestFrameReaderBrokenReader: a reader that makes no progress, or
// returns an impossible count, is an error, not a hang or a panic.
func TestFrameReaderBrokenReader(t *testing.T) {
	zero := &stepReader{}
	for range rxMaxEmptyReads {
		zero.steps = append(zero.steps, give(nil))
	}
	if _, err := newFrameReader(zero, 0, nil).ReadFrame(); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("reader returning 0, nil forever: %v, want io.ErrNoProgress", err)
	}
	bad := &stepReader{steps: []func([]byte) (int, error){func(p []byte) (int, error) { return len(p) + 1, nil }}}
	var fe *proto.FrameError
	if _, err := newFrameReader(bad, 0, nil).ReadFrame(); !errors.As(err, &fe) {
		t.Errorf("reader returning too much: %v, want a FrameError", err)
	}
}

// TestFrameReaderWaitsForSlots: with every slot held by unreleased
// chunks, the reader waits; a release lets it go on, and the connection
// dying ends the wait with errReaderStopped.
func TestFrameReaderWaitsForSlots(t *testing.T) {
	body := make([]byte, rxSlotMax-proto.FrameHeaderSize) // one frame fills a slot
	var stream []byte
	for range rxMaxSlots + 2 {
		stream = proto.AppendFrame(stream, body)
	}
	dead := make(chan struct{})
	fr := newFrameReader(bytes.NewReader(stream), 0, dead)
	var held []rxChunk
	for len(held) < rxMaxSlots {
		ch, err := fr.readChunk()
		if err != nil {
			t.Fatalf("chunk %d: %v", len(held), err)
		}
		held = append(held, ch)
	}
	type result struct {
		ch  rxChunk
		err error
	}
	got := make(chan result, 1)
	go func() {
		ch, err := fr.readChunk()
		got <- result{ch, err}
	}()
	select {
	case r := <-got:
		t.Fatalf("read with every slot held returned (%d bytes, %v), want it to wait", len(r.ch.b), r.err)
	case <-time.After(50 * time.Millisecond):
	}
	held[0].release()
	select {
	case r := <-got:
		if r.err != nil || len(r.ch.b) != len(body)+proto.FrameHeaderSize {
			t.Fatalf("after a release: %d bytes, %v", len(r.ch.b), r.err)
		}
		// r.ch stays unreleased: every slot is held again, so the next
		// read waits until the connection dies.
	case <-time.After(10 * time.Second):
		t.Fatalf("a release did not wake the reader")
	}
	go func() {
		ch, err := fr.readChunk()
		got <- result{ch, err}
	}()
	time.Sleep(20 * time.Millisecond)
	close(dead)
	select {
	case r := <-got:
		if !errors.Is(r.err, errReaderStopped) {
			t.Fatalf("wait ended by the connection's death: %v, want errReaderStopped", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the connection's death did not end the wait")
	}
}

// TestFrameReaderZeroAlloc: once its slots exist, reading and releasing
// chunks allocates nothing.
func TestFrameReaderZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	var stream []byte
	for i := range 64 {
		stream = proto.AppendFrame(stream, make([]byte, 1+i*4099))
	}
	rd := bytes.NewReader(stream)
	fr := newFrameReader(rd, 0, nil)
	var held [2]rxChunk
	k := 0
	step := func() {
		held[k%2].release()
		ch, err := fr.readChunk()
		if err == io.EOF {
			rd.Reset(stream)
			ch, err = fr.readChunk()
		}
		if err != nil {
			t.Fatalf("readChunk: %v", err)
		}
		held[k%2] = ch
		k++
	}
	for range 500 { // let the slots grow
		step()
	}
	if n := testing.AllocsPerRun(500, step); n != 0 {
		t.Fatalf("%v allocations per chunk, want 0", n)
	}
}

// TestFrameReaderPipelined runs the reader and a dispatcher goroutine as
// the connection does, over a socket, with the dispatcher writing every
// body in place: a slot reused while a body in it is still being handled
// would show as corrupted frames (and as a race under -race).
func TestFrameReaderPipelined(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	bodies, stream := testFrames(rng, 80, true)
	go func() {
		defer b.Close()
		for len(stream) > 0 {
			n := min(len(stream), 1+rng.IntN(256<<10))
			if _, err := b.Write(stream[:n]); err != nil {
				return
			}
			stream = stream[n:]
		}
	}()
	dead := make(chan struct{})
	defer close(dead)
	fr := newFrameReader(a, 4<<20, dead)
	chunks := make(chan rxChunk, rxQueue)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(chunks)
		for {
			ch, err := fr.readChunk()
			if err != nil {
				if err != io.EOF {
					t.Errorf("readChunk: %v", err)
				}
				return
			}
			chunks <- ch
		}
	}()
	i := 0
	for ch := range chunks {
		for b := ch.b; len(b) > 0; {
			var body []byte
			body, b = nextFrame(b)
			if i >= len(bodies) || !bytes.Equal(body, bodies[i]) {
				t.Fatalf("frame %d corrupted or extra (%d bytes)", i, len(body))
			}
			for j := range body {
				body[j] = ^body[j]
			}
			i++
		}
		ch.release()
	}
	wg.Wait()
	if i != len(bodies) {
		t.Fatalf("got %d frames, want %d", i, len(bodies))
	}
}

// TestFatalBeforeCloseReported: a server that sends Fatal and closes at
// once: the client reports the Fatal, not the lost connection, with and
// without wire encryption (where frames pass from the reader goroutine to
// the dispatcher goroutine, and the end of the stream must wait for them).
func TestFatalBeforeCloseReported(t *testing.T) {
	for _, size := range []kex.KeySize{kex.KeySizeNone, kex.KeySize128} {
		t.Run(fmt.Sprintf("enc=%v", size), func(t *testing.T) {
			fs := newFakeServer(t)
			fs.onAppend = func(fc *fakeConn, m *proto.Append) bool {
				fc.send(&proto.Fatal{Code: proto.CodeInternal, Reason: "disk on fire"})
				return true // and close
			}
			c, err := Dial(testCtx(t), fs.url("fatal"), WithWireEncryption(size), WithReconnect(false, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Append(testCtx(t), ev("x"))
			var se *ServerError
			if !errors.As(err, &se) || se.Code != proto.CodeInternal || se.Reason != "disk on fire" {
				t.Fatalf("Append = %v, want the server's Fatal", err)
			}
			select {
			case <-c.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("client still running after a Fatal without reconnect")
			}
			if !errors.As(c.Err(), &se) || se.Reason != "disk on fire" {
				t.Fatalf("Err() = %v, want the server's Fatal", c.Err())
			}
		})
	}
}

// FuzzFrameReader cross-checks the frameReader against proto.FrameReader
// on arbitrary streams read in arbitrary pieces: the same frames, then
// the same kind of error at the same offset. The first byte chooses the
// piece size and the maximum frame size.
func FuzzFrameReader(f *testing.F) {
	f.Add([]byte{0x11, 5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', 0, 0, 0, 0}) // two frames, the second empty
	f.Add([]byte{0x00, 5, 0, 0, 0, 'h', 'e'})                            // ends inside a body
	f.Add([]byte{0x3f, 0xff, 0xff, 0, 0})                                // too large
	f.Add([]byte{0x20, 1, 0, 0, 0, 'x', 2})                              // ends inside a header
	f.Add(append([]byte{0xf7}, proto.AppendFrame(nil, make([]byte, 70000))...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		piece := 1 + int(data[0]&0x0f)*997
		maxFrame := 1 << (8 + int(data[0]>>4)) // 256 B to 8 MiB
		stream := data[1:]
		ref := proto.NewFrameReader(&chunkedReader{data: stream, rng: rand.New(rand.NewPCG(1, 2)), max: piece}, maxFrame)
		var want [][]byte
		var werr error
		for {
			b, err := ref.ReadFrame()
			if err != nil {
				werr = err
				break
			}
			want = append(want, bytes.Clone(b))
		}
		// Alternately one chunk and one frame, holding two chunks.
		fr := newFrameReader(&chunkedReader{data: stream, rng: rand.New(rand.NewPCG(3, 4)), max: piece}, maxFrame, nil)
		var got [][]byte
		var gerr error
		var held []rxChunk
		for i := 0; gerr == nil; i++ {
			if i%2 == 1 {
				var b []byte
				if b, gerr = fr.ReadFrame(); gerr == nil {
					got = append(got, bytes.Clone(b))
				}
				continue
			}
			var ch rxChunk
			if ch, gerr = fr.readChunk(); gerr != nil {
				break
			}
			for b := ch.b; len(b) > 0; {
				var body []byte
				body, b = nextFrame(b)
				got = append(got, bytes.Clone(body))
			}
			if held = append(held, ch); len(held) > 2 {
				held[0].release()
				held = held[1:]
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d frames, proto.FrameReader %d (errors %v, %v)", len(got), len(want), gerr, werr)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d: %x, want %x", i, got[i], want[i])
			}
		}
		checkSameErr(t, len(got), werr, gerr)
	})
}

func checkSameErr(t *testing.T, n int, want, got error) {
	t.Helper()
	if want == nil {
		t.Fatalf("frame %d: frameReader: %v, proto.FrameReader gave a frame", n, got)
	}
	if want == io.EOF || got == io.EOF {
		if want != got {
			t.Fatalf("frame %d: %v, want %v", n, got, want)
		}
		return
	}
	var wl, gl *proto.FrameTooLargeError
	if errors.As(want, &wl) {
		if !errors.As(got, &gl) || *gl != *wl {
			t.Fatalf("frame %d: %v, want %v", n, got, want)
		}
		return
	}
	var we, ge *proto.FrameError
	if !errors.As(want, &we) || !errors.As(got, &ge) || ge.Offset != we.Offset ||
		errors.Is(want, proto.ErrUnexpectedEOF) != errors.Is(got, proto.ErrUnexpectedEOF) {
		t.Fatalf("frame %d: %v, want %v", n, got, want)
	}
}

// TestEncryptedReceivePaths replays a history in large Events frames
// (handed from the reader goroutine to the dispatcher goroutine) while
// appends on the same connection get small confirmations (handled by the
// reader itself when the dispatcher is idle): every event arrives once, in
// order, every append is confirmed with its offset, and under -race the
// two goroutines' use of the dispatcher state is checked.
func TestEncryptedReceivePaths(t *testing.T) {
	fs := newFakeServer(t)
	fs.eventsPerMsg = 64
	pad := string(bytes.Repeat([]byte("p"), 1000))
	const history = 1500
	var raws [][]byte
	for i := range history {
		raws = append(raws, rawEvent(t, fmt.Sprintf("h%d%s", i, pad)))
	}
	fs.appendRaw("paths", raws...)
	c := dial(t, fs, "paths", WithWireEncryption(kex.KeySize128))
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, SubscribeOptions{History: true, Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const appends = 40
	errc := make(chan error, 1)
	go func() {
		for i := range appends {
			offs, err := c.Append(ctx, ev(fmt.Sprintf("a%d", i)))
			if err != nil || len(offs) != 1 || offs[0] < history {
				errc <- fmt.Errorf("append %d: %v, %v", i, offs, err)
				return
			}
		}
		errc <- nil
	}()
	for i := range history + appends {
		e, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("Next %d: %v", i, err)
		}
		if e.Offset != uint64(i) {
			t.Fatalf("event %d at offset %d", i, e.Offset)
		}
		if i < history && string(e.Data) != fmt.Sprintf("h%d%s", i, pad) {
			t.Fatalf("event %d: %.20q...", i, e.Data)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestFrameReaderMovesLittle reads, from a socket that always has more
// (a client behind a fast server), streams of large frames of equal or
// nearly equal sizes, as history replay sends: the slots must end at frame
// boundaries, so that almost nothing is moved from one slot to the next
// (filling every slot to its end moved about a quarter of the bytes of
// 256 KiB frames), and every frame comes out intact.
func TestFrameReaderMovesLittle(t *testing.T) {
	for _, tc := range []struct {
		name         string
		size, jitter int
		hold         int
	}{
		{"equal/256KiB", 266226, 0, 0},
		{"equal/256KiB/hold-1", 266226, 0, 1},
		{"jitter/256KiB", 266226, 2000, 1},
		{"equal/100KiB", 100 << 10, 0, 2},
		{"jitter/20KiB", 20 << 10, 1000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, uint64(tc.size)))
			var bodies [][]byte
			var stream []byte
			for i := range 200 {
				b := make([]byte, tc.size+rng.IntN(tc.jitter+1))
				for j := range b {
					b[j] = byte(i*13 + j)
				}
				bodies = append(bodies, b)
				stream = proto.AppendFrame(stream, b)
			}
			fr := newFrameReader(bytes.NewReader(stream), 4<<20, nil)
			var held []rxChunk
			i := 0
			for {
				if len(held) > tc.hold {
					held[0].release()
					held = held[1:]
				}
				ch, err := fr.readChunk()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				for b := ch.b; len(b) > 0; i++ {
					var body []byte
					body, b = nextFrame(b)
					if i >= len(bodies) || !bytes.Equal(body, bodies[i]) {
						t.Fatalf("frame %d differs from the one sent", i)
					}
				}
				held = append(held, ch)
			}
			if i != len(bodies) {
				t.Fatalf("read %d frames, want %d", i, len(bodies))
			}
			// The first frames, before the reader knows their size, may
			// be moved; then only the jitter's drift.
			if limit := int64(len(stream)) / 50; fr.moved > limit {
				t.Fatalf("moved %d bytes between slots for a %d-byte stream, want at most %d (2%%)", fr.moved, len(stream), limit)
			}
			t.Logf("moved %d bytes of %d (%.2f%%)", fr.moved, len(stream), 100*float64(fr.moved)/float64(len(stream)))
		})
	}
}

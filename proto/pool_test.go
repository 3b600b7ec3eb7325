package proto

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
)

// TestReleaseReturnsBuffers checks that Release gives the buffers back and
// leaves the reader and writer usable, and that a second Release does not
// hand the same buffer to the pool twice (two owners of one buffer).
func TestReleaseReturnsBuffers(t *testing.T) {
	in := framesOf([]byte("one"), []byte("two"))
	var out bytes.Buffer
	s := NewStream(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(in), &out}, 0)
	if b, err := s.ReadFrame(); err != nil || string(b) != "one" {
		t.Fatalf("ReadFrame = %q, %v; want one", b, err)
	}
	if err := s.WriteFrame([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	if cap(s.FrameReader.buf) != readChunk || cap(s.FrameWriter.buf) != writeChunk {
		t.Fatalf("buffers of %d and %d bytes, want %d and %d (the pooled sizes)",
			cap(s.FrameReader.buf), cap(s.FrameWriter.buf), readChunk, writeChunk)
	}
	s.Release()
	s.Release() // must not put the same buffers again
	if s.FrameReader.buf != nil || s.FrameWriter.buf != nil || s.FrameReader.Buffered() != 0 || s.FrameWriter.Buffered() != 0 {
		t.Fatalf("after Release: reader buffer %d bytes, writer %d, buffered %d and %d; want none",
			cap(s.FrameReader.buf), cap(s.FrameWriter.buf), s.FrameReader.Buffered(), s.FrameWriter.Buffered())
	}
	if !raceEnabled { // the race detector's pool drops items at random
		a := readBufs.Get().(*[readChunk]byte)
		b := readBufs.Get().(*[readChunk]byte)
		if a == b {
			t.Fatal("the pool returned one read buffer twice: it was released twice")
		}
		readBufs.Put(a)
		readBufs.Put(b)
		c := writeBufs.Get().(*[writeChunk]byte)
		d := writeBufs.Get().(*[writeChunk]byte)
		if c == d {
			t.Fatal("the pool returned one write buffer twice: it was released twice")
		}
		writeBufs.Put(c)
		writeBufs.Put(d)
	}
	// Still usable: a Reset reader reads again into a new buffer.
	s.Reset(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(in), &out})
	for _, want := range []string{"one", "two"} {
		if b, err := s.ReadFrame(); err != nil || string(b) != want {
			t.Fatalf("after Release: ReadFrame = %q, %v; want %q", b, err, want)
		}
	}
	if err := s.WriteFrame([]byte("again")); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := framesOf([]byte("again")); !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("wrote %x, want %x (the frame queued before Release is discarded)", out.Bytes(), want)
	}
}

// TestReleaseConcurrentStreams runs many short-lived streams at once, each
// reading and writing frames that only it could produce, then releasing
// its buffers for the next: a buffer shared by two live streams would
// corrupt one's frames (and, under -race, be reported as a race).
func TestReleaseConcurrentStreams(t *testing.T) {
	const workers, rounds = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Go(func() {
			for r := range rounds {
				var bodies [][]byte
				for i := range 5 {
					// Sizes cross the pooled read buffer so that some
					// rounds grow it (and hand it back on growth).
					n := 1 + (g*131+r*17+i*4099)%(2*readChunk)
					bodies = append(bodies, bytes.Repeat([]byte{byte(g), byte(r), byte(i)}, n/3+1))
				}
				var out bytes.Buffer
				s := NewStream(struct {
					io.Reader
					io.Writer
				}{&chunkReader{r: bytes.NewReader(framesOf(bodies...)), n: 1 + r%5000}, &out}, 0)
				for i, want := range bodies {
					b, err := s.ReadFrame()
					if err != nil || !bytes.Equal(b, want) {
						errs <- fmt.Errorf("worker %d round %d frame %d: got %d bytes (%v), want %d bytes", g, r, i, len(b), err, len(want))
						return
					}
					if err := s.WriteFrame(b); err != nil {
						errs <- err
						return
					}
				}
				if err := s.Flush(); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(out.Bytes(), framesOf(bodies...)) {
					errs <- fmt.Errorf("worker %d round %d: echoed frames differ", g, r)
					return
				}
				s.Release()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestStreamLifecycleAllocs proves that a connection's worth of framing (a
// stream reset onto a new connection, a frame read and written, then
// released) allocates nothing once the pools hold buffers: the 64 KiB read
// buffer is reused, not allocated and cleared per connection.
func TestStreamLifecycleAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	in := framesOf(bytes.Repeat([]byte{1}, 1200), []byte("finish"))
	src := bytes.NewReader(in)
	s := NewStream(struct {
		io.Reader
		io.Writer
	}{src, io.Discard}, 0)
	rw := io.ReadWriter(struct {
		io.Reader
		io.Writer
	}{src, io.Discard})
	allocs := testing.AllocsPerRun(100, func() {
		src.Reset(in)
		s.Reset(rw)
		for range 2 {
			b, err := s.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if err := s.WriteFrame(b); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		s.Release()
	})
	if allocs != 0 {
		t.Fatalf("a stream's lifecycle allocates %v times, want 0", allocs)
	}
}

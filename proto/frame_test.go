package proto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

func framesOf(bodies ...[]byte) []byte {
	var b []byte
	for _, body := range bodies {
		b = AppendFrame(b, body)
	}
	return b
}

func testBodies() [][]byte {
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000) // 160000 B: forces buffer growth
	return [][]byte{[]byte("hello"), {}, {0}, big, []byte("after big"), bytes.Repeat([]byte{0xff}, readChunk)}
}

func TestFrameRoundTrip(t *testing.T) {
	bodies := testBodies()
	stream := framesOf(bodies...)
	readers := map[string]func(io.Reader) io.Reader{
		"plain":    func(r io.Reader) io.Reader { return r },
		"onebyte":  iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"dataerr":  iotest.DataErrReader,
		"timeout":  iotest.TimeoutReader,
		"chunk7":   func(r io.Reader) io.Reader { return &chunkReader{r: r, n: 7} },
		"chunk64k": func(r io.Reader) io.Reader { return &chunkReader{r: r, n: 65537} },
	}
	for name, wrap := range readers {
		t.Run(name, func(t *testing.T) {
			fr := NewFrameReader(wrap(bytes.NewReader(stream)), 1<<20)
			for i, want := range bodies {
				got, err := readFrameRetry(fr)
				if err != nil {
					t.Fatalf("frame %d: ReadFrame error %v", i, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("frame %d: got %d bytes, want %d bytes (equal=%v)", i, len(got), len(want), bytes.Equal(got, want))
				}
			}
			if _, err := readFrameRetry(fr); err != io.EOF {
				t.Fatalf("after last frame: got %v, want io.EOF", err)
			}
		})
	}
}

// readFrameRetry retries ReadFrame after iotest.ErrTimeout, which a FrameReader
// must survive without losing bytes.
func readFrameRetry(fr *FrameReader) ([]byte, error) {
	for {
		b, err := fr.ReadFrame()
		if errors.Is(err, iotest.ErrTimeout) {
			continue
		}
		return b, err
	}
}

type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

// strictReader fails the test if more than limit bytes are requested in total.
type strictReader struct {
	t     *testing.T
	data  []byte
	limit int
	read  int
}

func (s *strictReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	s.read += n
	if s.read > s.limit {
		s.t.Errorf("reader consumed %d bytes, more than the %d allowed", s.read, s.limit)
	}
	return n, nil
}

func TestFrameTooLargeBeforeBody(t *testing.T) {
	// Header announces 1 GiB; only the header is available. The reader must
	// refuse from the header alone, without allocating for the body.
	hdr := []byte{0, 0, 0, 0x40}
	sr := &strictReader{t: t, data: hdr, limit: FrameHeaderSize}
	fr := NewFrameReader(sr, 1024)
	_, err := fr.ReadFrame()
	var tl *FrameTooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want FrameTooLargeError", err)
	}
	if tl.Size != 1<<30 || tl.Max != 1024 || tl.Offset != 0 {
		t.Fatalf("got %+v, want Size=%d Max=1024 Offset=0", *tl, 1<<30)
	}
	if cap(fr.buf) > readChunk {
		t.Fatalf("buffer grew to %d for a refused frame", cap(fr.buf))
	}
	// Sticky: the stream cannot be resynchronised.
	if _, err := fr.ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("second read: got %v, want ErrFrameTooLarge again", err)
	}
	// Offset names the frame's position in the stream.
	fr = NewFrameReader(bytes.NewReader(append(framesOf([]byte("abc")), 5, 0, 0, 0)), 4)
	if _, err := fr.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if _, err := fr.ReadFrame(); !errors.As(err, &tl) || tl.Offset != 7 || tl.Size != 5 {
		t.Fatalf("got %v, want too large at offset 7 size 5", err)
	}
}

func TestFrameReaderGrowsWithData(t *testing.T) {
	// A frame announced at 1 MiB of which 10 bytes arrive must not make the
	// reader allocate 1 MiB.
	in := append([]byte{0, 0, 0x10, 0}, make([]byte, 10)...)
	fr := NewFrameReader(bytes.NewReader(in), 0)
	if _, err := fr.ReadFrame(); !errors.Is(err, ErrUnexpectedEOF) {
		t.Fatalf("got %v, want ErrUnexpectedEOF", err)
	}
	if cap(fr.buf) > readChunk {
		t.Fatalf("buffer is %d bytes after 14 bytes of input, want <= %d", cap(fr.buf), readChunk)
	}
	// The whole frame arriving grows the buffer to exactly what it needs.
	in = AppendFrame(nil, make([]byte, 1<<20))
	fr = NewFrameReader(iotest.HalfReader(bytes.NewReader(in)), 1<<20)
	if b, err := fr.ReadFrame(); err != nil || len(b) != 1<<20 {
		t.Fatalf("got %d bytes, %v", len(b), err)
	}
	if cap(fr.buf) > 1<<20+FrameHeaderSize {
		t.Fatalf("buffer is %d bytes, more than max+header", cap(fr.buf))
	}
}

func TestFrameMaxBoundary(t *testing.T) {
	body := bytes.Repeat([]byte{1}, 100)
	fr := NewFrameReader(bytes.NewReader(framesOf(body, append(body, 2))), 100)
	if got, err := fr.ReadFrame(); err != nil || len(got) != 100 {
		t.Fatalf("exactly max: got %d bytes, %v", len(got), err)
	}
	if _, err := fr.ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("max+1: got %v, want ErrFrameTooLarge", err)
	}
	var out bytes.Buffer
	fw := NewFrameWriter(&out, 100)
	if err := fw.WriteFrame(body); err != nil {
		t.Fatalf("write exactly max: %v", err)
	}
	if err := fw.WriteFrame(append(body, 2)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("write max+1: got %v, want ErrFrameTooLarge", err)
	}
	// Not sticky: the writer still works.
	if err := fw.WriteFrame([]byte("x")); err != nil {
		t.Fatalf("write after refused frame: %v", err)
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := framesOf(body, []byte("x")); !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("written bytes differ: got %x, want %x", out.Bytes(), want)
	}
}

func TestFrameTruncated(t *testing.T) {
	full := framesOf([]byte("first"), []byte("second frame"))
	firstEnd := FrameHeaderSize + len("first")
	for cut := 0; cut <= len(full); cut++ {
		fr := NewFrameReader(bytes.NewReader(full[:cut]), 0)
		var err error
		frames := 0
		for {
			_, err = fr.ReadFrame()
			if err != nil {
				break
			}
			frames++
		}
		clean := cut == 0 || cut == firstEnd || cut == len(full)
		if clean {
			if err != io.EOF {
				t.Errorf("cut %d: got %v, want io.EOF", cut, err)
			}
			continue
		}
		var fe *FrameError
		if !errors.Is(err, ErrUnexpectedEOF) || !errors.Is(err, io.ErrUnexpectedEOF) || !errors.As(err, &fe) {
			t.Errorf("cut %d: got %v, want FrameError wrapping ErrUnexpectedEOF", cut, err)
			continue
		}
		wantOff := int64(0)
		if cut > firstEnd {
			wantOff = int64(firstEnd)
		}
		if fe.Offset != wantOff {
			t.Errorf("cut %d: error offset %d, want %d", cut, fe.Offset, wantOff)
		}
		if frames > 1 {
			t.Errorf("cut %d: read %d complete frames from a truncated stream", cut, frames)
		}
	}
}

func TestFrameReaderError(t *testing.T) {
	boom := errors.New("boom")
	data := framesOf([]byte("ok"))
	fr := NewFrameReader(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), 0)
	if b, err := fr.ReadFrame(); err != nil || string(b) != "ok" {
		t.Fatalf("got %q, %v", b, err)
	}
	_, err := fr.ReadFrame()
	var fe *FrameError
	if !errors.Is(err, boom) || !errors.As(err, &fe) || fe.Op != "read header" || fe.Offset != int64(len(data)) {
		t.Fatalf("got %v, want FrameError{read header, offset %d} wrapping boom", err, len(data))
	}
}

func TestFrameReaderNoProgress(t *testing.T) {
	fr := NewFrameReader(zeroReader{}, 0)
	if _, err := fr.ReadFrame(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// countWriter records each Write call.
type countWriter struct {
	writes int
	buf    bytes.Buffer
	failAt int // fail the failAt-th write (1-based); 0 never
	short  bool
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.writes++
	if c.failAt != 0 && c.writes >= c.failAt {
		if c.short {
			c.buf.Write(p[:len(p)/2])
			return len(p) / 2, nil
		}
		return 0, errors.New("disk on fire")
	}
	return c.buf.Write(p)
}

func TestFrameWriterBatches(t *testing.T) {
	cw := &countWriter{}
	fw := NewFrameWriter(cw, 0)
	bodies := [][]byte{[]byte("a"), []byte("bb"), {}, []byte("dddd")}
	for _, b := range bodies {
		if err := fw.WriteFrame(b); err != nil {
			t.Fatal(err)
		}
	}
	if cw.writes != 0 {
		t.Fatalf("WriteFrame wrote %d times before Flush, want 0", cw.writes)
	}
	if got, want := fw.Buffered(), len(framesOf(bodies...)); got != want {
		t.Fatalf("Buffered = %d, want %d", got, want)
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	if cw.writes != 1 {
		t.Fatalf("Flush made %d writes, want 1", cw.writes)
	}
	if !bytes.Equal(cw.buf.Bytes(), framesOf(bodies...)) {
		t.Fatalf("got %x", cw.buf.Bytes())
	}
	if err := fw.Flush(); err != nil || cw.writes != 1 {
		t.Fatalf("empty flush: err %v, writes %d", err, cw.writes)
	}
}

func TestFrameWriterBoundedBuffer(t *testing.T) {
	cw := &countWriter{}
	fw := NewFrameWriter(cw, 0)
	body := make([]byte, 100<<10)
	for range 10 {
		if err := fw.WriteFrame(body); err != nil {
			t.Fatal(err)
		}
		if fw.Buffered() > writeFlushAt+FrameHeaderSize+len(body) {
			t.Fatalf("buffered %d bytes, bound is %d", fw.Buffered(), writeFlushAt+FrameHeaderSize+len(body))
		}
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	fr := NewFrameReader(&cw.buf, 0)
	for i := range 10 {
		if b, err := fr.ReadFrame(); err != nil || len(b) != len(body) {
			t.Fatalf("frame %d: %d bytes, %v", i, len(b), err)
		}
	}
}

func TestFrameWriterSticky(t *testing.T) {
	for _, short := range []bool{false, true} {
		t.Run(fmt.Sprintf("short=%v", short), func(t *testing.T) {
			cw := &countWriter{failAt: 2, short: short}
			fw := NewFrameWriter(cw, 0)
			_ = fw.WriteFrame([]byte("one"))
			if err := fw.Flush(); err != nil {
				t.Fatal(err)
			}
			_ = fw.WriteFrame([]byte("two"))
			err := fw.Flush()
			var fe *FrameError
			if !errors.As(err, &fe) || fe.Op != "write" {
				t.Fatalf("got %v, want FrameError on write", err)
			}
			if short && !errors.Is(err, io.ErrShortWrite) {
				t.Fatalf("got %v, want io.ErrShortWrite", err)
			}
			wantOff := int64(7)
			if short {
				wantOff += 3
			}
			if fe.Offset != wantOff {
				t.Fatalf("offset %d, want %d", fe.Offset, wantOff)
			}
			if err2 := fw.WriteFrame([]byte("three")); err2 != err {
				t.Fatalf("WriteFrame after failure: %v, want the first error", err2)
			}
			if err2 := fw.Flush(); err2 != err {
				t.Fatalf("Flush after failure: %v, want the first error", err2)
			}
			if cw.writes != 2 {
				t.Fatalf("%d writes after the failure, want none", cw.writes-2)
			}
		})
	}
}

func TestFrameWriterBeginEnd(t *testing.T) {
	var out bytes.Buffer
	fw := NewFrameWriter(&out, 8)
	_ = fw.WriteFrame([]byte("a"))
	buf := fw.BeginFrame()
	buf = append(buf, "in place"...)
	if err := fw.EndFrame(buf); err != nil {
		t.Fatal(err)
	}
	buf = fw.BeginFrame()
	buf = append(buf, "too long!"...)
	if err := fw.EndFrame(buf); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := framesOf([]byte("a"), []byte("in place")); !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("got %x, want %x", out.Bytes(), want)
	}
}

func TestStream(t *testing.T) {
	var rw bytes.Buffer
	s := NewStream(&rw, 16)
	var fc FrameConn = s
	if err := fc.WriteFrame([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := fc.Flush(); err != nil {
		t.Fatal(err)
	}
	if b, err := fc.ReadFrame(); err != nil || string(b) != "ping" {
		t.Fatalf("got %q, %v", b, err)
	}
	if s.MaxFrameSize() != 16 {
		t.Fatalf("MaxFrameSize = %d", s.MaxFrameSize())
	}
}

func TestFrameReaderAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	one := framesOf(bytes.Repeat([]byte{7}, 1000))
	stream := bytes.Repeat(one, 200)
	src := bytes.NewReader(stream)
	fr := NewFrameReader(src, 0)
	_, _ = fr.ReadFrame() // allocate the buffer
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := fr.ReadFrame(); err != nil {
			src.Reset(stream)
		}
	})
	if allocs != 0 {
		t.Fatalf("ReadFrame allocates %v times per frame, want 0", allocs)
	}
	fw := NewFrameWriter(io.Discard, 0)
	body := make([]byte, 1000)
	_ = fw.WriteFrame(body)
	_ = fw.Flush()
	allocs = testing.AllocsPerRun(100, func() {
		_ = fw.WriteFrame(body)
		_ = fw.WriteFrame(body)
		_ = fw.Flush()
	})
	if allocs != 0 {
		t.Fatalf("WriteFrame+Flush allocate %v times, want 0", allocs)
	}
}

func TestClampMax(t *testing.T) {
	for in, want := range map[int]int{0: DefaultMaxFrameSize, -5: DefaultMaxFrameSize, 1: 1, 1 << 40: MaxFrameSizeLimit} {
		if got := NewFrameReader(nil, in).MaxFrameSize(); got != want {
			t.Errorf("max %d: got %d, want %d", in, got, want)
		}
	}
}

package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

// Frame layout: part of the wire format; never change.
//
//	+----------------------+------------------------+
//	| length u32 LE (4 B)  | body (length bytes)    |
//	+----------------------+------------------------+
const (
	// FrameHeaderSize is the size of a frame's length prefix.
	FrameHeaderSize = 4
	// DefaultMaxFrameSize is the body size limit used when a constructor is
	// given a maximum <= 0.
	DefaultMaxFrameSize = 8 << 20
	// MaxFrameSizeLimit is the largest body a length prefix can describe.
	MaxFrameSizeLimit = math.MaxUint32
)

const (
	// readChunk is the initial read buffer size and the granularity of reads.
	readChunk = 64 << 10
	// writeChunk is the capacity of a FrameWriter's first buffer; it grows
	// by append beyond that as frames need.
	writeChunk = 8 << 10
	// writeFlushAt is the buffered size above which WriteFrame flushes what
	// is already buffered before adding a frame, bounding writer memory.
	writeFlushAt = 256 << 10
	// maxEmptyReads is how many (0, nil) reads in a row are tolerated.
	maxEmptyReads = 100
)

var (
	// ErrFrameTooLarge is matched (errors.Is) by every [FrameTooLargeError].
	ErrFrameTooLarge = errors.New("proto: frame too large")
	// ErrUnexpectedEOF reports a stream that ended inside a frame (in its
	// header or its body). It is distinct from io.EOF, which [FrameReader]
	// returns only on a clean frame boundary. It also matches
	// io.ErrUnexpectedEOF through errors.Is.
	ErrUnexpectedEOF = unexpectedEOF{}
)

type unexpectedEOF struct{}

// Buffers of the initial sizes are shared by every FrameReader and
// FrameWriter through these pools: a reader or writer takes one when it
// first needs it, and Release hands it back, so a server accepting many
// short connections neither allocates nor clears 64 KiB per connection.
// Grown buffers are left to the garbage collector (not pooled), so the
// pools hold small buffers only. Pooled buffers are not wiped, as freed
// memory is not.
var (
	readBufs  = sync.Pool{New: func() any { return new([readChunk]byte) }}
	writeBufs = sync.Pool{New: func() any { return new([writeChunk]byte) }}
)

// putReadBuf returns b to readBufs if it is a pooled size; b must not be
// used afterwards.
func putReadBuf(b []byte) {
	if cap(b) == readChunk {
		readBufs.Put((*[readChunk]byte)(b[:readChunk]))
	}
}

func (unexpectedEOF) Error() string        { return "proto: stream ended inside a frame" }
func (unexpectedEOF) Is(target error) bool { return target == io.ErrUnexpectedEOF }

// FrameTooLargeError reports a frame whose body length exceeds the
// configured maximum. On read it is returned before any of the body is read
// or any memory is allocated for it. errors.Is(err, ErrFrameTooLarge) is true.
type FrameTooLargeError struct {
	Size   int64 // body length announced (read) or given (write)
	Max    int   // configured maximum body length
	Offset int64 // stream offset of the frame's length prefix (reads only; -1 on writes)
}

// Error describes the error.
func (e *FrameTooLargeError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("proto: frame too large: body of %d bytes, limit %d", e.Size, e.Max)
	}
	return fmt.Sprintf("proto: frame too large: length prefix at stream offset %d announces %d bytes, limit %d",
		e.Offset, e.Size, e.Max)
}

// Is reports whether target is [ErrFrameTooLarge].
func (e *FrameTooLargeError) Is(target error) bool { return target == ErrFrameTooLarge }

// FrameError wraps an error that happened while reading or writing a frame,
// naming where in the stream it happened. Unwrap gives the cause
// ([ErrUnexpectedEOF], or the underlying reader's or writer's error).
type FrameError struct {
	Op     string // "read header", "read body" or "write"
	Offset int64  // stream offset of the frame's first header byte (reads) or of the first unwritten byte (writes)
	Err    error
}

// Error describes the error.
func (e *FrameError) Error() string {
	return fmt.Sprintf("proto: %s at stream offset %d: %v", e.Op, e.Offset, e.Err)
}

// Unwrap returns the underlying error.
func (e *FrameError) Unwrap() error { return e.Err }

func clampMax(maxFrame int) int {
	if maxFrame <= 0 {
		return DefaultMaxFrameSize
	}
	limit := uint64(MaxFrameSizeLimit)
	if l := uint64(math.MaxInt - FrameHeaderSize); l < limit {
		limit = l // 32-bit platforms
	}
	if uint64(maxFrame) > limit {
		return int(limit)
	}
	return maxFrame
}

// FrameConn is a bidirectional frame stream. [Stream] implements it over
// plain byte streams; the kex package's sealed stream implements it over an
// encrypted one, so servers and clients work with either.
//
// ReadFrame returns the next frame's body, valid until the next ReadFrame.
// WriteFrame queues one frame; Flush sends everything queued. Implementations
// allow one goroutine reading while another writes, but neither ReadFrame nor
// WriteFrame/Flush may be called concurrently with itself.
type FrameConn interface {
	ReadFrame() ([]byte, error)
	WriteFrame(body []byte) error
	Flush() error
}

// FrameReader reads length-prefixed frames from an io.Reader through an
// internal buffer that it reuses, so steady-state reads do not allocate.
// The buffer starts at 64 KiB (or max+4 if smaller), doubles as the data of
// a larger frame arrives, up to max+4 bytes, and never shrinks. The 64 KiB
// buffers come from a pool shared by every FrameReader: call
// [FrameReader.Release] when done with a reader to give its buffer back.
//
// A FrameReader is not safe for concurrent use.
type FrameReader struct {
	rd      io.Reader
	max     int
	buf     []byte
	r, w    int   // unread data is buf[r:w]
	off     int64 // stream offset of buf[r]
	pending error // read error received together with data, returned once data runs out
}

// NewFrameReader returns a reader of frames whose bodies are at most maxFrame
// bytes (maxFrame <= 0 means [DefaultMaxFrameSize]; values above
// [MaxFrameSizeLimit] are clamped). Nothing is allocated until the first read.
func NewFrameReader(r io.Reader, maxFrame int) *FrameReader {
	return &FrameReader{rd: r, max: clampMax(maxFrame)}
}

// Reset discards buffered data and makes fr read from r, keeping its buffer.
func (fr *FrameReader) Reset(r io.Reader) {
	fr.rd = r
	fr.r, fr.w, fr.off = 0, 0, 0
	fr.pending = nil
}

// Release discards buffered data (as Reset does) and gives fr's buffer
// back to the pool shared by every FrameReader, for another reader to
// reuse. Call it when done with fr, once no body it returned is in use:
// from then on another reader may overwrite them. fr stays usable (its
// next read takes a buffer again), and a second Release does nothing.
func (fr *FrameReader) Release() {
	fr.Reset(fr.rd)
	putReadBuf(fr.buf)
	fr.buf = nil
}

// MaxFrameSize returns the body size limit.
func (fr *FrameReader) MaxFrameSize() int { return fr.max }

// Buffered returns how many bytes have been read from the underlying reader
// but not yet returned as frames.
func (fr *FrameReader) Buffered() int { return fr.w - fr.r }

// ReadFrame reads the next frame and returns its body. The body aliases the
// reader's buffer and stops being valid at the next call to ReadFrame or
// Reset; copy it to keep it.
//
// Errors: io.EOF when the stream ends cleanly between frames;
// a [*FrameError] wrapping [ErrUnexpectedEOF] when it ends inside a frame;
// a [*FrameTooLargeError] when the length prefix exceeds the maximum (checked
// before the body is read or buffered; the stream cannot be resynchronised,
// so later calls return the same error); a [*FrameError] wrapping the
// underlying reader's error otherwise. After a read error (for example a
// deadline), bytes already received stay buffered and a later call resumes
// the same frame.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	if err := fr.fill(FrameHeaderSize, "read header"); err != nil {
		return nil, err
	}
	size := binary.LittleEndian.Uint32(fr.buf[fr.r : fr.r+FrameHeaderSize])
	if uint64(size) > uint64(fr.max) {
		return nil, &FrameTooLargeError{Size: int64(size), Max: fr.max, Offset: fr.off}
	}
	total := FrameHeaderSize + int(size)
	if err := fr.fill(total, "read body"); err != nil {
		return nil, err
	}
	body := fr.buf[fr.r+FrameHeaderSize : fr.r+total : fr.r+total]
	fr.r += total
	fr.off += int64(total)
	return body, nil
}

// fill makes sure at least need bytes are buffered at buf[r:]. The buffer
// grows geometrically as data arrives (never beyond need, which is at most
// max+FrameHeaderSize), so a peer announcing a large frame and sending
// nothing does not make the reader allocate the whole frame up front.
func (fr *FrameReader) fill(need int, op string) error {
	if fr.w-fr.r >= need {
		return nil
	}
	if fr.pending != nil {
		err := fr.pending
		fr.pending = nil
		return fr.readErr(err, op)
	}
	empty := 0
	for fr.w-fr.r < need {
		if fr.w == len(fr.buf) {
			fr.makeRoom(need)
		}
		n, err := fr.rd.Read(fr.buf[fr.w:])
		if n < 0 || n > len(fr.buf)-fr.w {
			return &FrameError{Op: op, Offset: fr.off, Err: errors.New("proto: reader returned an invalid count")}
		}
		fr.w += n
		if err != nil {
			if fr.w-fr.r >= need {
				fr.pending = err
				return nil
			}
			return fr.readErr(err, op)
		}
		if n == 0 {
			empty++
			if empty >= maxEmptyReads {
				return &FrameError{Op: op, Offset: fr.off, Err: io.ErrNoProgress}
			}
		} else {
			empty = 0
		}
	}
	return nil
}

// makeRoom is called when the buffer is full: it moves unread data to the
// front, or, if there is none to move, grows the buffer towards need.
func (fr *FrameReader) makeRoom(need int) {
	if fr.r > 0 {
		copy(fr.buf, fr.buf[fr.r:fr.w])
		fr.w -= fr.r
		fr.r = 0
		return
	}
	size := max(2*len(fr.buf), readChunk)
	size = min(size, fr.max+FrameHeaderSize) // need <= max+FrameHeaderSize
	if size == readChunk && len(fr.buf) == 0 {
		fr.buf = readBufs.Get().(*[readChunk]byte)[:]
		return
	}
	nb := make([]byte, size)
	copy(nb, fr.buf[:fr.w])
	// The old buffer held nothing but what was just copied: no body
	// returned earlier is valid any more (the contract of ReadFrame).
	putReadBuf(fr.buf)
	fr.buf = nb
}

func (fr *FrameReader) readErr(err error, op string) error {
	if err == io.EOF {
		if fr.w == fr.r {
			return io.EOF
		}
		err = ErrUnexpectedEOF
	}
	return &FrameError{Op: op, Offset: fr.off, Err: err}
}

// FrameWriter buffers frames and writes them to an io.Writer. Frames
// accumulate until [FrameWriter.Flush], which sends all of them in a single
// Write (batching); when more than 256 KiB are buffered, WriteFrame first
// flushes what is buffered, bounding memory to about that plus one frame.
//
// Errors are sticky, as in bufio.Writer: after a failed Write nothing more is
// accepted and every later WriteFrame and Flush returns the first error.
// Its first buffer (8 KiB) comes from a pool shared by every FrameWriter:
// call [FrameWriter.Release] when done with a writer to give it back.
// A FrameWriter is not safe for concurrent use.
type FrameWriter struct {
	wr  io.Writer
	max int
	buf []byte
	off int64 // stream offset of buf[0]
	err error
}

// NewFrameWriter returns a writer of frames whose bodies are at most maxFrame
// bytes (maxFrame <= 0 means [DefaultMaxFrameSize]).
func NewFrameWriter(w io.Writer, maxFrame int) *FrameWriter {
	return &FrameWriter{wr: w, max: clampMax(maxFrame)}
}

// Reset discards buffered frames and any error and makes fw write to w,
// keeping its buffer.
func (fw *FrameWriter) Reset(w io.Writer) {
	fw.wr = w
	fw.buf = fw.buf[:0]
	fw.off = 0
	fw.err = nil
}

// Release discards buffered frames and gives fw's buffer back to the pool
// shared by every FrameWriter (unless it grew past its initial size), for
// another writer to reuse. Call it when done with fw. fw stays usable,
// keeping its sticky error; a second Release does nothing.
func (fw *FrameWriter) Release() {
	if cap(fw.buf) == writeChunk {
		writeBufs.Put((*[writeChunk]byte)(fw.buf[:writeChunk]))
	}
	fw.buf = nil
}

// grow gives fw its first buffer, from the pool.
func (fw *FrameWriter) grow() {
	fw.buf = writeBufs.Get().(*[writeChunk]byte)[:0]
}

// MaxFrameSize returns the body size limit.
func (fw *FrameWriter) MaxFrameSize() int { return fw.max }

// Buffered returns the number of bytes (headers included) waiting for Flush.
func (fw *FrameWriter) Buffered() int { return len(fw.buf) }

// WriteFrame copies body into the buffer as one frame; body may be reused as
// soon as it returns. It returns a [*FrameTooLargeError] (without poisoning
// the writer) if body exceeds the maximum, or the sticky write error.
func (fw *FrameWriter) WriteFrame(body []byte) error {
	if fw.err != nil {
		return fw.err
	}
	if len(body) > fw.max {
		return &FrameTooLargeError{Size: int64(len(body)), Max: fw.max, Offset: -1}
	}
	if len(fw.buf) > 0 && len(fw.buf)+FrameHeaderSize+len(body) > writeFlushAt {
		if err := fw.Flush(); err != nil {
			return err
		}
	}
	if fw.buf == nil {
		fw.grow()
	}
	fw.buf = AppendFrame(fw.buf, body)
	return nil
}

// BeginFrame starts a frame directly in the writer's buffer, so a body can be
// built in place without an extra copy (for example Events built from
// mapped log records). It returns the buffer; append the body to it and
// pass the result to [FrameWriter.EndFrame] before any other call on fw.
// The returned slice must not be retained after EndFrame.
func (fw *FrameWriter) BeginFrame() []byte {
	if fw.buf == nil {
		fw.grow()
	}
	return append(fw.buf, 0, 0, 0, 0)
}

// EndFrame completes the frame started by [FrameWriter.BeginFrame]; buf is
// BeginFrame's result with the body appended. It returns a
// [*FrameTooLargeError] (and drops the frame) if the body exceeds the
// maximum, or the sticky write error (also dropping the frame).
func (fw *FrameWriter) EndFrame(buf []byte) error {
	start := len(fw.buf)
	if len(buf) < start+FrameHeaderSize {
		panic("proto: EndFrame called with a buffer not returned by BeginFrame")
	}
	if fw.err != nil {
		return fw.err
	}
	size := len(buf) - start - FrameHeaderSize
	if size > fw.max {
		return &FrameTooLargeError{Size: int64(size), Max: fw.max, Offset: -1}
	}
	binary.LittleEndian.PutUint32(buf[start:], uint32(size))
	fw.buf = buf
	if len(fw.buf) > writeFlushAt {
		return fw.Flush()
	}
	return nil
}

// Flush writes every buffered frame with a single Write call. A short write
// is reported as io.ErrShortWrite. Any error is wrapped in a [*FrameError]
// and becomes sticky.
func (fw *FrameWriter) Flush() error {
	if fw.err != nil {
		return fw.err
	}
	if len(fw.buf) == 0 {
		return nil
	}
	n, err := fw.wr.Write(fw.buf)
	if err == nil && n != len(fw.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n < 0 || n > len(fw.buf) {
			n = 0
		}
		fw.err = &FrameError{Op: "write", Offset: fw.off + int64(n), Err: err}
		return fw.err
	}
	fw.off += int64(n)
	fw.buf = fw.buf[:0]
	return nil
}

// AppendFrame appends body as one frame (length prefix, then body) to dst
// and returns the extended slice. It panics if body is longer than
// [MaxFrameSizeLimit], which no frame size limit allows.
func AppendFrame(dst, body []byte) []byte {
	if uint64(len(body)) > MaxFrameSizeLimit {
		panic("proto: AppendFrame body longer than 4 GiB")
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// Stream is a [FrameConn] over a plain byte stream such as a net.Conn: a
// [FrameReader] and a [FrameWriter] sharing one frame size limit. One
// goroutine may read while another writes.
type Stream struct {
	FrameReader
	FrameWriter
}

// NewStream returns a plain [FrameConn] reading from and writing to rw.
func NewStream(rw io.ReadWriter, maxFrame int) *Stream {
	m := clampMax(maxFrame)
	return &Stream{
		FrameReader: FrameReader{rd: rw, max: m},
		FrameWriter: FrameWriter{wr: rw, max: m},
	}
}

// Reset makes s read from and write to rw, discarding buffered data and any
// sticky error, and keeping both buffers.
func (s *Stream) Reset(rw io.ReadWriter) {
	s.FrameReader.Reset(rw)
	s.FrameWriter.Reset(rw)
}

// Release gives both of s's buffers back to their pools (see
// [FrameReader.Release] and [FrameWriter.Release]): call it when done with
// s, once nothing reads or writes through it any more and no body it
// returned is in use. Unflushed frames are discarded.
func (s *Stream) Release() {
	s.FrameReader.Release()
	s.FrameWriter.Release()
}

// MaxFrameSize returns the body size limit shared by both directions.
func (s *Stream) MaxFrameSize() int { return s.FrameReader.max }

var _ FrameConn = (*Stream)(nil)

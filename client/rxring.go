package client

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/atedb/atedb/proto"
)

// Receive buffers of a connection (see frameReader).
const (
	// rxMaxSlots bounds the slots a connection has at once: the reader
	// waits for the dispatcher to release one before it allocates more.
	rxMaxSlots = 4
	// rxSlotMin is the size of a connection's first slot.
	rxSlotMin = 64 << 10
	// rxSlotMax is the largest pooled slot: slots grow towards it (four
	// frames of the largest size seen) as large frames arrive. A frame
	// larger than this gets a slot of its own size, dropped once released
	// unless the next large frame needs it.
	rxSlotMax = 1 << 20
	// rxMinRoom: a slot with less room than this left at a frame boundary
	// is not read into any more (so a frame rarely starts just before the
	// end of a slot and has to be moved to the next one).
	rxMinRoom = 4 << 10
	// rxMaxEmptyReads is how many reads returning nothing in a row are
	// taken as a broken reader (as io.ErrNoProgress).
	rxMaxEmptyReads = 100
)

// rxBufs holds slot buffers of the first size (rxSlotMin) between
// connections: a connection whose goroutines have ended gives back the
// slots that no chunk still references (frameReader.release), so a client
// that dials often does not allocate and clear 64 KiB per connection.
var rxBufs = sync.Pool{New: func() any { return new([rxSlotMin]byte) }}

// newSlotBuf returns a slot buffer of n bytes, from rxBufs when n is the
// pooled size.
func newSlotBuf(n int) []byte {
	if n == rxSlotMin {
		return rxBufs.Get().(*[rxSlotMin]byte)[:]
	}
	return make([]byte, n)
}

// putSlotBuf gives s's buffer to rxBufs if it has the pooled size; s must
// not be used afterwards.
func putSlotBuf(s *rxSlot) {
	if len(s.buf) == rxSlotMin && cap(s.buf) == rxSlotMin {
		rxBufs.Put((*[rxSlotMin]byte)(s.buf))
	}
	s.buf = nil
}

// errReaderStopped is returned by a frameReader waiting for a slot when
// its connection dies.
var errReaderStopped = errors.New("client: connection closed while waiting for receive buffers")

// rxSlot is one receive buffer. It is referenced by the frameReader while
// it reads into it and by every rxChunk handed out of it; the last
// release returns it to the reader's free list.
type rxSlot struct {
	buf  []byte
	refs atomic.Int32
	free chan<- *rxSlot
}

// release drops one reference; the last one returns the slot to its
// reader. Safe for concurrent use.
func (s *rxSlot) release() {
	if s.refs.Add(-1) == 0 {
		s.free <- s // never blocks: the channel holds every slot the reader has
	}
}

// rxChunk is a run of complete frames (headers included) that arrived
// together, in a slot it holds a reference on; err, when set, is the read
// error that ended the stream, delivered after the frames before it.
type rxChunk struct {
	b    []byte
	slot *rxSlot
	err  error
}

// release gives the chunk's bytes back to the reader; b must not be used
// afterwards.
func (c *rxChunk) release() {
	if c.slot != nil {
		c.slot.release()
		c.slot = nil
	}
}

// nextFrame splits the first frame off b, a non-empty rxChunk.b or rest
// of one, and returns its body (aliasing b) and the frames after it.
func nextFrame(b []byte) (body, rest []byte) {
	// Every header was checked by the frameReader that made the chunk.
	n := proto.FrameHeaderSize + int(binary.LittleEndian.Uint32(b))
	return b[proto.FrameHeaderSize:n:n], b[n:]
}

// frameReader reads proto frames (u32 LE length, then the body) from a
// connection straight into a few reusable slots, so that what it returns
// can be handed to another goroutine without a copy: one goroutine reads
// the socket while another decrypts and dispatches what came before.
//
// A slot is read into until the next frame does not fit in what is left;
// that frame's received part moves to the next slot (at most once per
// slot), or, when nothing in the slot is still referenced, to the front of
// the same slot. While large frames flow, reads stop at the boundary after
// as many frames of the size of the last one as fit, and the reader moves
// to the next slot at a boundary where no such frame fits any more, so
// that little is moved: a client behind a fast server fills whole slots
// at every read, and without this about a quarter of the bytes of 256 KiB
// frames in 1 MiB slots were copied a second time. Memory is bounded by rxMaxSlots slots of at most
// rxSlotMax bytes, or of the largest frame when one is larger; reading
// waits for a release when all slots are taken. In steady state nothing
// is allocated. The length prefix is checked against the maximum before
// any buffer is sized for it.
//
// ReadFrame and readChunk must be called from one goroutine at a time;
// chunks may be released from any goroutine.
type frameReader struct {
	rd   io.Reader
	max  int             // largest frame body accepted
	dead <-chan struct{} // closed when the connection dies: stop waiting for a slot

	free  chan *rxSlot // released slots
	slots int          // slots allocated and not dropped
	size  int          // size of the next slot allocated

	cur     *rxSlot // slot being read into (holds one reference)
	r, w    int     // cur.buf[r:w] is received and not yet returned
	off     int64   // stream offset of cur.buf[r]
	pending error   // read error that came with data, returned once that data is used
	last    *rxSlot // ReadFrame: slot of the frame returned last
	expect  int     // size (header included) of the last complete frame: the guess for the next
	moved   int64   // bytes of partial frames moved between slots (a statistic, for tests)
}

func newFrameReader(rd io.Reader, maxFrame int, dead <-chan struct{}) *frameReader {
	if maxFrame <= 0 {
		maxFrame = proto.DefaultMaxFrameSize
	}
	return &frameReader{rd: rd, max: maxFrame, dead: dead, free: make(chan *rxSlot, rxMaxSlots), size: rxSlotMin}
}

// MaxFrameSize returns the largest frame body accepted.
func (fr *frameReader) MaxFrameSize() int { return fr.max }

// ReadFrame reads the next frame and returns its body, valid until the
// next ReadFrame or readChunk. Errors are those of [proto.FrameReader]:
// io.EOF between frames, a *proto.FrameError (wrapping
// proto.ErrUnexpectedEOF inside a frame, or the reader's error), a
// *proto.FrameTooLargeError (sticky). After a read error, such as a
// deadline, the bytes received stay buffered and the next call resumes.
func (fr *frameReader) ReadFrame() ([]byte, error) {
	if fr.last != nil {
		fr.last.release()
		fr.last = nil
	}
	n, err := fr.fill()
	if err != nil {
		return nil, err
	}
	body := fr.cur.buf[fr.r+proto.FrameHeaderSize : fr.r+n : fr.r+n]
	fr.expect = n
	fr.r += n
	fr.off += int64(n)
	fr.cur.refs.Add(1)
	fr.last = fr.cur
	return body, nil
}

// readChunk waits for at least one complete frame and returns every
// complete frame received so far as one chunk, which the caller must
// release. Errors are those of ReadFrame, and errReaderStopped.
func (fr *frameReader) readChunk() (rxChunk, error) {
	if fr.last != nil {
		fr.last.release()
		fr.last = nil
	}
	n, err := fr.fill()
	if err != nil {
		return rxChunk{}, err
	}
	buf := fr.cur.buf
	start, end := fr.r, fr.r+n
	for fr.w-end >= proto.FrameHeaderSize {
		size := binary.LittleEndian.Uint32(buf[end:])
		if uint64(size) > uint64(fr.max) || uint64(fr.w-end-proto.FrameHeaderSize) < uint64(size) {
			break // too large (reported by the next fill) or incomplete
		}
		n = proto.FrameHeaderSize + int(size)
		end += n
	}
	fr.expect = n
	fr.r = end
	fr.off += int64(end - start)
	fr.cur.refs.Add(1)
	return rxChunk{b: buf[start:end:end], slot: fr.cur}, nil
}

// fill makes sure a complete frame starts at cur.buf[r:] and returns its
// size, header included.
func (fr *frameReader) fill() (int, error) {
	empty := 0
	for {
		need := proto.FrameHeaderSize
		if fr.cur != nil && fr.w-fr.r >= proto.FrameHeaderSize {
			size := binary.LittleEndian.Uint32(fr.cur.buf[fr.r:])
			if uint64(size) > uint64(fr.max) {
				return 0, &proto.FrameTooLargeError{Size: int64(size), Max: fr.max, Offset: fr.off}
			}
			need += int(size)
			if fr.w-fr.r >= need {
				return need, nil
			}
		}
		op := "read body"
		if need == proto.FrameHeaderSize {
			op = "read header"
		}
		if fr.pending != nil {
			err := fr.pending
			fr.pending = nil
			return 0, fr.readErr(err, op)
		}
		if fr.cur == nil || fr.r+need > len(fr.cur.buf) ||
			(need == proto.FrameHeaderSize && len(fr.cur.buf)-fr.r < fr.minRoom()) {
			if err := fr.switchSlot(need); err != nil {
				return 0, err
			}
		}
		end := fr.readEnd(need)
		n, err := fr.rd.Read(fr.cur.buf[fr.w:end])
		if n < 0 || n > end-fr.w {
			return 0, &proto.FrameError{Op: op, Offset: fr.off, Err: errors.New("client: reader returned an invalid count")}
		}
		fr.w += n
		if err != nil {
			if n > 0 {
				fr.pending = err // after the frames that came with it
				continue
			}
			return 0, fr.readErr(err, op)
		}
		if n == 0 {
			if empty++; empty >= rxMaxEmptyReads {
				return 0, &proto.FrameError{Op: op, Offset: fr.off, Err: io.ErrNoProgress}
			}
		} else {
			empty = 0
		}
	}
}

// minRoom is the room a slot must have left at a frame boundary to be
// read into further: rxMinRoom, or a frame of the expected size when that
// is larger and fits in the slot.
func (fr *frameReader) minRoom() int {
	if fr.expect > rxMinRoom && fr.expect <= len(fr.cur.buf) {
		return fr.expect
	}
	return rxMinRoom
}

// readEnd returns where the next read into cur.buf must stop: the end of
// the slot, or, while frames larger than rxMinRoom flow, the end of as
// many frames of the expected size as fit after the current frame (after
// its end when its header has arrived, else after its start), so that the
// slot does not end with the start of a frame too large for what is left.
// The current frame is incomplete (need > w-r) and at a boundary minRoom
// is left, so the result is past w.
func (fr *frameReader) readEnd(need int) int {
	end, e := len(fr.cur.buf), fr.expect
	if e <= rxMinRoom || e > end {
		return end
	}
	base := fr.r
	if need > proto.FrameHeaderSize {
		base += need
	}
	if base >= end {
		return end // a frame larger than the slot, read into it as it grows
	}
	return base + (end-base)/e*e
}

// switchSlot makes room for a frame of need bytes (header included) at
// cur.buf[r:], moving its received part cur.buf[r:w] to the front of the
// current slot if nothing else uses it, or to another slot. Room for a
// frame larger than rxSlotMax grows with what has arrived of it (at most
// doubling), so a peer that announces a large frame and sends nothing
// does not make the reader allocate it.
func (fr *frameReader) switchSlot(need int) error {
	if need > rxSlotMax {
		need = min(need, max(rxSlotMax, 2*(fr.w-fr.r)))
	}
	old := fr.cur
	fr.moved += int64(fr.w - fr.r)
	if old != nil && old.refs.Load() == 1 && need <= len(old.buf) {
		fr.w = copy(old.buf, old.buf[fr.r:fr.w])
		fr.r = 0
		return nil
	}
	s, err := fr.getSlot(need)
	if err != nil {
		return err
	}
	w := 0
	if old != nil {
		w = copy(s.buf, old.buf[fr.r:fr.w])
		old.release()
	}
	fr.r, fr.w = 0, w
	fr.cur = s
	return nil
}

// getSlot returns a slot of at least need bytes holding one reference:
// a released one, a new one while fewer than rxMaxSlots exist, or else
// the next one released (it waits, until the connection dies).
func (fr *frameReader) getSlot(need int) (*rxSlot, error) {
	if need > fr.size && fr.size < rxSlotMax {
		fr.size = min(max(4*need, 2*fr.size), rxSlotMax)
	}
	for {
		var s *rxSlot
		select {
		case s = <-fr.free:
		default:
			if fr.slots < rxMaxSlots {
				fr.slots++
				s = &rxSlot{buf: newSlotBuf(max(fr.size, need)), free: fr.free}
				s.refs.Store(1)
				return s, nil
			}
			select {
			case s = <-fr.free:
			case <-fr.dead:
				return nil, errReaderStopped
			}
		}
		n := len(s.buf)
		if n >= need && n >= fr.size && (n <= rxSlotMax || need > rxSlotMax) {
			s.refs.Store(1)
			return s, nil
		}
		fr.slots-- // too small now, or a large frame's slot no longer needed
	}
}

// release gives the buffers of the slots that nothing references any more
// back to rxBufs: the current slot unless a chunk still holds it, and the
// released ones. A slot still held by a chunk (one handed to a goroutine
// that ended without releasing it) is left to the garbage collector, so a
// buffer is pooled only when no chunk of this connection can alias it.
// Called once nothing reads through fr any more (the connection's
// goroutines have ended, or never started); fr must not be used
// afterwards.
func (fr *frameReader) release() {
	if fr.last != nil {
		fr.last.release()
		fr.last = nil
	}
	if fr.cur != nil {
		if fr.cur.refs.Add(-1) == 0 {
			putSlotBuf(fr.cur)
		}
		fr.cur = nil
	}
	for {
		select {
		case s := <-fr.free:
			putSlotBuf(s)
		default:
			return
		}
	}
}

func (fr *frameReader) readErr(err error, op string) error {
	if err == io.EOF {
		if fr.cur == nil || fr.w == fr.r {
			return io.EOF
		}
		err = proto.ErrUnexpectedEOF
	}
	return &proto.FrameError{Op: op, Offset: fr.off, Err: err}
}

// rawConn is the connection's unsealed frame stream: frames read by a
// frameReader, written through a proto.FrameWriter (which kex seals into
// in place).
type rawConn struct {
	*frameReader
	fw *proto.FrameWriter
}

func (c rawConn) WriteFrame(body []byte) error { return c.fw.WriteFrame(body) }
func (c rawConn) Flush() error                 { return c.fw.Flush() }
func (c rawConn) BeginFrame() []byte           { return c.fw.BeginFrame() }
func (c rawConn) EndFrame(buf []byte) error    { return c.fw.EndFrame(buf) }
func (c rawConn) MaxFrameSize() int            { return c.fw.MaxFrameSize() }

var _ proto.FrameConn = rawConn{}

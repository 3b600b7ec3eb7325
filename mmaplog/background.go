package mmaplog

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	crand "crypto/rand"

	"github.com/atedb/atedb/internal/vfs"
)

// background prepares the next segment file and writes sealed-segment
// indexes, off the writer's hot path. It is owned by the Log: started by
// Open, stopped by Close after the writer has exited.
//
// A preparation that fails (no space, no file descriptors, no permission)
// is retried with backoff until it succeeds or the log closes; on ENOSPC it
// first tries smaller files, down to the request's floor, so that a nearly
// full disk still gets a segment. Meanwhile err holds the last failure, so
// that the writer fails the appends that need the segment at once instead
// of waiting (see take).
type background struct {
	l      *Log
	reqc   chan prepReq  // ask for one preallocated file; at most one outstanding
	readyc chan prealloc // the prepared file
	failc  chan struct{} // signalled after each failed attempt (capacity 1)
	sealc  chan *segment // sealed segments whose index must be written
	stopc  chan struct{}
	donec  chan struct{}

	mu  sync.Mutex
	err error // the last attempt's error while the request is still failing
}

// prepReq asks for a segment file of size bytes, or, if space runs out, of
// at least floor bytes.
type prepReq struct{ size, floor int64 }

// prealloc is a segment file prepared under preallocName: allocated to full
// size, header written and fsynced.
type prealloc struct {
	f    vfs.File
	id   uint64
	size int64
}

// Backoff between failed preparations: it doubles from prepRetryMin up to
// prepRetryMax.
const (
	prepRetryMin = 10 * time.Millisecond
	prepRetryMax = 2 * time.Second
)

func newBackground(l *Log) *background {
	b := &background{
		l:      l,
		reqc:   make(chan prepReq, 1),
		readyc: make(chan prealloc, 1),
		failc:  make(chan struct{}, 1),
		sealc:  make(chan *segment, 64),
		stopc:  make(chan struct{}),
		donec:  make(chan struct{}),
	}
	go b.run()
	return b
}

func (b *background) run() {
	defer close(b.donec)
	for {
		select {
		case <-b.stopc:
			for {
				select {
				case s := <-b.sealc:
					b.l.writeIndex(s)
				default:
					return
				}
			}
		case s := <-b.sealc:
			b.l.writeIndex(s)
		case r := <-b.reqc:
			b.prepare(r)
		}
	}
}

// prepare makes the file asked for by r, retrying with backoff until it
// succeeds or the log closes.
func (b *background) prepare(r prepReq) {
	delay := prepRetryMin
	for attempt := 1; ; attempt++ {
		f, id, size, err := b.l.preallocateFit(r, b.stopc)
		if err == nil {
			b.setErr(nil)
			if attempt > 1 {
				b.l.log.Info("mmaplog: segment preparation recovered", "dir", b.l.dir, "attempts", attempt, "size", size)
			}
			b.readyc <- prealloc{f: f, id: id, size: size}
			return
		}
		if errors.Is(err, vfs.ErrStopped) {
			return
		}
		b.setErr(err)
		select {
		case b.failc <- struct{}{}:
		default:
		}
		if attempt == 1 || delay == prepRetryMax && attempt%16 == 0 {
			b.l.log.Warn("mmaplog: cannot prepare the next segment; appends that need it fail until it succeeds",
				"dir", b.l.dir, "size", r.size, "attempts", attempt, "retry_in", delay, "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-b.stopc:
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, prepRetryMax)
	}
}

func (b *background) setErr(err error) {
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
}

func (b *background) lastErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// request asks for the next segment file, of size bytes or, if space runs
// short, at least floor. The writer calls it at most once before each
// successful take, so at most one request is outstanding.
func (b *background) request(size, floor int64) { b.reqc <- prepReq{size: size, floor: floor} }

// take returns the file asked for by request. It waits while the
// preparation is in progress, but returns the last error at once while
// the preparation is failing (and being retried): an append must not wait
// for a disk to be cleaned up.
func (b *background) take() (prealloc, error) {
	for {
		select {
		case pa := <-b.readyc:
			return pa, nil
		default:
		}
		if err := b.lastErr(); err != nil {
			return prealloc{}, err
		}
		select {
		case pa := <-b.readyc:
			return pa, nil
		case <-b.failc:
		}
	}
}

// seal queues the index write of a sealed segment.
func (b *background) seal(s *segment) { b.sealc <- s }

// stop writes queued indexes, waits for the goroutine and discards an
// unused preallocated file.
func (b *background) stop() {
	close(b.stopc)
	<-b.donec
	select {
	case pa := <-b.readyc:
		pa.f.Close()
		b.l.fs.Remove(filepath.Join(b.l.dir, preallocName))
	default:
	}
}

// preallocateFit is preallocate of r.size bytes, then, while space runs
// out, of half as many, down to r.floor.
func (l *Log) preallocateFit(r prepReq, stop <-chan struct{}) (vfs.File, uint64, int64, error) {
	size := r.size
	for {
		f, id, err := l.preallocate(size, stop)
		if err == nil || !errors.Is(err, syscall.ENOSPC) || size <= r.floor {
			return f, id, size, err
		}
		l.log.Warn("mmaplog: no space for a segment; trying a smaller one", "dir", l.dir, "size", size, "err", err)
		size = max(size/2, r.floor)
	}
}

// preallocate creates preallocName with size bytes reserved (fallocate, so
// that running out of space shows here and not on the hot path), zero-filled
// and fsynced, with a fresh segment header. Zero-filling costs one extra
// write of the segment in the background but makes each later fdatasync
// cheaper: overwriting written blocks changes no file-system metadata, while
// the first write into fallocated (unwritten) extents must journal their
// conversion (measured on ext4 here: about 2x the fdatasync latency). The
// file's name is made durable by the rename that puts it in service.
//
// Closing stop (may be nil) abandons the work: Close does not wait for a
// segment that nobody will use.
func (l *Log) preallocate(size int64, stop <-chan struct{}) (vfs.File, uint64, error) {
	path := filepath.Join(l.dir, preallocName)
	f, err := l.fs.Create(path)
	if err != nil {
		return nil, 0, err
	}
	var rnd [8]byte
	crand.Read(rnd[:]) // never fails (crypto/rand panics rather than return an error)
	id := binary.LittleEndian.Uint64(rnd[:])
	var hdr [segHeaderSize]byte
	putSegmentHeader(hdr[:], id)
	err = f.Allocate(size)
	if err == nil {
		err = vfs.ZeroFill(f, segHeaderSize, size, stop)
	}
	if err == nil {
		_, err = f.WriteAt(hdr[:], 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		l.fs.Remove(path)
		return nil, 0, err
	}
	l.st.preallocs.Add(1)
	return f, id, nil
}

// writeIndex writes a sealed segment's index: temp file, fsync, rename,
// directory fsync. A failure only costs a rebuild at the next Open.
func (l *Log) writeIndex(s *segment) {
	s.mu.RLock()
	ix := &segIndex{
		id: s.id, end: s.end.Load(), count: s.count,
		firstOff: s.firstOff, lastOff: s.lastOff, firstTime: s.firstTime, lastTime: s.lastTime,
		entries: s.idx,
	}
	// Entries past end belong to writes that were never acknowledged.
	for len(ix.entries) > 0 && ix.entries[len(ix.entries)-1].pos >= ix.end {
		ix.entries = ix.entries[:len(ix.entries)-1]
	}
	b := encodeIndex(ix)
	s.mu.RUnlock()
	if err := l.writeFileAtomic(indexName(s.first), b); err != nil {
		l.log.Warn("mmaplog: write index failed; it will be rebuilt at next open", "dir", l.dir, "segment", s.name, "err", err)
	}
}

// writeFileAtomic makes name hold b durably: temp file, fsync, rename,
// directory fsync.
func (l *Log) writeFileAtomic(name string, b []byte) error {
	return vfs.CreateDurably(l.fs, l.dir, name, 0, b)
}

package mmaplog

import (
	"encoding/binary"
	"path/filepath"

	crand "crypto/rand"

	"github.com/atedb/atedb/internal/vfs"
)

// background prepares the next segment file and writes sealed-segment
// indexes, off the writer's hot path. It is owned by the Log: started by
// Open, stopped by Close after the writer has exited.
type background struct {
	l      *Log
	reqc   chan int64    // ask for one preallocated file of this size
	readyc chan prealloc // the prepared file; at most one outstanding
	sealc  chan *segment // sealed segments whose index must be written
	stopc  chan struct{}
	donec  chan struct{}
}

// prealloc is a segment file prepared under preallocName: allocated to full
// size, header written and fsynced.
type prealloc struct {
	f    vfs.File
	id   uint64
	size int64
	err  error
}

func newBackground(l *Log) *background {
	b := &background{
		l:      l,
		reqc:   make(chan int64, 1),
		readyc: make(chan prealloc, 1),
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
		case size := <-b.reqc:
			f, id, err := b.l.preallocate(size, b.stopc)
			b.readyc <- prealloc{f: f, id: id, size: size, err: err}
		}
	}
}

// request asks for the next segment file. The writer calls it at most once
// before each take, so at most one request is outstanding.
func (b *background) request(size int64) { b.reqc <- size }

// take waits for the file asked for by request.
func (b *background) take() prealloc { return <-b.readyc }

// seal queues the index write of a sealed segment.
func (b *background) seal(s *segment) { b.sealc <- s }

// stop writes queued indexes, waits for the goroutine and discards an
// unused preallocated file.
func (b *background) stop() {
	close(b.stopc)
	<-b.donec
	select {
	case pa := <-b.readyc:
		if pa.f != nil {
			pa.f.Close()
			b.l.fs.Remove(filepath.Join(b.l.dir, preallocName))
		}
	default:
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

package mmaplog

import (
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/atedb/atedb/internal/vfs"
)

// indexEntry locates one record: sparse index entries are kept every
// indexEvery bytes of a segment.
type indexEntry struct {
	offset uint64
	time   int64
	pos    int64
}

// segment is one segment file. first, name, id and size never change. end is
// the readable limit (segment header plus acknowledged records): the writer
// stores it before it advances the log's head, readers load it after.
type segment struct {
	first uint64
	name  string
	id    uint64
	size  int64 // file size: the capacity for records

	end atomic.Int64
	// verified is a position up to which every record is known to be
	// intact in the mapping, so readers skip its CRC: records this process
	// wrote and synced (set by the writer), scanned at Open, or already
	// checked by a cursor. It only grows, and never passes end.
	verified atomic.Int64

	mu        sync.RWMutex // guards the fields below
	idx       []indexEntry // sparse; may hold entries past end (not yet acknowledged)
	count     uint64       // acknowledged records
	firstOff  uint64
	lastOff   uint64
	firstTime int64
	lastTime  int64
	mm        vfs.Mapping
	data      []byte
	unmapped  bool
}

// bytes returns the read-only mapping of the whole segment, mapping it on
// first use. The slice stays valid until the log unmaps it (after Close, once
// no cursor holds a pin).
func (s *segment) bytes(fs vfs.FS, dir string) ([]byte, error) {
	s.mu.RLock()
	data, unmapped := s.data, s.unmapped
	s.mu.RUnlock()
	if data != nil {
		return data, nil
	}
	if unmapped {
		return nil, ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data != nil {
		return s.data, nil
	}
	if s.unmapped {
		return nil, ErrClosed
	}
	f, err := fs.Open(filepath.Join(dir, s.name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mm, err := f.Map(int(s.size))
	if err != nil {
		return nil, err
	}
	s.mm, s.data = mm, mm.Bytes()
	return s.data, nil
}

// markVerified raises s.verified to pos.
func (s *segment) markVerified(pos int64) {
	for {
		v := s.verified.Load()
		if pos <= v || s.verified.CompareAndSwap(v, pos) {
			return
		}
	}
}

func (s *segment) unmap() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unmapped = true
	s.data = nil
	if s.mm == nil {
		return nil
	}
	err := s.mm.Unmap()
	s.mm = nil
	return err
}

// stats returns the acknowledged record count and first/last offsets/times.
func (s *segment) stats() (count, firstOff, lastOff uint64, firstTime, lastTime int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.count, s.firstOff, s.lastOff, s.firstTime, s.lastTime
}

// seekOffset returns the position to start scanning from to find the first
// record with offset >= off, using only index entries below head.
func (s *segment) seekOffset(off, head uint64) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// last entry with entry.offset <= off
	i := sort.Search(len(s.idx), func(i int) bool { return s.idx[i].offset > off })
	if i == 0 {
		return segHeaderSize
	}
	e := s.idx[i-1]
	if e.offset >= head {
		return segHeaderSize // cannot happen for off < head; be safe
	}
	return e.pos
}

// seekTime returns the position to start scanning from to find the first
// record with time >= t, using only index entries below head.
func (s *segment) seekTime(t int64, head uint64) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// last entry with entry.time < t and entry.offset < head
	i := sort.Search(len(s.idx), func(i int) bool { return s.idx[i].time >= t || s.idx[i].offset >= head })
	if i == 0 {
		return segHeaderSize
	}
	return s.idx[i-1].pos
}

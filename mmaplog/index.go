package mmaplog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// segIndex is the content of a sealed segment's index file: a checksummed
// cache that is rebuilt from the segment whenever it is missing or invalid.
type segIndex struct {
	id        uint64 // segment ID from the segment header
	end       int64  // end of the last record
	count     uint64
	firstOff  uint64
	lastOff   uint64
	firstTime int64
	lastTime  int64
	entries   []indexEntry
}

var errBadIndex = errors.New("mmaplog: bad index file")

func encodeIndex(ix *segIndex) []byte {
	b := make([]byte, idxHeaderSize+idxEntrySize*len(ix.entries)+idxTrailer)
	copy(b, idxMagic)
	binary.LittleEndian.PutUint32(b[8:], idxVersion)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(ix.entries)))
	binary.LittleEndian.PutUint64(b[16:], ix.id)
	binary.LittleEndian.PutUint64(b[24:], uint64(ix.end))
	binary.LittleEndian.PutUint64(b[32:], ix.count)
	binary.LittleEndian.PutUint64(b[40:], ix.firstOff)
	binary.LittleEndian.PutUint64(b[48:], ix.lastOff)
	binary.LittleEndian.PutUint64(b[56:], uint64(ix.firstTime))
	binary.LittleEndian.PutUint64(b[64:], uint64(ix.lastTime))
	p := b[idxHeaderSize:]
	for _, e := range ix.entries {
		binary.LittleEndian.PutUint64(p[0:], e.offset)
		binary.LittleEndian.PutUint64(p[8:], uint64(e.time))
		binary.LittleEndian.PutUint64(p[16:], uint64(e.pos))
		p = p[idxEntrySize:]
	}
	n := len(b) - idxTrailer
	binary.LittleEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return b
}

// decodeIndex parses and validates an index file for a segment of the given
// size and ID whose first offset is first.
func decodeIndex(b []byte, id uint64, first uint64, segSize int64) (*segIndex, error) {
	if len(b) < idxHeaderSize+idxTrailer {
		return nil, fmt.Errorf("%w: %d bytes", errBadIndex, len(b))
	}
	if string(b[:8]) != idxMagic {
		return nil, fmt.Errorf("%w: magic", errBadIndex)
	}
	n := len(b) - idxTrailer
	if crc32.Checksum(b[:n], castagnoli) != binary.LittleEndian.Uint32(b[n:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", errBadIndex)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != idxVersion {
		return nil, fmt.Errorf("%w: version %d", errBadIndex, v)
	}
	cnt := int64(binary.LittleEndian.Uint32(b[12:]))
	if int64(idxHeaderSize)+cnt*idxEntrySize+idxTrailer != int64(len(b)) {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", errBadIndex, cnt, len(b))
	}
	ix := &segIndex{
		id:        binary.LittleEndian.Uint64(b[16:]),
		end:       int64(binary.LittleEndian.Uint64(b[24:])),
		count:     binary.LittleEndian.Uint64(b[32:]),
		firstOff:  binary.LittleEndian.Uint64(b[40:]),
		lastOff:   binary.LittleEndian.Uint64(b[48:]),
		firstTime: int64(binary.LittleEndian.Uint64(b[56:])),
		lastTime:  int64(binary.LittleEndian.Uint64(b[64:])),
	}
	switch {
	case ix.id != id:
		return nil, fmt.Errorf("%w: segment ID %#x, want %#x", errBadIndex, ix.id, id)
	case ix.end < segHeaderSize || ix.end > segSize:
		return nil, fmt.Errorf("%w: end %d outside segment of %d bytes", errBadIndex, ix.end, segSize)
	case ix.count == 0 && (cnt != 0 || ix.end != segHeaderSize):
		return nil, fmt.Errorf("%w: empty segment with data", errBadIndex)
	case ix.count > 0 && (ix.firstOff < first || ix.lastOff < ix.firstOff || ix.lastOff-ix.firstOff < ix.count-1 || cnt == 0):
		return nil, fmt.Errorf("%w: offsets %d..%d count %d", errBadIndex, ix.firstOff, ix.lastOff, ix.count)
	}
	ix.entries = make([]indexEntry, cnt)
	p := b[idxHeaderSize:]
	for i := range ix.entries {
		e := indexEntry{
			offset: binary.LittleEndian.Uint64(p[0:]),
			time:   int64(binary.LittleEndian.Uint64(p[8:])),
			pos:    int64(binary.LittleEndian.Uint64(p[16:])),
		}
		p = p[idxEntrySize:]
		if e.pos < segHeaderSize || e.pos >= ix.end || e.offset < ix.firstOff || e.offset > ix.lastOff ||
			(i > 0 && (e.pos <= ix.entries[i-1].pos || e.offset <= ix.entries[i-1].offset || e.time < ix.entries[i-1].time)) {
			return nil, fmt.Errorf("%w: entry %d out of order", errBadIndex, i)
		}
		ix.entries[i] = e
	}
	if ix.count > 0 && (ix.entries[0].pos != segHeaderSize || ix.entries[0].offset != ix.firstOff) {
		return nil, fmt.Errorf("%w: first entry", errBadIndex)
	}
	return ix, nil
}

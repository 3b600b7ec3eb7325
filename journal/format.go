package journal

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// These constants are part of the on-disk format; never change them.
// docs/STORAGE.md ("Commit journal") draws the layouts.
const (
	recHeaderSize = 56
	recAlign      = 8 // records start and end on 8-byte boundaries
	maxDirLen     = 4096
	ckptMagic     = "ATEDBJCK"
	ckptSize      = 24 // magic, generation, CRC, reserved
	ckptName      = "checkpoint"
	fileNameFmt   = "journal-%d"
	lockName      = "LOCK"
)

// castagnoli is built once at package init (CRC-32C, as mmaplog uses).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func recordCRC(rec []byte) uint32 {
	return crc32.Update(crc32.Checksum(rec[:4], castagnoli), castagnoli, rec[8:])
}

// journal record: length u32, CRC u32, generation u64, durable u64, file
// ID u64, file number u64, position u64, directory length u16,
// reserved u16, data length u32; then the directory (relative to the root)
// and the data, zero-padded to 8 bytes. The CRC covers the length field and
// every byte after the CRC field up to length.
type recHeader struct {
	length  uint32
	crc     uint32
	gen     uint64
	durable int64
	fileID  uint64
	num     uint64
	pos     int64
	dirLen  uint16
	dataLen uint32
}

func recSize(dirLen, dataLen int) int64 {
	return (int64(recHeaderSize+dirLen+dataLen) + recAlign - 1) &^ (recAlign - 1)
}

func appendRecord(dst []byte, h recHeader, dir string, data []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, recSize(len(dir), len(data)))...)
	r := dst[start:]
	h.dirLen, h.dataLen = uint16(len(dir)), uint32(len(data))
	h.length = uint32(recHeaderSize + len(dir) + len(data))
	binary.LittleEndian.PutUint32(r[0:], h.length)
	binary.LittleEndian.PutUint64(r[8:], h.gen)
	binary.LittleEndian.PutUint64(r[16:], uint64(h.durable))
	binary.LittleEndian.PutUint64(r[24:], h.fileID)
	binary.LittleEndian.PutUint64(r[32:], h.num)
	binary.LittleEndian.PutUint64(r[40:], uint64(h.pos))
	binary.LittleEndian.PutUint16(r[48:], h.dirLen)
	binary.LittleEndian.PutUint16(r[50:], 0)
	binary.LittleEndian.PutUint32(r[52:], h.dataLen)
	copy(r[recHeaderSize:], dir)
	copy(r[recHeaderSize+len(dir):], data)
	binary.LittleEndian.PutUint32(r[4:], recordCRC(r[:h.length]))
	return dst
}

// decodeRecord checks the record at b[pos:]; ok is false for
// anything that is not a whole, valid record (zeros included).
func decodeRecord(b []byte, pos int64) (h recHeader, dir, data []byte, size int64, ok bool) {
	if pos+recHeaderSize > int64(len(b)) {
		return h, nil, nil, 0, false
	}
	r := b[pos:]
	h = recHeader{
		length:  binary.LittleEndian.Uint32(r[0:]),
		crc:     binary.LittleEndian.Uint32(r[4:]),
		gen:     binary.LittleEndian.Uint64(r[8:]),
		durable: int64(binary.LittleEndian.Uint64(r[16:])),
		fileID:  binary.LittleEndian.Uint64(r[24:]),
		num:     binary.LittleEndian.Uint64(r[32:]),
		pos:     int64(binary.LittleEndian.Uint64(r[40:])),
		dirLen:  binary.LittleEndian.Uint16(r[48:]),
		dataLen: binary.LittleEndian.Uint32(r[52:]),
	}
	if h.gen == 0 || h.dirLen == 0 || h.dirLen > maxDirLen || binary.LittleEndian.Uint16(r[50:]) != 0 ||
		int64(h.length) != int64(recHeaderSize)+int64(h.dirLen)+int64(h.dataLen) {
		return h, nil, nil, 0, false
	}
	size = recSize(int(h.dirLen), int(h.dataLen))
	if pos+size > int64(len(b)) || recordCRC(r[:h.length]) != h.crc {
		return h, nil, nil, 0, false
	}
	if h.durable < 0 || h.durable > pos || h.pos <= 0 || h.pos > MaxFileSize {
		return h, nil, nil, 0, false
	}
	dir = r[recHeaderSize : recHeaderSize+int(h.dirLen)]
	data = r[recHeaderSize+int(h.dirLen) : h.length]
	return h, dir, data, size, true
}

// checkpoint file: magic[8] generation u64 CRC u32 reserved u32.
func putCheckpoint(b []byte, gen uint64) {
	copy(b, ckptMagic)
	binary.LittleEndian.PutUint64(b[8:], gen)
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	binary.LittleEndian.PutUint32(b[20:], 0)
}

func readCheckpoint(b []byte) (uint64, error) {
	if len(b) < ckptSize || string(b[:8]) != ckptMagic {
		return 0, errors.New("bad checkpoint magic")
	}
	if crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]) {
		return 0, errors.New("checkpoint checksum mismatch")
	}
	return binary.LittleEndian.Uint64(b[8:]), nil
}

package mmaplog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"

	"github.com/atedb/atedb/internal/vfs"
	"github.com/atedb/atedb/journal"
)

// These constants are part of the on-disk format; never change them.
// docs/STORAGE.md draws the layouts.
const (
	segMagic      = "ATEDBSEG" // first 8 bytes of every segment file
	segVersion    = 1
	segHeaderSize = 32 // magic, version, flags, segment ID, reserved, CRC

	recHeaderSize = 32 // length, CRC, offset, time, synced, type, flags, reserved
	recAlign      = 8  // records start and end on 8-byte boundaries

	// recTypeData is the type byte of a record; a header of 32 zero bytes
	// means "no record here" (preallocated space).
	recTypeData = 1
	// flagCommit marks the last record of an appended batch. Recovery keeps
	// only whole batches.
	flagCommit = 1 << 0

	idxMagic      = "ATEDBIDX"
	idxVersion    = 1
	idxHeaderSize = 72
	idxEntrySize  = 24 // offset, time, position
	idxTrailer    = 4  // CRC

	segSuffix = ".seg"
	idxSuffix = ".idx"
	tmpSuffix = vfs.TmpSuffix
	tornInfix = ".torn-"
	lockName  = "LOCK"
	// preallocName is the next segment being prepared in the background.
	preallocName = "prealloc" + tmpSuffix
	nameDigits   = 20 // decimal digits of a segment's first offset
)

// Limits derived from the format.
const (
	// MaxSegmentSize is the largest accepted Options.SegmentSize: positions
	// inside a segment are stored as u32 in the synced field.
	MaxSegmentSize = 1 << 30
	// MinSegmentSize is the smallest accepted Options.SegmentSize.
	MinSegmentSize = 4 << 10
	// firstSegmentSize is the size of a new log's first segment; each next
	// segment doubles, up to Options.SegmentSize, so that small logs use
	// small files.
	firstSegmentSize = 1 << 20
	// indexEvery is the spacing in bytes of sparse index entries.
	indexEvery = 64 << 10
)

// castagnoli is built once at package init: lazy table construction inside
// hot paths could race with other crc32 users (Prometheus wlog).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordSize returns the bytes a record with an n-byte payload occupies.
func recordSize(n int) int64 {
	return (int64(recHeaderSize) + int64(n) + recAlign - 1) &^ (recAlign - 1)
}

// recordHeader is the decoded fixed part of a record.
type recordHeader struct {
	length uint32
	crc    uint32
	offset uint64
	time   int64
	synced uint32
	kind   uint8
	flags  uint8
}

func putRecordHeader(b []byte, h recordHeader) {
	_ = b[recHeaderSize-1]
	binary.LittleEndian.PutUint32(b[0:], h.length)
	binary.LittleEndian.PutUint32(b[4:], h.crc)
	binary.LittleEndian.PutUint64(b[8:], h.offset)
	binary.LittleEndian.PutUint64(b[16:], uint64(h.time))
	binary.LittleEndian.PutUint32(b[24:], h.synced)
	b[28] = h.kind
	b[29] = h.flags
	binary.LittleEndian.PutUint16(b[30:], 0)
}

func readRecordHeader(b []byte) recordHeader {
	_ = b[recHeaderSize-1]
	return recordHeader{
		length: binary.LittleEndian.Uint32(b[0:]),
		crc:    binary.LittleEndian.Uint32(b[4:]),
		offset: binary.LittleEndian.Uint64(b[8:]),
		time:   int64(binary.LittleEndian.Uint64(b[16:])),
		synced: binary.LittleEndian.Uint32(b[24:]),
		kind:   b[28],
		flags:  b[29],
	}
}

// appendRecord appends one encoded record (header, payload, zero padding)
// to dst.
func appendRecord(dst []byte, off uint64, time int64, synced uint32, flags uint8, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, recordSize(len(payload)))...)
	rec := dst[start:]
	h := recordHeader{length: uint32(len(payload)), offset: off, time: time, synced: synced, kind: recTypeData, flags: flags}
	putRecordHeader(rec, h)
	copy(rec[recHeaderSize:], payload)
	h.crc = recordCRC(rec[:recHeaderSize+len(payload)])
	putRecordHeader(rec, h)
	return dst
}

// recordCRC computes the CRC of a record whose header and payload are
// rec[:recHeaderSize+length]: it covers the length field and every byte
// after the CRC field.
func recordCRC(rec []byte) uint32 {
	c := crc32.Update(0, castagnoli, rec[0:4])
	return crc32.Update(c, castagnoli, rec[8:])
}

// recordStatus says why a position does not hold a valid record.
type recordStatus int

const (
	recOK        recordStatus = iota
	recEmpty                  // length 0: no record here (preallocated space)
	recTruncated              // header or payload runs past the end of the data
	recBadLength              // length above the maximum record size
	recBadCRC                 // checksum mismatch
	recBadField               // reserved bits set or synced beyond the record
)

var recordStatusText = [...]string{"ok", "empty", "truncated record", "bad length", "checksum mismatch", "bad header field"}

func (s recordStatus) String() string {
	if int(s) < len(recordStatusText) {
		return recordStatusText[s]
	}
	return "recordStatus(" + strconv.Itoa(int(s)) + ")"
}

// decodeRecord checks the record at data[pos:] and returns its header and
// total size. It never reads outside data and never allocates.
func decodeRecord(data []byte, pos int64, maxRecord int) (recordHeader, int64, recordStatus) {
	return decodeRecordCRC(data, pos, maxRecord, true)
}

// decodeRecordCRC is decodeRecord that checks the CRC only if checkCRC is
// set: for records known to be intact (segment.verified), every other
// check still runs, so a bad length can never send a read out of data.
func decodeRecordCRC(data []byte, pos int64, maxRecord int, checkCRC bool) (recordHeader, int64, recordStatus) {
	if pos+recHeaderSize > int64(len(data)) {
		if pos >= int64(len(data)) || allZero(data[pos:]) {
			return recordHeader{}, 0, recEmpty
		}
		return recordHeader{}, 0, recTruncated
	}
	h := readRecordHeader(data[pos:])
	if h.kind == 0 && allZero(data[pos:pos+recHeaderSize]) {
		return h, 0, recEmpty
	}
	if int64(h.length) > int64(maxRecord) {
		return h, 0, recBadLength
	}
	size := recordSize(int(h.length))
	if pos+size > int64(len(data)) {
		return h, 0, recTruncated
	}
	if checkCRC && recordCRC(data[pos:pos+recHeaderSize+int64(h.length)]) != h.crc {
		return h, 0, recBadCRC
	}
	if h.kind != recTypeData || h.flags&^flagCommit != 0 || int64(h.synced) > pos || binary.LittleEndian.Uint16(data[pos+30:]) != 0 {
		return h, 0, recBadField
	}
	return h, size, recOK
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// segment header: magic[8] version u32 flags u32 id u64 reserved u32 crc u32.
func putSegmentHeader(b []byte, id uint64) {
	_ = b[segHeaderSize-1]
	copy(b, segMagic)
	binary.LittleEndian.PutUint32(b[8:], segVersion)
	binary.LittleEndian.PutUint32(b[12:], 0)
	binary.LittleEndian.PutUint64(b[16:], id)
	binary.LittleEndian.PutUint32(b[24:], 0)
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
}

func readSegmentHeader(b []byte) (id uint64, err error) {
	if len(b) < segHeaderSize {
		return 0, fmt.Errorf("short segment header (%d bytes)", len(b))
	}
	if string(b[:8]) != segMagic {
		return 0, fmt.Errorf("bad segment magic %q", b[:8])
	}
	if crc32.Checksum(b[:28], castagnoli) != binary.LittleEndian.Uint32(b[28:]) {
		return 0, fmt.Errorf("segment header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != segVersion {
		return 0, fmt.Errorf("unsupported segment version %d", v)
	}
	return binary.LittleEndian.Uint64(b[16:]), nil
}

func segmentName(first uint64) string {
	return fmt.Sprintf("%0*d%s", nameDigits, first, segSuffix)
}

func indexName(first uint64) string {
	return fmt.Sprintf("%0*d%s", nameDigits, first, idxSuffix)
}

// parseSegmentName returns the first offset encoded in a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != nameDigits {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(digits, 10, 64)
	return v, err == nil
}

// SegmentFiles tells the commit journal (package journal) how a log's
// segments are named and identified: a journal record names a segment by
// its first offset and the ID in its header, and replay redoes a write only
// into the segment that carries that ID. The zero value is ready to use.
type SegmentFiles struct{}

var _ journal.Files = SegmentFiles{}

// Name returns the file name of the segment whose first offset is first.
func (SegmentFiles) Name(first uint64) string { return segmentName(first) }

// ID reads the ID in the header of segment file f.
func (SegmentFiles) ID(f vfs.File) (uint64, error) {
	var hdr [segHeaderSize]byte
	k, rerr := f.ReadAt(hdr[:], 0)
	id, err := readSegmentHeader(hdr[:k])
	if err != nil {
		if rerr != nil {
			return 0, fmt.Errorf("%v (read: %w)", err, rerr)
		}
		return 0, err
	}
	return id, nil
}

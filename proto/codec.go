package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// Decode error sentinels, matched with errors.Is against a [*DecodeError].
var (
	// ErrTruncated: the input ends before a field does.
	ErrTruncated = errors.New("proto: truncated")
	// ErrNonCanonical: the input decodes, but is not the one canonical
	// encoding of its value (overlong varint, fields out of order or
	// repeated, explicit default value, unsorted set, trailing bytes...).
	ErrNonCanonical = errors.New("proto: non-canonical encoding")
	// ErrInvalid: a field holds a value outside its domain (unknown enum
	// value, bad key length, varint overflow, count larger than the input).
	ErrInvalid = errors.New("proto: invalid value")
	// ErrUnknownMessage: the message type byte is not one this version defines.
	ErrUnknownMessage = errors.New("proto: unknown message type")
	// ErrUnsupportedVersion: a protocol or event-encoding version this code
	// does not speak.
	ErrUnsupportedVersion = errors.New("proto: unsupported version")
)

// DecodeError reports why and where an input failed to decode. Msg names
// the message or structure ("Append", "event"), Field the field being read
// ("commit id", "signatures[2].signature"), Offset the byte offset of that
// field within the decoded input (the frame body or the encoded event).
// Unwrap returns one of the sentinels above.
type DecodeError struct {
	Msg    string
	Field  string
	Offset int
	Err    error
	Detail string // optional human detail, e.g. "type 0x7f" or "count 9 > 3 remaining bytes"
}

// Error describes the error.
func (e *DecodeError) Error() string {
	s := fmt.Sprintf("%v: %s.%s at byte %d", e.Err, e.Msg, e.Field, e.Offset)
	if e.Field == "" {
		s = fmt.Sprintf("%v: %s at byte %d", e.Err, e.Msg, e.Offset)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

// EncodeError reports a value that has no valid encoding (for example an
// unsorted key set or a key of the wrong length for its type). Encoders
// refuse such values instead of producing bytes a decoder would reject.
type EncodeError struct {
	Msg    string
	Field  string
	Reason string
}

// Error describes the error.
func (e *EncodeError) Error() string {
	return fmt.Sprintf("proto: cannot encode %s.%s: %s", e.Msg, e.Field, e.Reason)
}

// Limits on variable-length fields; part of the wire format.
const (
	// MaxStringLen bounds the route, chain keys and reason strings.
	MaxStringLen = 4096
	// MaxChannel is the largest channel number.
	MaxChannel = math.MaxUint32
)

// decoder reads canonical fields from b. The first error is kept and every
// later read returns zero values, so callers check d.err once at the end
// (or at branch points). A decoder lives on the stack: no allocation
// unless an error is reported.
type decoder struct {
	b   []byte
	off int
	msg string
	err error
}

func (d *decoder) fail(field string, err error, detail string) {
	if d.err == nil {
		d.err = &DecodeError{Msg: d.msg, Field: field, Offset: d.off, Err: err, Detail: detail}
	}
}

func (d *decoder) failf(field string, err error, format string, args ...any) {
	if d.err == nil {
		d.fail(field, err, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

// done checks that nothing follows the last field.
func (d *decoder) done() error {
	if d.err == nil && d.off != len(d.b) {
		d.failf("", ErrNonCanonical, "%d trailing bytes", len(d.b)-d.off)
	}
	return d.err
}

func (d *decoder) byte1(field string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail(field, ErrTruncated, "")
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	// Fast path: one byte.
	if d.off < len(d.b) && d.b[d.off] < 0x80 {
		v := d.b[d.off]
		d.off++
		return uint64(v)
	}
	v, n := binary.Uvarint(d.b[d.off:])
	switch {
	case n == 0:
		d.fail(field, ErrTruncated, "")
		return 0
	case n < 0:
		d.fail(field, ErrInvalid, "varint overflows 64 bits")
		return 0
	case d.b[d.off+n-1] == 0:
		d.fail(field, ErrNonCanonical, "overlong varint")
		return 0
	}
	d.off += n
	return v
}

// uvarintMax reads a uvarint and checks it is at most limit.
func (d *decoder) uvarintMax(field string, limit uint64) uint64 {
	start := d.off
	v := d.uvarint(field)
	if d.err == nil && v > limit {
		d.off = start
		d.failf(field, ErrInvalid, "%d exceeds the limit %d", v, limit)
		return 0
	}
	return v
}

func (d *decoder) channel() uint32 {
	return uint32(d.uvarintMax("channel", MaxChannel))
}

func (d *decoder) u64(field string) uint64 {
	if d.err != nil {
		return 0
	}
	if d.remaining() < 8 {
		d.fail(field, ErrTruncated, "")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

// fixed returns the next n bytes, aliasing the input.
func (d *decoder) fixed(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || d.remaining() < n {
		d.fail(field, ErrTruncated, "")
		return nil
	}
	v := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return v
}

// bytes reads a uvarint length and that many bytes (aliasing the input).
func (d *decoder) bytes(field string, limit int) []byte {
	if d.err != nil {
		return nil
	}
	start := d.off
	n := d.uvarint(field)
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) {
		d.off = start
		d.failf(field, ErrInvalid, "length %d exceeds the limit %d", n, limit)
		return nil
	}
	if n > uint64(d.remaining()) {
		d.off = start
		d.failf(field, ErrTruncated, "length %d, %d bytes left", n, d.remaining())
		return nil
	}
	return d.fixed(field, int(n))
}

// str reads a UTF-8 string field of at most MaxStringLen bytes.
func (d *decoder) str(field string) string {
	start := d.off
	b := d.bytes(field, MaxStringLen)
	if d.err != nil {
		return ""
	}
	if !utf8.Valid(b) {
		d.off = start
		d.fail(field, ErrInvalid, "not valid UTF-8")
		return ""
	}
	return string(b)
}

// count reads a uvarint element count and checks that count*minSize bytes
// remain, so a hostile count cannot make the caller allocate.
func (d *decoder) count(field string, minSize int) int {
	start := d.off
	n := d.uvarint(field)
	if d.err != nil {
		return 0
	}
	if n > uint64(d.remaining()/minSize) {
		d.off = start
		d.failf(field, ErrInvalid, "count %d cannot fit in %d remaining bytes", n, d.remaining())
		return 0
	}
	return int(n)
}

// countMax is count with an absolute upper limit.
func (d *decoder) countMax(field string, minSize, limit int) int {
	start := d.off
	n := d.count(field, minSize)
	if d.err == nil && n > limit {
		d.off = start
		d.failf(field, ErrInvalid, "count %d exceeds the limit %d", n, limit)
		return 0
	}
	return n
}

// code decodes an error code. Codes are open-ended (PROTOCOL.md §4): one
// this version does not define is kept as it is (its String is
// "ErrorCode(n)"), so that a peer's newer code fails the request it
// answers instead of the whole message; only values beyond u16 are
// malformed.
func (d *decoder) code(field string) ErrorCode {
	start := d.off
	v := d.uvarint(field)
	if d.err == nil && v > math.MaxUint16 {
		d.off = start
		d.failf(field, ErrInvalid, "error code %d beyond u16", v)
		return 0
	}
	return ErrorCode(v)
}

// grow returns s with room for n more elements, allocating exactly once if
// needed. Callers pass counts already checked against the remaining input
// (see decoder.count), so n is bounded by the input size.
func grow[T any](s []T, n int) []T {
	if cap(s)-len(s) < n {
		ns := make([]T, len(s), len(s)+n)
		copy(ns, s)
		return ns
	}
	return s
}

// Encoding helpers. Appending never fails; validation happens before.

func appendUvarint(dst []byte, v uint64) []byte {
	if v < 0x80 {
		return append(dst, byte(v))
	}
	return binary.AppendUvarint(dst, v)
}

func appendBytes(dst, b []byte) []byte {
	dst = appendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func appendString(dst []byte, s string) []byte {
	dst = appendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendU64(dst []byte, v uint64) []byte {
	return binary.LittleEndian.AppendUint64(dst, v)
}

func checkString(msg, field, s string) error {
	if len(s) > MaxStringLen {
		return &EncodeError{Msg: msg, Field: field, Reason: fmt.Sprintf("%d bytes, limit %d", len(s), MaxStringLen)}
	}
	if !utf8.ValidString(s) {
		return &EncodeError{Msg: msg, Field: field, Reason: "not valid UTF-8"}
	}
	return nil
}

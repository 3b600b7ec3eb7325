package mmaplog

import (
	"errors"
	"fmt"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrClosed is returned by operations on a closed Log or Cursor.
	ErrClosed = errors.New("mmaplog: log closed")
	// ErrEmptyBatch is returned by Append and AppendAsync for a batch with no
	// records.
	ErrEmptyBatch = errors.New("mmaplog: empty batch")
	// ErrRecordTooLarge is returned (wrapped, with the record's index and
	// size) for a payload larger than Options.MaxRecordSize.
	ErrRecordTooLarge = errors.New("mmaplog: record too large")
	// ErrBatchTooLarge is returned (wrapped) for a batch that cannot fit in
	// one segment.
	ErrBatchTooLarge = errors.New("mmaplog: batch too large for a segment")
	// ErrCorrupt is wrapped by every *CorruptionError.
	ErrCorrupt = errors.New("mmaplog: corrupt log")
	// ErrInvalidOptions is wrapped by Open for a bad Options value.
	ErrInvalidOptions = errors.New("mmaplog: invalid options")
)

// CorruptionError reports damaged data that is not a torn tail: a bad record
// or header in the middle of the log, a bad segment header, or segments that
// do not follow each other. It wraps [ErrCorrupt].
type CorruptionError struct {
	Dir     string // log directory
	Segment string // segment file name
	Pos     int64  // byte position of the damage inside the segment
	Offset  uint64 // offset of the first record that could not be read
	Reason  string
}

// Error describes the damage with the directory, segment, position and offset.
func (e *CorruptionError) Error() string {
	return fmt.Sprintf("mmaplog: corrupt log %s: segment %s position %d (record offset %d): %s",
		e.Dir, e.Segment, e.Pos, e.Offset, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

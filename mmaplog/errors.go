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
	// ErrUnavailable is wrapped by every *UnavailableError: the append
	// failed for a cause that may go away (no space, no file descriptors,
	// no permission), nothing of it was stored and the log is not
	// poisoned, so the same append may succeed later.
	ErrUnavailable = errors.New("mmaplog: log temporarily unavailable")
)

// UnavailableError reports that the batches that needed a new segment
// failed because it could not be prepared: the file could not be created,
// reserved, zero-filled or put in place (ENOSPC, EMFILE, EACCES...). Nothing
// of those batches, nor of the batches queued after them, was written; their
// offsets are assigned again to later appends. The log is not poisoned: the
// preparation is retried in the background with backoff, and appends that
// fit the active segment, and all of them once a segment is ready, succeed
// again without reopening the log. It matches [ErrUnavailable] and the
// cause (errors.Is(err, syscall.ENOSPC)).
type UnavailableError struct {
	Dir     string // log directory
	Segment string // the segment file that could not be prepared
	Err     error  // the cause
}

// Error names the log, the segment and the cause.
func (e *UnavailableError) Error() string {
	return fmt.Sprintf("mmaplog: log %s temporarily unavailable: cannot prepare segment %s (retrying in the background): %v",
		e.Dir, e.Segment, e.Err)
}

// Unwrap returns ErrUnavailable and the cause.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// Temporary reports true: retrying the append later may succeed. Callers
// that do not import mmaplog (chain) test for this method.
func (e *UnavailableError) Temporary() bool { return true }

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

package mmaplog

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/atedb/atedb/internal/vfs"
	"github.com/atedb/atedb/journal"
)

// SyncMode says when an append is acknowledged.
type SyncMode int

const (
	// SyncAlways acknowledges a batch only after fdatasync returned: an
	// acknowledged record survives a power loss. The default.
	SyncAlways SyncMode = iota
	// SyncInterval acknowledges a batch once written to the file (so it
	// survives a process crash) and calls fdatasync every SyncInterval: a
	// power loss can lose what was acknowledged in the last interval, and
	// the offsets of lost records are assigned again after recovery.
	SyncInterval
)

// String returns "always" or "interval", the names the command line uses.
func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	}
	return "SyncMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseSyncMode parses "always" or "interval".
func ParseSyncMode(s string) (SyncMode, error) {
	switch s {
	case "always":
		return SyncAlways, nil
	case "interval":
		return SyncInterval, nil
	}
	return 0, fmt.Errorf("%w: sync mode %q (want always or interval)", ErrInvalidOptions, s)
}

// Defaults for zero Options fields.
const (
	DefaultSegmentSize   = 64 << 20
	DefaultMaxRecordSize = 8 << 20
	DefaultSyncInterval  = 10 * time.Millisecond
	// DefaultCursorBatch is how many records Cursor.Next returns at most when
	// dst has no spare capacity.
	DefaultCursorBatch = 256
)

// Options configures Open. The zero value is valid and gives the defaults.
type Options struct {
	// SegmentSize is the maximum size of a segment file; a record (and a
	// batch) never spans two segments. A new log's first segment is 1 MiB
	// (or SegmentSize if smaller) and each next one doubles up to
	// SegmentSize, so small logs use little disk. Default 64 MiB; between
	// MinSegmentSize and MaxSegmentSize, and at least one maximum-size record
	// plus headers.
	SegmentSize int64
	// MaxRecordSize caps a payload; longer payloads are refused before any
	// allocation, on append and on read. Default 8 MiB.
	MaxRecordSize int
	// Sync chooses when appends are acknowledged. Default SyncAlways.
	Sync SyncMode
	// SyncInterval is the fdatasync period for SyncInterval mode.
	// Default 10 ms; ignored (and must be zero or positive) otherwise.
	SyncInterval time.Duration
	// FS is the file system; nil means the operating system's.
	FS vfs.FS
	// Logger receives repairs, slow syncs and failures; nil discards.
	Logger *slog.Logger
	// OpenCorrupt makes Open return a read-only *Log along with a
	// *CorruptionError, so that the records before the damage can be read;
	// by default Open returns only the error.
	OpenCorrupt bool
	// RepairBelowMark makes Open accept a log whose records end below its
	// head mark (offsets that were acknowledged, then lost: a segment
	// removed or cut while the log was closed or running). The loss is
	// logged, naming the mark and the segments, the log continues from
	// where its records end (those offsets are assigned again), and the
	// mark is removed. By default Open refuses such a log with a
	// *CorruptionError and changes nothing.
	RepairBelowMark bool
	// Journal, if not nil, is the commit journal of the logs under its
	// root (package journal): in SyncAlways mode, groups are made durable
	// by the journal's shared fdatasync instead of one fdatasync per log.
	// The log's directory must be inside the journal's root and FS must be
	// the journal's. Without it, every group commit syncs its own segment.
	// Whoever opens a log must have replayed the journal of its root first
	// (package store does).
	Journal *journal.Journal
	// RootLocked says that the caller holds an exclusive lock covering the
	// log's directory (the storage root's, package store): Open then takes
	// no LOCK file of its own, and the log holds one file descriptor
	// fewer. Without it Open locks the directory's LOCK file.
	RootLocked bool
	// Now is the server clock stamped on records; nil means time.Now. Stamps
	// are clamped so that they never decrease along the log.
	Now func() time.Time
}

// Check reports whether o is valid, as Open would, without opening
// anything: an error wrapping ErrInvalidOptions names the first problem.
func (o Options) Check() error {
	_, err := o.withDefaults()
	return err
}

func (o Options) withDefaults() (Options, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.MaxRecordSize == 0 {
		o.MaxRecordSize = DefaultMaxRecordSize
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.FS == nil {
		o.FS = vfs.OS
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.SegmentSize < MinSegmentSize || o.SegmentSize > MaxSegmentSize:
		return o, fmt.Errorf("%w: segment size %d outside [%d, %d]", ErrInvalidOptions, o.SegmentSize, MinSegmentSize, MaxSegmentSize)
	case o.MaxRecordSize < 0:
		return o, fmt.Errorf("%w: max record size %d", ErrInvalidOptions, o.MaxRecordSize)
	case segHeaderSize+recordSize(o.MaxRecordSize) > o.SegmentSize:
		return o, fmt.Errorf("%w: max record size %d does not fit a %d-byte segment", ErrInvalidOptions, o.MaxRecordSize, o.SegmentSize)
	case o.Sync != SyncAlways && o.Sync != SyncInterval:
		return o, fmt.Errorf("%w: sync mode %d", ErrInvalidOptions, int(o.Sync))
	case o.SyncInterval < 0:
		return o, fmt.Errorf("%w: sync interval %v", ErrInvalidOptions, o.SyncInterval)
	case o.Journal != nil && o.Journal.FS() != o.FS:
		return o, fmt.Errorf("%w: the journal and the log use different file systems", ErrInvalidOptions)
	}
	return o, nil
}

// CheckBatchLimits checks at start-up, before any log is opened, that o
// is valid (Check) and that every batch a caller may accept fits one
// segment: at most maxEvents records (each at most MaxRecordSize bytes)
// holding at most maxBytes payload bytes in all, headers and padding
// included. A server whose limits fail it would start and then refuse
// every log open (ErrInvalidOptions) or the largest batches
// (ErrBatchTooLarge); the error names the sizes to change.
func (o Options) CheckBatchLimits(maxEvents, maxBytes int) error {
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	if maxEvents < 1 || maxBytes < 0 {
		return fmt.Errorf("%w: batch limits %d events, %d bytes", ErrInvalidOptions, maxEvents, maxBytes)
	}
	// Worst case: every record padded by recAlign-1 bytes.
	need := segHeaderSize + int64(maxEvents)*(recHeaderSize+recAlign-1) + int64(maxBytes)
	if one := segHeaderSize + recordSize(min(maxBytes, o.MaxRecordSize)); one > need {
		need = one
	}
	if need > o.SegmentSize {
		return fmt.Errorf("%w: a batch of %d events and %d bytes needs segments of at least %d bytes (segment size %d)",
			ErrInvalidOptions, maxEvents, maxBytes, need, o.SegmentSize)
	}
	return nil
}

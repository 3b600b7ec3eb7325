package vfs

import (
	"errors"
	"io"
)

// FS is the small set of file-system operations the log needs. Paths are
// OS paths (filepath.Join style). Implementations are safe for concurrent use
// by multiple goroutines.
type FS interface {
	// Create creates the named file, or truncates it if it exists, and opens
	// it for reading and writing. The new directory entry is durable only
	// after SyncDir of its parent.
	Create(name string) (File, error)
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	// OpenRW opens an existing file for reading and writing.
	OpenRW(name string) (File, error)
	// Remove removes the named file; durable only after SyncDir.
	Remove(name string) error
	// Rename atomically replaces newname with oldname; durable only after
	// SyncDir of the directory.
	Rename(oldname, newname string) error
	// MkdirAll creates dir and any missing parents. New entries are durable
	// only after SyncDir of each parent.
	MkdirAll(dir string) error
	// List returns the names of the entries of dir, sorted.
	List(dir string) ([]string, error)
	// SyncDir makes the entries of dir durable (fsync of the directory).
	SyncDir(dir string) error
	// Stat describes the file that name names now (following symbolic
	// links).
	Stat(name string) (FileStat, error)
	// Lock takes an exclusive advisory lock on the named file, creating it if
	// needed, and fails at once (with an error wrapping ErrLocked) if another
	// holder has it. Closing the returned Closer releases the lock.
	Lock(name string) (io.Closer, error)
}

// File is an open file. ReadAt, WriteAt and Map may be called concurrently;
// Truncate, Allocate, Sync and Datasync must not run concurrently with writes
// to the same file.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	// Name returns the path the file was opened with.
	Name() string
	// Size returns the current size of the file.
	Size() (int64, error)
	// Stat describes the open file (fstat): compared with FS.Stat of its
	// path, it tells whether the path still names this file, and Links
	// whether any name does.
	Stat() (FileStat, error)
	// Truncate changes the size of the file.
	Truncate(size int64) error
	// Allocate makes the file at least size bytes long with its blocks
	// reserved (fallocate), so later writes inside it need no new space and
	// no size change. Where reserving is unsupported it extends the file
	// (sparse). The new size is durable only after Sync.
	Allocate(size int64) error
	// Sync makes the file's data and metadata durable (fsync).
	Sync() error
	// Datasync makes the file's data, and the metadata needed to read it
	// back, durable (fdatasync). It does not make a size change durable
	// unless the platform's fdatasync does (Linux does).
	Datasync() error
	// SyncFS makes everything written to the file system that holds the
	// file durable, data and metadata of every file (syncfs(2)): one
	// call instead of one fdatasync per file when many files are dirty.
	// It reports write-back errors on that file system that this File has
	// not reported yet (Linux 5.8 and later), so keep the File open
	// across the writes it is meant to cover. Where the platform has no
	// syncfs it returns an error wrapping errors.ErrUnsupported.
	SyncFS() error
	// Map maps the first size bytes of the file read-only and shared: writes
	// through WriteAt become visible in the mapping. size must not exceed the
	// file's size. The mapping stays valid after the file is closed, until
	// Unmap.
	Map(size int) (Mapping, error)
}

// FileStat is what Stat reports about a file: its identity and its names.
type FileStat struct {
	// Dev and Ino identify the file: two paths, or a path and an open
	// file, with equal Dev and Ino are the same file.
	Dev, Ino uint64
	// Links counts the directory entries naming the file: 0 once it has
	// been removed (while still open).
	Links uint64
	// Size is the file's size in bytes.
	Size int64
}

// Mapping is a read-only memory map of a file region. Bytes must not be
// written to. After Unmap, the slice returned by Bytes must not be used.
type Mapping interface {
	Bytes() []byte
	Unmap() error
}

// Errors returned by the implementations in this package.
var (
	// ErrLocked reports that a Lock is held by someone else.
	ErrLocked = errors.New("vfs: file is locked by another holder")
	// ErrCrashed is returned by every operation on a MemFS after Crash.
	ErrCrashed = errors.New("vfs: file system crashed")
	// ErrInjected is a convenient error for fault rules.
	ErrInjected = errors.New("vfs: injected fault")
)

//go:build !unix

package vfs

import (
	"errors"
	"os"
)

func datasync(f *os.File) error { return f.Sync() }

func allocate(f *os.File, size int64) error { return extend(f, size) }

func syncfs(f *os.File) error {
	return &os.PathError{Op: "syncfs", Path: f.Name(), Err: errors.ErrUnsupported}
}

// fileStat has no file identity to report where syscall.Stat_t is missing.
func fileStat(_ os.FileInfo, name string) (FileStat, error) {
	return FileStat{}, &os.PathError{Op: "stat", Path: name, Err: errors.ErrUnsupported}
}

// lockFile is a no-op where flock is unavailable: only one process may open a
// log directory, and nothing enforces it on these platforms.
func lockFile(*os.File) error { return nil }

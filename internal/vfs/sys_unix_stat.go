//go:build unix

package vfs

import (
	"errors"
	"os"
	"syscall"
)

// fileStat converts the result of os.Stat or File.Stat.
func fileStat(fi os.FileInfo, name string) (FileStat, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return FileStat{}, &os.PathError{Op: "stat", Path: name, Err: errors.ErrUnsupported}
	}
	return FileStat{Dev: uint64(st.Dev), Ino: uint64(st.Ino), Links: uint64(st.Nlink), Size: fi.Size()}, nil
}

package vfs

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

func datasync(f *os.File) error { return fdSyscall(f, "fdatasync", unix.Fdatasync) }

func syncfs(f *os.File) error { return fdSyscall(f, "syncfs", unix.Syncfs) }

// fdSyscall calls call on f's descriptor, again while it is interrupted
// (EINTR), and names the operation and file in its error.
func fdSyscall(f *os.File, op string, call func(fd int) error) error {
	for {
		err := call(int(f.Fd()))
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: op, Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// allocate reserves blocks with fallocate(2) mode 0 (which also extends the
// size) and falls back to ftruncate where the file system does not support
// it, as etcd's fileutil.Preallocate does.
func allocate(f *os.File, size int64) error {
	var err error
	for {
		err = unix.Fallocate(int(f.Fd()), 0, 0, size)
		if err != unix.EINTR {
			break
		}
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return extend(f, size)
	}
	return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
}

func lockFile(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}

package vfs

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"path/filepath"
)

// TmpSuffix ends the name of a file being written by [CreateDurably]
// before it is renamed into place. Directories that hold such files remove
// leftovers with this suffix when they are opened.
const TmpSuffix = ".tmp"

// ErrStopped is returned by [ZeroFill] when its stop channel was closed.
var ErrStopped = errors.New("vfs: zero fill stopped")

var zeroBlock [1 << 20]byte

// ZeroFill writes zeros over f[from:to), unless stop (which may be nil) is
// closed first: then it returns ErrStopped.
func ZeroFill(f File, from, to int64, stop <-chan struct{}) error {
	for p := from; p < to; {
		select {
		case <-stop:
			return ErrStopped
		default:
		}
		n := min(int64(len(zeroBlock)), to-p)
		if _, err := f.WriteAt(zeroBlock[:n], p); err != nil {
			return err
		}
		p += n
	}
	return nil
}

// GrowZeroed enlarges f from from to to bytes, reserved (Allocate) and
// zero-filled, and fsyncs it. Zero-filled blocks make later overwrites
// change no file-system metadata, so their fdatasync is cheaper.
func GrowZeroed(f File, from, to int64) error {
	err := f.Allocate(to)
	if err == nil {
		err = ZeroFill(f, from, to, nil)
	}
	if err == nil {
		err = f.Sync()
	}
	return err
}

// CreateDurably makes dir/name hold head, zero-filled to size bytes
// (reserved first), durably: a temp file (name+TmpSuffix) written and
// fsynced, renamed into place, then dir fsynced. On failure the temp file
// is removed and name is untouched.
func CreateDurably(fs FS, dir, name string, size int64, head []byte) error {
	tmp := filepath.Join(dir, name+TmpSuffix)
	f, err := fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if size > 0 {
		err = f.Allocate(size)
		if err == nil {
			err = ZeroFill(f, 0, size, nil)
		}
	}
	if err == nil {
		_, err = f.WriteAt(head, 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil {
		err = fs.SyncDir(dir)
	}
	if err != nil {
		fs.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// MkdirDurable creates dir and any missing parents and makes every new
// entry durable: it syncs the parent of each directory it creates, and
// dir's own parent in every case (an earlier run may have created dir and
// lost power before the entry was synced). It returns the directories it
// created, deepest first, so that a caller can remove them again if what
// it meant to put in them fails.
func MkdirDurable(fs FS, dir string) (created []string, err error) {
	dir = filepath.Clean(dir)
	parents := []string{filepath.Dir(dir)}
	for d := dir; ; {
		// Stat, not List: a parent may hold many thousands of entries.
		if _, err := fs.Stat(d); err == nil {
			break
		} else if !errors.Is(err, iofs.ErrNotExist) {
			return nil, fmt.Errorf("stat %s: %w", d, err)
		}
		created = append(created, d)
		p := filepath.Dir(d)
		if p == d {
			break
		}
		if d != dir {
			parents = append(parents, p)
		}
		d = p
	}
	if err := fs.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	for _, p := range parents {
		if err := fs.SyncDir(p); err != nil {
			return created, fmt.Errorf("sync %s: %w", p, err)
		}
	}
	return created, nil
}

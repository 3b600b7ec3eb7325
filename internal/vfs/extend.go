package vfs

import "os"

// extend grows f to size with ftruncate if it is shorter; it never shrinks.
func extend(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() >= size {
		return nil
	}
	return f.Truncate(size)
}

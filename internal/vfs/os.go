package vfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/edsrzf/mmap-go"
)

// OS is the operating-system file system. Files are created with mode 0600 and
// directories with 0700.
var OS FS = osFS{}

type osFS struct{}

func (osFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	return &osFile{f}, nil
}

func (osFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return &osFile{f}, nil
}

func (osFS) OpenRW(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &osFile{f}, nil
}

func (osFS) Remove(name string) error { return os.Remove(name) }

func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

func (osFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o700) }

func (osFS) List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names, nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (osFS) Stat(name string) (FileStat, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return FileStat{}, err
	}
	return fileStat(fi, name)
}

func (osFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", filepath.Base(name), err)
	}
	return f, nil // closing the descriptor releases the lock
}

type osFile struct{ f *os.File }

func (o *osFile) ReadAt(p []byte, off int64) (int, error)  { return o.f.ReadAt(p, off) }
func (o *osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }
func (o *osFile) Close() error                             { return o.f.Close() }
func (o *osFile) Name() string                             { return o.f.Name() }
func (o *osFile) Truncate(size int64) error                { return o.f.Truncate(size) }
func (o *osFile) Sync() error                              { return o.f.Sync() }
func (o *osFile) Datasync() error                          { return datasync(o.f) }
func (o *osFile) SyncFS() error                            { return syncfs(o.f) }
func (o *osFile) Allocate(size int64) error                { return allocate(o.f, size) }

func (o *osFile) Size() (int64, error) {
	fi, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (o *osFile) Stat() (FileStat, error) {
	fi, err := o.f.Stat()
	if err != nil {
		return FileStat{}, err
	}
	return fileStat(fi, o.f.Name())
}

func (o *osFile) Map(size int) (Mapping, error) {
	if size <= 0 {
		return nil, fmt.Errorf("vfs: map %s: size %d", o.f.Name(), size)
	}
	m, err := mmap.MapRegion(o.f, size, mmap.RDONLY, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("vfs: map %s: %w", o.f.Name(), err)
	}
	return &osMapping{m}, nil
}

type osMapping struct{ m mmap.MMap }

func (m *osMapping) Bytes() []byte { return m.m }

func (m *osMapping) Unmap() error {
	if m.m == nil {
		return nil
	}
	return m.m.Unmap()
}

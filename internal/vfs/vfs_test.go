package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
)

// each runs a test against the OS and the memory file systems.
func each(t *testing.T, f func(t *testing.T, fsys FS, dir string)) {
	t.Run("os", func(t *testing.T) { f(t, OS, t.TempDir()) })
	t.Run("mem", func(t *testing.T) {
		m := NewMem()
		if err := m.MkdirAll("/d"); err != nil {
			t.Fatal(err)
		}
		f(t, m, "/d")
	})
}

func TestFileBasics(t *testing.T) {
	each(t, func(t *testing.T, fsys FS, dir string) {
		name := filepath.Join(dir, "a")
		f, err := fsys.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Allocate(8192); err != nil {
			t.Fatal(err)
		}
		if n, err := f.Size(); err != nil || n != 8192 {
			t.Fatalf("Size after Allocate = %d, %v", n, err)
		}
		m, err := f.Map(8192)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("hello"), 4096); err != nil {
			t.Fatal(err)
		}
		if got := m.Bytes()[4096:4101]; string(got) != "hello" {
			t.Fatalf("mapping does not see the write: %q", got)
		}
		buf := make([]byte, 5)
		if _, err := f.ReadAt(buf, 4096); err != nil || string(buf) != "hello" {
			t.Fatalf("ReadAt = %q, %v", buf, err)
		}
		if _, err := f.ReadAt(buf, 8190); err != io.EOF {
			t.Fatalf("ReadAt past end: %v, want io.EOF", err)
		}
		if err := f.Datasync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if got := m.Bytes()[4096:4101]; string(got) != "hello" {
			t.Fatalf("mapping after close: %q", got)
		}
		if err := m.Unmap(); err != nil {
			t.Fatal(err)
		}
		if err := fsys.Rename(name, filepath.Join(dir, "b")); err != nil {
			t.Fatal(err)
		}
		if err := fsys.SyncDir(dir); err != nil {
			t.Fatal(err)
		}
		names, err := fsys.List(dir)
		if err != nil || len(names) != 1 || names[0] != "b" {
			t.Fatalf("List = %v, %v", names, err)
		}
		if _, err := fsys.Open(name); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open renamed-away name: %v", err)
		}
		r, err := fsys.Open(filepath.Join(dir, "b"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.WriteAt([]byte("x"), 0); err == nil {
			t.Fatal("WriteAt on a read-only file succeeded")
		}
		r.Close()
		l1, err := fsys.Lock(filepath.Join(dir, "LOCK"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.Lock(filepath.Join(dir, "LOCK")); !errors.Is(err, ErrLocked) {
			t.Fatalf("second Lock: %v, want ErrLocked", err)
		}
		l1.Close()
		l2, err := fsys.Lock(filepath.Join(dir, "LOCK"))
		if err != nil {
			t.Fatalf("Lock after release: %v", err)
		}
		l2.Close()
	})
}

func TestMemCrashDropsUnsynced(t *testing.T) {
	m := NewMem()
	m.MkdirAll("/d")
	m.SyncDir("/")
	f, _ := m.Create("/d/synced")
	f.WriteAt([]byte("durable"), 0)
	f.Sync()
	f.WriteAt([]byte("-lost"), 7)
	g, _ := m.Create("/d/nodirsync") // data synced, entry not
	g.WriteAt([]byte("x"), 0)
	g.Sync()
	m.SyncDir("/d")                        // makes "synced" and "nodirsync" entries durable
	m.Rename("/d/nodirsync", "/d/renamed") // not synced: rename is lost
	h, _ := m.Create("/d/new")             // entry never synced
	h.WriteAt([]byte("y"), 0)
	h.Sync()

	c := m.Crash(CrashOptions{})
	if _, err := f.WriteAt([]byte("z"), 0); !errors.Is(err, ErrCrashed) {
		t.Fatalf("write after crash: %v, want ErrCrashed", err)
	}
	names, _ := c.List("/d")
	if want := []string{"nodirsync", "synced"}; !equal(names, want) {
		t.Fatalf("after crash: %v, want %v", names, want)
	}
	cf, _ := c.Open("/d/synced")
	n, _ := cf.Size()
	buf := make([]byte, n)
	cf.ReadAt(buf, 0)
	if string(buf) != "durable" {
		t.Fatalf("after crash: %q, want %q", buf, "durable")
	}
}

func TestMemCrashKeepsRandomSectors(t *testing.T) {
	m := NewMem()
	f, _ := m.Create("/f")
	m.SyncDir("/")
	data := bytes.Repeat([]byte{7}, 64*SectorSize)
	f.WriteAt(data, 0)
	c := m.Crash(CrashOptions{KeepUnsynced: 0.5, Rand: rand.New(rand.NewPCG(3, 4))})
	cf, _ := c.Open("/f")
	n, _ := cf.Size()
	got := make([]byte, n)
	cf.ReadAt(got, 0)
	kept := 0
	for s := 0; s < int(n)/SectorSize; s++ {
		sec := got[s*SectorSize : (s+1)*SectorSize]
		switch {
		case bytes.Equal(sec, data[:SectorSize]):
			kept++
		case bytes.Count(sec, []byte{0}) != SectorSize:
			t.Fatalf("sector %d torn inside a sector", s)
		}
	}
	if kept == 0 || kept == 64 {
		t.Fatalf("kept %d of 64 sectors, want some but not all", kept)
	}
}

func TestInjector(t *testing.T) {
	in := &Injector{}
	m := NewMem()
	fsys := Inject(m, in)
	in.Add(Rule{Ops: OpDatasync, Skip: 1, Count: 1, Err: syscall.EIO})
	in.Add(Rule{Ops: OpWrite, Path: "full", Short: 3, Err: syscall.ENOSPC})
	f, err := fsys.Create("/a")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, syscall.EIO, nil} {
		if err := f.Datasync(); !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Fatalf("Datasync %d: %v, want %v", i, err, want)
		}
	}
	g, _ := fsys.Create("/full")
	n, err := g.WriteAt([]byte("abcdef"), 0)
	var fe *FaultError
	if n != 3 || !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &fe) || fe.Op != OpWrite {
		t.Fatalf("short write: n=%d err=%v", n, err)
	}
	if size, _ := g.Size(); size != 3 {
		t.Fatalf("size after short write = %d, want 3", size)
	}
	if in.Fired() != 2 || in.Seen(OpDatasync) != 3 || in.Seen(OpAnySync) != 3 {
		t.Fatalf("Fired = %d, Seen(datasync) = %d", in.Fired(), in.Seen(OpDatasync))
	}
	if s := (OpSync | OpWrite).String(); s != "write|sync" {
		t.Fatalf("String = %q", s)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSyncFS: SyncFS makes every file's data and every directory entry of
// the file system durable (MemFS: they survive a crash), and works on the
// OS file system where the platform has syncfs.
func TestSyncFS(t *testing.T) {
	each(t, func(t *testing.T, fsys FS, dir string) {
		anchor, err := fsys.Create(filepath.Join(dir, "anchor"))
		if err != nil {
			t.Fatal(err)
		}
		defer anchor.Close()
		if err := fsys.MkdirAll(filepath.Join(dir, "sub")); err != nil {
			t.Fatal(err)
		}
		other, err := fsys.Create(filepath.Join(dir, "sub", "other"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.WriteAt([]byte("written elsewhere"), 0); err != nil {
			t.Fatal(err)
		}
		other.Close()
		if err := anchor.SyncFS(); err != nil {
			if errors.Is(err, errors.ErrUnsupported) {
				t.Skip("no syncfs on this platform")
			}
			t.Fatal(err)
		}
		m, ok := fsys.(*MemFS)
		if !ok {
			return
		}
		after := m.Crash(CrashOptions{})
		f, err := after.Open(filepath.Join(dir, "sub", "other"))
		if err != nil {
			t.Fatalf("after SyncFS and a crash: %v", err)
		}
		b := make([]byte, 17)
		if _, err := f.ReadAt(b, 0); err != nil || string(b) != "written elsewhere" {
			t.Fatalf("after SyncFS and a crash the file holds %q (%v)", b, err)
		}
	})
}

// TestStatIdentity checks, on both file systems, that Stat tells a path's
// file apart from a replaced one and counts links to zero after Remove.
func TestStatIdentity(t *testing.T) {
	each(t, func(t *testing.T, fsys FS, dir string) {
		a := filepath.Join(dir, "a")
		f, err := fsys.Create(a)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fst, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		pst, err := fsys.Stat(a)
		if err != nil {
			t.Fatal(err)
		}
		if fst.Ino != pst.Ino || fst.Dev != pst.Dev || fst.Links != 1 {
			t.Fatalf("fresh file: fstat %+v, stat %+v, want same identity and 1 link", fst, pst)
		}
		g, err := fsys.Create(a + ".new")
		if err != nil {
			t.Fatal(err)
		}
		g.Close()
		if err := fsys.Rename(a+".new", a); err != nil {
			t.Fatal(err)
		}
		if pst, err = fsys.Stat(a); err != nil || pst.Ino == fst.Ino {
			t.Fatalf("after replacing the path: stat %+v, %v; want an inode other than %d", pst, err, fst.Ino)
		}
		if fst, err = f.Stat(); err != nil || fst.Links != 0 {
			t.Fatalf("replaced file: fstat %+v, %v; want 0 links", fst, err)
		}
		if err := fsys.Remove(a); err != nil {
			t.Fatal(err)
		}
		if _, err := fsys.Stat(a); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Stat of a removed path: %v, want ErrNotExist", err)
		}
	})
}

// TestMemCapacity fills a MemFS with a capacity: growth past it fails with
// ENOSPC and changes nothing; removing a file frees its space.
func TestMemCapacity(t *testing.T) {
	m := NewMem()
	m.SetCapacity(10 << 10)
	a, err := m.Create("/a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Allocate(8 << 10); err != nil {
		t.Fatalf("Allocate within capacity: %v", err)
	}
	b, err := m.Create("/b")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Allocate(4 << 10); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Allocate past capacity: %v, want ENOSPC", err)
	}
	if n, _ := b.Size(); n != 0 {
		t.Fatalf("failed Allocate left size %d, want 0", n)
	}
	if _, err := b.WriteAt(make([]byte, 3<<10), 0); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteAt past capacity: %v, want ENOSPC", err)
	}
	if err := m.Remove("/a"); err != nil {
		t.Fatal(err)
	}
	if err := b.Allocate(4 << 10); err != nil {
		t.Fatalf("Allocate after freeing space: %v", err)
	}
	if got := m.Used(); got != 4<<10 {
		t.Fatalf("Used = %d, want %d", got, 4<<10)
	}
}

package vfs

import (
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// SectorSize is the unit in which [MemFS] tracks unsynced writes; a crash with
// [CrashOptions.KeepUnsynced] > 0 keeps or drops each dirty sector whole.
const SectorSize = 512

// MemFS is an in-memory [FS] that remembers which bytes and directory entries
// were made durable, so that [MemFS.Crash] can simulate a power loss. The zero
// value is not usable; call [NewMem]. Safe for concurrent use.
type MemFS struct {
	mu       sync.Mutex
	root     *memNode
	crashed  bool
	locks    map[string]bool
	lastIno  uint64
	used     int64 // bytes of file data
	capacity int64 // 0: unlimited; see SetCapacity
}

type memNode struct {
	dir bool
	// directories
	children map[string]*memNode // current entries
	durable  map[string]*memNode // entries as of the last SyncDir
	// files
	data    []byte             // current contents; cap may exceed len for mappings
	synced  []byte             // contents as of the last Sync/Datasync
	dirty   map[int64]struct{} // sectors written since the last sync
	mapped  int                // live mappings
	written bool               // any change since the last sync (incl. size)
	ino     uint64             // identity, for Stat
	links   uint64             // directory entries naming the node
}

func newDir() *memNode {
	return &memNode{dir: true, children: map[string]*memNode{}, durable: map[string]*memNode{}}
}

// NewMem returns an empty in-memory file system whose root directory exists.
func NewMem() *MemFS {
	return &MemFS{root: newDir(), locks: map[string]bool{}}
}

// SetCapacity limits the bytes of file data m holds (0: no limit): a
// write, Truncate or Allocate that would grow the total beyond it fails
// with syscall.ENOSPC and changes nothing, as on a full disk. Shrinking or
// removing files frees space (at once, even while they are open).
func (m *MemFS) SetCapacity(bytes int64) {
	m.mu.Lock()
	m.capacity = bytes
	m.mu.Unlock()
}

// Used returns the bytes of file data m holds.
func (m *MemFS) Used() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}

// newFileLocked returns a new file node with one link.
func (m *MemFS) newFileLocked() *memNode {
	m.lastIno++
	return &memNode{dirty: map[int64]struct{}{}, written: true, ino: m.lastIno, links: 1}
}

// unlinkLocked drops one name of n, freeing its data with the last one.
func (m *MemFS) unlinkLocked(n *memNode) {
	if n.dir || n.links == 0 {
		return
	}
	n.links--
	if n.links == 0 {
		m.used -= int64(len(n.data))
	}
}

func split(name string) []string {
	name = filepath.ToSlash(name)
	name = path.Clean("/" + name)
	if name == "/" {
		return nil
	}
	return strings.Split(name[1:], "/")
}

// lookupLocked returns the parent directory of name and the base name.
func (m *MemFS) parentLocked(op, name string) (*memNode, string, error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	d := m.root
	for _, p := range parts[:len(parts)-1] {
		c, ok := d.children[p]
		if !ok {
			return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		if !c.dir {
			return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
		}
		d = c
	}
	return d, parts[len(parts)-1], nil
}

func (m *MemFS) nodeLocked(op, name string) (*memNode, error) {
	parts := split(name)
	d := m.root
	for _, p := range parts {
		c, ok := d.children[p]
		if !ok {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		d = c
	}
	return d, nil
}

func (m *MemFS) checkLocked(op, name string) error {
	if m.crashed {
		return &fs.PathError{Op: op, Path: name, Err: ErrCrashed}
	}
	return nil
}

// Create implements [FS].
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkLocked("create", name); err != nil {
		return nil, err
	}
	d, base, err := m.parentLocked("create", name)
	if err != nil {
		return nil, err
	}
	n, ok := d.children[base]
	if ok && n.dir {
		return nil, &fs.PathError{Op: "create", Path: name, Err: fs.ErrExist}
	}
	if ok {
		m.used -= int64(len(n.data))
		if n.mapped > 0 {
			n.data = nil // a mapped file keeps its old bytes, as after ftruncate
		}
		n.data = n.data[:0]
		n.written = true
	} else {
		n = m.newFileLocked()
		d.children[base] = n
	}
	return &memFile{fs: m, n: n, name: name, rw: true}, nil
}

func (m *MemFS) open(name string, rw bool) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkLocked("open", name); err != nil {
		return nil, err
	}
	n, err := m.nodeLocked("open", name)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	return &memFile{fs: m, n: n, name: name, rw: rw}, nil
}

// Open implements [FS].
func (m *MemFS) Open(name string) (File, error) { return m.open(name, false) }

// OpenRW implements [FS].
func (m *MemFS) OpenRW(name string) (File, error) { return m.open(name, true) }

// Remove implements [FS].
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkLocked("remove", name); err != nil {
		return err
	}
	d, base, err := m.parentLocked("remove", name)
	if err != nil {
		return err
	}
	n, ok := d.children[base]
	if !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if n.dir && len(n.children) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrInvalid}
	}
	delete(d.children, base)
	m.unlinkLocked(n)
	return nil
}

// Rename implements [FS].
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkLocked("rename", oldname); err != nil {
		return err
	}
	od, ob, err := m.parentLocked("rename", oldname)
	if err != nil {
		return err
	}
	nd, nb, err := m.parentLocked("rename", newname)
	if err != nil {
		return err
	}
	n, ok := od.children[ob]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	t, ok := nd.children[nb]
	if ok && t.dir {
		return &fs.PathError{Op: "rename", Path: newname, Err: fs.ErrExist}
	}
	delete(od.children, ob)
	if ok && t != n {
		m.unlinkLocked(t)
	}
	nd.children[nb] = n
	return nil
}

// MkdirAll implements [FS].
func (m *MemFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkLocked("mkdir", dir); err != nil {
		return err
	}
	d := m.root
	for _, p := range split(dir) {
		c, ok := d.children[p]
		if !ok {
			c = newDir()
			d.children[p] = c
		} else if !c.dir {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: fs.ErrExist}
		}
		d = c
	}
	return nil
}

// List implements [FS].
func (m *MemFS) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkLocked("list", dir); err != nil {
		return nil, err
	}
	d, err := m.nodeLocked("list", dir)
	if err != nil {
		return nil, err
	}
	if !d.dir {
		return nil, &fs.PathError{Op: "list", Path: dir, Err: fs.ErrInvalid}
	}
	names := make([]string, 0, len(d.children))
	for n := range d.children {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// SyncDir implements [FS].
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkLocked("syncdir", dir); err != nil {
		return err
	}
	d, err := m.nodeLocked("syncdir", dir)
	if err != nil {
		return err
	}
	if !d.dir {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: fs.ErrInvalid}
	}
	clear(d.durable)
	for k, v := range d.children {
		d.durable[k] = v
	}
	return nil
}

// Stat implements [FS].
func (m *MemFS) Stat(name string) (FileStat, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkLocked("stat", name); err != nil {
		return FileStat{}, err
	}
	n, err := m.nodeLocked("stat", name)
	if err != nil {
		return FileStat{}, err
	}
	return n.stat(), nil
}

func (n *memNode) stat() FileStat {
	return FileStat{Ino: n.ino, Links: n.links, Size: int64(len(n.data))}
}

// Lock implements [FS]. Locks are per MemFS value; a crash releases them.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkLocked("lock", name); err != nil {
		return nil, err
	}
	d, base, err := m.parentLocked("lock", name)
	if err != nil {
		return nil, err
	}
	if _, ok := d.children[base]; !ok {
		n := m.newFileLocked()
		n.written = false
		d.children[base] = n
	}
	key := path.Clean("/" + filepath.ToSlash(name))
	if m.locks[key] {
		return nil, fmt.Errorf("lock %s: %w", base, ErrLocked)
	}
	m.locks[key] = true
	return &memLock{fs: m, key: key}, nil
}

type memLock struct {
	fs   *MemFS
	key  string
	once sync.Once
}

func (l *memLock) Close() error {
	l.once.Do(func() {
		l.fs.mu.Lock()
		delete(l.fs.locks, l.key)
		l.fs.mu.Unlock()
	})
	return nil
}

// CrashOptions controls [MemFS.Crash].
type CrashOptions struct {
	// KeepUnsynced is the probability that each sector written since the
	// file's last sync survives anyway (0: drop every unsynced byte).
	KeepUnsynced float64
	// Rand is the randomness for KeepUnsynced; nil uses a fixed seed.
	Rand *rand.Rand
}

// Crash simulates a power loss: it returns a new MemFS holding only what had
// been made durable (plus, with KeepUnsynced, a random subset of unsynced
// sectors), and makes every later operation on m, and on files opened from
// it, fail with an error wrapping [ErrCrashed]. Mappings taken from m stay
// readable. The snapshot is taken atomically with respect to all operations.
func (m *MemFS) Crash(opts CrashOptions) *MemFS {
	rng := opts.Rand
	if rng == nil {
		rng = rand.New(rand.NewPCG(1, 2))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.crashed = true
	out := &MemFS{locks: map[string]bool{}, lastIno: m.lastIno}
	seen := map[*memNode]*memNode{}
	var clone func(n *memNode) *memNode
	clone = func(n *memNode) *memNode {
		if c, ok := seen[n]; ok {
			return c
		}
		if n.dir {
			c := newDir()
			seen[n] = c
			for k, v := range n.durable {
				c.children[k] = clone(v)
				c.durable[k] = c.children[k]
				if cc := c.children[k]; !cc.dir {
					if cc.links == 0 {
						out.used += int64(len(cc.data))
					}
					cc.links++
				}
			}
			return c
		}
		data := slices.Clone(n.synced)
		if opts.KeepUnsynced > 0 {
			secs := make([]int64, 0, len(n.dirty))
			for s := range n.dirty {
				secs = append(secs, s)
			}
			slices.Sort(secs)
			for _, s := range secs {
				if rng.Float64() >= opts.KeepUnsynced {
					continue
				}
				lo := s * SectorSize
				hi := min(lo+SectorSize, int64(len(n.data)))
				if lo >= hi {
					continue
				}
				if int64(len(data)) < hi {
					data = append(data, make([]byte, hi-int64(len(data)))...)
				}
				copy(data[lo:hi], n.data[lo:hi])
			}
		}
		c := &memNode{data: data, synced: slices.Clone(data), dirty: map[int64]struct{}{}, ino: n.ino}
		seen[n] = c
		return c
	}
	out.root = clone(m.root)
	return out
}

type memFile struct {
	fs     *MemFS
	n      *memNode
	name   string
	rw     bool
	closed bool
}

func (f *memFile) checkLocked(op string) error {
	if f.fs.crashed {
		return &fs.PathError{Op: op, Path: f.name, Err: ErrCrashed}
	}
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	return nil
}

func (f *memFile) Name() string { return f.name }

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// growLocked makes data at least size long, keeping the backing array when
// it is mapped (mappings must see later writes).
func (f *memFile) growLocked(size int64) error {
	n := f.n
	if size <= int64(len(n.data)) {
		return nil
	}
	grow := size - int64(len(n.data))
	if c := f.fs.capacity; c > 0 && n.links > 0 && f.fs.used+grow > c {
		return &fs.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
	}
	if size <= int64(cap(n.data)) {
		old := len(n.data)
		n.data = n.data[:size]
		clear(n.data[old:])
	} else {
		if n.mapped > 0 {
			return &fs.PathError{Op: "write", Path: f.name, Err: fmt.Errorf("memfs: growing a mapped file beyond its mapping is not supported")}
		}
		nd := make([]byte, size, max(size, 2*int64(cap(n.data))))
		copy(nd, n.data)
		n.data = nd
	}
	if n.links > 0 {
		f.fs.used += grow
	}
	return nil
}

func (f *memFile) markDirtyLocked(lo, hi int64) {
	for s := lo / SectorSize; s*SectorSize < hi; s++ {
		f.n.dirty[s] = struct{}{}
	}
	f.n.written = true
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("write"); err != nil {
		return 0, err
	}
	if !f.rw {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrPermission}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrInvalid}
	}
	end := off + int64(len(p))
	if err := f.growLocked(end); err != nil {
		return 0, err
	}
	copy(f.n.data[off:end], p)
	f.markDirtyLocked(off, end)
	return len(p), nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("stat"); err != nil {
		return 0, err
	}
	return int64(len(f.n.data)), nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("truncate"); err != nil {
		return err
	}
	if !f.rw || size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: fs.ErrInvalid}
	}
	old := int64(len(f.n.data))
	if size > old {
		if err := f.growLocked(size); err != nil {
			return err
		}
		f.markDirtyLocked(old, size)
		return nil
	}
	if f.n.links > 0 {
		f.fs.used -= old - size
	}
	f.n.data = f.n.data[:size]
	f.n.written = true
	return nil
}

func (f *memFile) Allocate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("allocate"); err != nil {
		return err
	}
	if !f.rw {
		return &fs.PathError{Op: "allocate", Path: f.name, Err: fs.ErrPermission}
	}
	old := int64(len(f.n.data))
	if size <= old {
		return nil
	}
	if err := f.growLocked(size); err != nil {
		return err
	}
	f.markDirtyLocked(old, size)
	return nil
}

func (f *memFile) syncLocked() {
	n := f.n
	if !n.written {
		return
	}
	if len(n.synced) > len(n.data) {
		n.synced = n.synced[:len(n.data)]
	} else if len(n.synced) < len(n.data) {
		n.synced = append(n.synced, make([]byte, len(n.data)-len(n.synced))...)
	}
	for s := range n.dirty {
		lo := s * SectorSize
		hi := min(lo+SectorSize, int64(len(n.data)))
		if lo < hi {
			copy(n.synced[lo:hi], n.data[lo:hi])
		}
	}
	clear(n.dirty)
	n.written = false
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("sync"); err != nil {
		return err
	}
	f.syncLocked()
	return nil
}

// Datasync persists data and size, as Linux fdatasync does.
func (f *memFile) Datasync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("fdatasync"); err != nil {
		return err
	}
	f.syncLocked()
	return nil
}

// SyncFS makes every file's data and every directory's entries durable,
// as syncfs(2) does for a whole file system.
func (f *memFile) SyncFS() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("syncfs"); err != nil {
		return err
	}
	var walk func(n *memNode)
	walk = func(n *memNode) {
		if !n.dir {
			(&memFile{n: n}).syncLocked()
			return
		}
		clear(n.durable)
		for k, c := range n.children {
			n.durable[k] = c
			walk(c)
		}
	}
	walk(f.fs.root)
	return nil
}

func (f *memFile) Stat() (FileStat, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("stat"); err != nil {
		return FileStat{}, err
	}
	return f.n.stat(), nil
}

func (f *memFile) Map(size int) (Mapping, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.checkLocked("map"); err != nil {
		return nil, err
	}
	if size <= 0 || size > len(f.n.data) {
		return nil, &fs.PathError{Op: "map", Path: f.name, Err: fmt.Errorf("memfs: map size %d of a %d-byte file", size, len(f.n.data))}
	}
	f.n.mapped++
	return &memMapping{fs: f.fs, n: f.n, b: f.n.data[:size:size]}, nil
}

type memMapping struct {
	fs *MemFS
	n  *memNode
	b  []byte
}

func (m *memMapping) Bytes() []byte { return m.b }

func (m *memMapping) Unmap() error {
	if m.b == nil {
		return nil
	}
	m.fs.mu.Lock()
	m.n.mapped--
	m.fs.mu.Unlock()
	m.b = nil
	return nil
}

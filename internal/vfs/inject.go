package vfs

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Op is a set of operation kinds, used by [Rule] to choose what to fail.
type Op uint32

// Operation kinds. Values are bits so that a [Rule] can name several.
const (
	OpCreate Op = 1 << iota
	OpOpen
	OpRemove
	OpRename
	OpMkdir
	OpList
	OpSyncDir
	OpLock
	OpRead
	OpWrite
	OpTruncate
	OpAllocate
	OpSync
	OpDatasync
	OpMap
	OpClose
	OpSyncFS
	OpStat

	// OpAnySync is every operation that makes something durable.
	OpAnySync = OpSync | OpDatasync | OpSyncDir | OpSyncFS
)

var opNames = [...]string{"create", "open", "remove", "rename", "mkdir", "list", "syncdir", "lock",
	"read", "write", "truncate", "allocate", "sync", "datasync", "map", "close", "syncfs", "stat"}

// String returns the names of the kinds in o joined by "|".
func (o Op) String() string {
	var parts []string
	for i, n := range opNames {
		if o&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("Op(%#x)", uint32(o))
	}
	return strings.Join(parts, "|")
}

// Rule describes a fault: matching operations fail with Err.
type Rule struct {
	Ops Op // kinds of operation that match
	// Path, if not empty, must be a substring of the operation's path.
	Path string
	// Skip lets this many matching operations succeed before failing.
	Skip int
	// Count is how many matching operations fail after Skip; 0 means all.
	Count int
	// Err is the error returned (wrapped in a *fs.PathError-like FaultError).
	Err error
	// Short, for OpWrite: write only the first Short bytes (capped at the
	// buffer length) before failing, as a write that runs out of space does.
	Short int
	// Hook, if set, is called each time the rule fires, before the
	// operation fails (and before a Short write's bytes are written): for
	// example MemFS.Crash, to cut the power at an exact operation.
	Hook func(op Op, path string)
	// Lie, for the sync kinds (OpSync, OpDatasync, OpSyncFS, OpSyncDir):
	// the operation reports success without syncing anything, as a disk
	// whose cache drops flushes does. Mutation tests use it to show that
	// a crash test notices a missing sync.
	Lie bool
}

// FaultError is returned by an injected fault. It unwraps to the rule's Err.
type FaultError struct {
	Op   Op
	Path string
	Err  error
}

// Error names the operation, the path and the injected error.
func (e *FaultError) Error() string {
	return fmt.Sprintf("%s %s: %v (injected)", e.Op, e.Path, e.Err)
}

// Unwrap returns the rule's error, so errors.Is(err, syscall.EIO) works.
func (e *FaultError) Unwrap() error { return e.Err }

type ruleState struct {
	r    Rule
	seen int
	hit  int
}

// Injector holds fault rules and counts operations. The zero value has no
// rules and is ready to use; it is safe for concurrent use.
type Injector struct {
	mu    sync.Mutex
	rules []*ruleState
	fired int
	seen  map[Op]int
}

// Add adds a rule; rules added later are checked after earlier ones.
func (in *Injector) Add(r Rule) {
	in.mu.Lock()
	in.rules = append(in.rules, &ruleState{r: r})
	in.mu.Unlock()
}

// Reset removes every rule.
func (in *Injector) Reset() {
	in.mu.Lock()
	in.rules = nil
	in.mu.Unlock()
}

// Fired returns how many operations have failed by injection.
func (in *Injector) Fired() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.fired
}

// Seen returns how many operations of the kinds in ops were attempted
// (failed or not) through file systems wrapped with this injector.
func (in *Injector) Seen(ops Op) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for k, v := range in.seen {
		if k&ops != 0 {
			n += v
		}
	}
	return n
}

// check returns the rule that fails op on path, if any.
func (in *Injector) check(op Op, path string) (Rule, bool) {
	r, ok := in.match(op, path)
	if ok && r.Hook != nil {
		r.Hook(op, path)
	}
	return r, ok
}

func (in *Injector) match(op Op, path string) (Rule, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.seen == nil {
		in.seen = map[Op]int{}
	}
	in.seen[op]++
	for _, s := range in.rules {
		if s.r.Ops&op == 0 || (s.r.Path != "" && !strings.Contains(path, s.r.Path)) {
			continue
		}
		s.seen++
		if s.seen <= s.r.Skip || (s.r.Count > 0 && s.hit >= s.r.Count) {
			continue
		}
		s.hit++
		in.fired++
		return s.r, true
	}
	return Rule{}, false
}

func (in *Injector) fail(op Op, path string) error {
	if r, ok := in.check(op, path); ok {
		if r.Lie && op&OpAnySync != 0 {
			return errLied
		}
		return &FaultError{Op: op, Path: path, Err: r.Err}
	}
	return nil
}

// errLied tells a sync operation to report success without syncing.
var errLied = errors.New("vfs: sync skipped by a Lie rule")

// failSync is fail for the sync kinds: (skip, err) with skip set by a Lie
// rule.
func (in *Injector) failSync(op Op, path string) (skip bool, err error) {
	err = in.fail(op, path)
	if err == errLied {
		return true, nil
	}
	return false, err
}

// Inject wraps fsys so that every operation first consults in.
func Inject(fsys FS, in *Injector) FS { return &faultFS{fs: fsys, in: in} }

type faultFS struct {
	fs FS
	in *Injector
}

func (f *faultFS) wrap(file File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, in: f.in}, nil
}

func (f *faultFS) Create(name string) (File, error) {
	if err := f.in.fail(OpCreate, name); err != nil {
		return nil, err
	}
	return f.wrap(f.fs.Create(name))
}

func (f *faultFS) Open(name string) (File, error) {
	if err := f.in.fail(OpOpen, name); err != nil {
		return nil, err
	}
	return f.wrap(f.fs.Open(name))
}

func (f *faultFS) OpenRW(name string) (File, error) {
	if err := f.in.fail(OpOpen, name); err != nil {
		return nil, err
	}
	return f.wrap(f.fs.OpenRW(name))
}

func (f *faultFS) Remove(name string) error {
	if err := f.in.fail(OpRemove, name); err != nil {
		return err
	}
	return f.fs.Remove(name)
}

func (f *faultFS) Rename(oldname, newname string) error {
	if err := f.in.fail(OpRename, newname); err != nil {
		return err
	}
	return f.fs.Rename(oldname, newname)
}

func (f *faultFS) MkdirAll(dir string) error {
	if err := f.in.fail(OpMkdir, dir); err != nil {
		return err
	}
	return f.fs.MkdirAll(dir)
}

func (f *faultFS) List(dir string) ([]string, error) {
	if err := f.in.fail(OpList, dir); err != nil {
		return nil, err
	}
	return f.fs.List(dir)
}

func (f *faultFS) SyncDir(dir string) error {
	if skip, err := f.in.failSync(OpSyncDir, dir); skip || err != nil {
		return err
	}
	return f.fs.SyncDir(dir)
}

func (f *faultFS) Stat(name string) (FileStat, error) {
	if err := f.in.fail(OpStat, name); err != nil {
		return FileStat{}, err
	}
	return f.fs.Stat(name)
}

func (f *faultFS) Lock(name string) (io.Closer, error) {
	if err := f.in.fail(OpLock, name); err != nil {
		return nil, err
	}
	return f.fs.Lock(name)
}

type faultFile struct {
	File
	in *Injector
}

func (f *faultFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.in.fail(OpRead, f.Name()); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	r, ok := f.in.check(OpWrite, f.Name())
	if !ok {
		return f.File.WriteAt(p, off)
	}
	n := 0
	if r.Short > 0 {
		var err error
		if n, err = f.File.WriteAt(p[:min(r.Short, len(p))], off); err != nil {
			return n, err
		}
	}
	return n, &FaultError{Op: OpWrite, Path: f.Name(), Err: r.Err}
}

func (f *faultFile) Close() error {
	if err := f.in.fail(OpClose, f.Name()); err != nil {
		f.File.Close()
		return err
	}
	return f.File.Close()
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.in.fail(OpTruncate, f.Name()); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *faultFile) Allocate(size int64) error {
	if err := f.in.fail(OpAllocate, f.Name()); err != nil {
		return err
	}
	return f.File.Allocate(size)
}

func (f *faultFile) Sync() error {
	if skip, err := f.in.failSync(OpSync, f.Name()); skip || err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) Datasync() error {
	if skip, err := f.in.failSync(OpDatasync, f.Name()); skip || err != nil {
		return err
	}
	return f.File.Datasync()
}

func (f *faultFile) SyncFS() error {
	if skip, err := f.in.failSync(OpSyncFS, f.Name()); skip || err != nil {
		return err
	}
	return f.File.SyncFS()
}

func (f *faultFile) Stat() (FileStat, error) {
	if err := f.in.fail(OpStat, f.Name()); err != nil {
		return FileStat{}, err
	}
	return f.File.Stat()
}

func (f *faultFile) Map(size int) (Mapping, error) {
	if err := f.in.fail(OpMap, f.Name()); err != nil {
		return nil, err
	}
	return f.File.Map(size)
}

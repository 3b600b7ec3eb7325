package mmaplog

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"path/filepath"

	"github.com/atedb/atedb/internal/vfs"
)

// mkdirDurable creates dir and any missing parents and makes every new
// entry durable: it syncs the parent of each directory it creates, and
// dir's own parent in every case (an earlier run may have created dir and
// lost power before the entry was synced).
func mkdirDurable(fs vfs.FS, dir string) error {
	dir = filepath.Clean(dir)
	parents := []string{filepath.Dir(dir)}
	for d := dir; ; {
		if _, err := fs.List(d); err == nil {
			break
		} else if !errors.Is(err, iofs.ErrNotExist) {
			return fmt.Errorf("list %s: %w", d, err)
		}
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
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, p := range parents {
		if err := fs.SyncDir(p); err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
	}
	return nil
}

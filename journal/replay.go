package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"

	"github.com/atedb/atedb/internal/vfs"
)

// CorruptError reports a journal that cannot be replayed safely. It wraps
// ErrCorrupt.
type CorruptError struct {
	File   string // journal file name
	Pos    int64  // position of the record in it
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal: corrupt journal %s position %d: %s", e.File, e.Pos, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

type fileScan struct {
	name string
	gen  uint64
	data []byte
	recs []int64 // positions of the records to replay
}

// replay redoes every record newer than the checkpoint into its file,
// syncs those files, advances the checkpoint and sets up the writer.
func (j *Journal) replay() error {
	var cb [ckptSize]byte
	if _, err := j.ckf.ReadAt(cb[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("journal: read checkpoint: %w", err)
	}
	done, err := readCheckpoint(cb[:])
	if err != nil {
		// The checkpoint is written in place, within one sector; a bad one
		// means damage. Replaying from generation 0 is safe (replay is
		// idempotent) and loses nothing.
		j.log.Warn("journal: checkpoint unreadable; replaying every valid record", "dir", j.dir, "err", err)
		done = 0
	}
	maxGen := done
	var scans []fileScan
	for i, f := range j.jf {
		name := fmt.Sprintf(fileNameFmt, i)
		size, err := f.Size()
		if err != nil {
			return fmt.Errorf("journal: stat %s: %w", name, err)
		}
		// Mapped rather than read: most of a file is usually old or zero,
		// and is only glanced at (scanFile).
		m, err := f.Map(int(size))
		if err != nil {
			return fmt.Errorf("journal: map %s: %w", name, err)
		}
		defer m.Unmap()
		sc := fileScan{name: name, data: m.Bytes()}
		if err := scanFile(&sc, done); err != nil {
			return err
		}
		maxGen = max(maxGen, sc.gen)
		if len(sc.recs) > 0 {
			scans = append(scans, sc)
		}
	}
	sort.Slice(scans, func(a, b int) bool { return scans[a].gen < scans[b].gen })

	// Check every record's file before writing anything.
	type target struct {
		f  vfs.File
		id uint64
	}
	type write struct {
		t    *target
		pos  int64
		data []byte
	}
	targets := map[string]*target{}
	defer func() {
		for _, t := range targets {
			t.f.Close()
		}
	}()
	var writes []write
	for _, sc := range scans {
		for _, pos := range sc.recs {
			h, dir, data, _, _ := decodeRecord(sc.data, pos)
			rel := string(dir)
			if !filepath.IsLocal(rel) {
				return &CorruptError{File: sc.name, Pos: pos, Reason: fmt.Sprintf("log directory %q is not inside the root", rel)}
			}
			path := filepath.Join(j.root, rel, j.opts.Files.Name(h.num))
			t := targets[path]
			if t == nil {
				f, err := j.fs.OpenRW(path)
				if err != nil {
					return &CorruptError{File: sc.name, Pos: pos, Reason: fmt.Sprintf("file %s: %v", path, err)}
				}
				id, err := j.opts.Files.ID(f)
				if err != nil {
					f.Close()
					return &CorruptError{File: sc.name, Pos: pos, Reason: fmt.Sprintf("file %s: %v", path, err)}
				}
				t = &target{f: f, id: id}
				targets[path] = t
			}
			if t.id != h.fileID {
				return &CorruptError{File: sc.name, Pos: pos, Reason: fmt.Sprintf("file %s has ID %#x, the journal wrote to ID %#x", path, t.id, h.fileID)}
			}
			size, err := t.f.Size()
			if err != nil {
				return fmt.Errorf("journal: stat %s: %w", path, err)
			}
			if h.pos+int64(len(data)) > size {
				return &CorruptError{File: sc.name, Pos: pos, Reason: fmt.Sprintf("record for %s at %d..%d past the file's %d bytes", path, h.pos, h.pos+int64(len(data)), size)}
			}
			writes = append(writes, write{t, h.pos, data})
		}
	}
	for _, w := range writes {
		if _, err := w.t.f.WriteAt(w.data, w.pos); err != nil {
			return fmt.Errorf("journal: replay into %s: %w", w.t.f.Name(), err)
		}
	}
	n := len(writes)
	for path, t := range targets {
		if err := t.f.Datasync(); err != nil {
			return fmt.Errorf("journal: replay: fdatasync %s: %w", path, err)
		}
	}
	if len(scans) > 0 {
		if err := j.writeCheckpoint(maxGen); err != nil {
			return err
		}
		j.st.replayed.Add(uint64(n))
		j.log.Info("journal: replayed", "dir", j.dir, "records", n, "files", len(targets), "generation", maxGen)
	}
	j.cur, j.gen, j.pos = 0, maxGen+1, 0
	return nil
}

// scanFile finds the records of sc.data newer than checkpoint done:
// the run of valid records of one generation from position 0. A valid
// record of that generation after the run that says the run's end was
// already durable means acknowledged data was damaged: an error.
func scanFile(sc *fileScan, done uint64) error {
	b := sc.data
	var pos int64
	h, _, _, size, ok := decodeRecord(b, 0)
	if ok && h.gen > done {
		sc.gen = h.gen
		for ok && h.gen == sc.gen {
			sc.recs = append(sc.recs, pos)
			pos += size
			h, _, _, size, ok = decodeRecord(b, pos)
		}
	}
	stop := pos
	for p := stop + recAlign; p+recHeaderSize <= int64(len(b)); p += recAlign {
		g := binary.LittleEndian.Uint64(b[p+8:])
		if g <= done || (sc.gen != 0 && g != sc.gen) {
			continue
		}
		h, _, _, _, ok := decodeRecord(b, p)
		if ok && h.durable > stop {
			return &CorruptError{File: sc.name, Pos: stop, Reason: fmt.Sprintf("damaged record; the record at %d says the journal was durable up to %d", p, h.durable)}
		}
	}
	return nil
}

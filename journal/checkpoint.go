package journal

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
)

// switchFile continues in the other journal file, once its checkpoint has
// finished, and starts the checkpoint of the one just filled.
func (j *Journal) switchFile() error {
	if j.ckpt != nil {
		err := <-j.ckpt
		j.ckpt = nil
		if err != nil {
			return err
		}
	}
	full, gen, dirty := j.cur, j.gen, j.dirty
	j.cur, j.gen, j.pos = 1-j.cur, j.gen+1, 0
	j.dirty = make(map[fileRef]struct{}, len(dirty))
	ch := make(chan error, 1)
	j.ckpt = ch
	go func() { ch <- j.checkpoint(full, gen, dirty) }()
	return nil
}

// checkpoint makes the files that journal file idx covers durable and
// then records that generation gen needs no replay.
func (j *Journal) checkpoint(idx int, gen uint64, dirty map[fileRef]struct{}) error {
	if len(dirty) > syncFSAbove {
		// One syncfs (through the checkpoint file, open since Open,
		// so that it reports any write-back error since then) instead of
		// an fdatasync, and a device flush, per segment.
		err := j.ckf.SyncFS()
		if err == nil {
			j.st.fsSyncs.Add(1)
			return j.finishCheckpoint(gen)
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			return fmt.Errorf("journal: journal checkpoint of %s: %w", fmt.Sprintf(fileNameFmt, idx), err)
		}
	}
	refs := make(chan fileRef)
	errs := make(chan error, segmentSyncWorkers)
	var wg sync.WaitGroup
	for range min(segmentSyncWorkers, max(len(dirty), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first error
			for ref := range refs {
				if first != nil {
					continue
				}
				first = j.syncSegment(ref)
			}
			errs <- first
		}()
	}
	for ref := range dirty {
		refs <- ref
	}
	close(refs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return fmt.Errorf("journal: journal checkpoint of %s: %w", fmt.Sprintf(fileNameFmt, idx), err)
		}
	}
	return j.finishCheckpoint(gen)
}

// finishCheckpoint records that generation gen needs no replay.
func (j *Journal) finishCheckpoint(gen uint64) error {
	if err := j.writeCheckpoint(gen); err != nil {
		return err
	}
	j.st.checkpoints.Add(1)
	return nil
}

func (j *Journal) syncSegment(ref fileRef) error {
	path := filepath.Join(j.root, ref.rel, ref.name)
	f, err := j.fs.Open(path)
	if err != nil {
		return err
	}
	err = f.Datasync()
	j.st.segmentSyncs.Add(1)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fdatasync %s: %w", path, err)
	}
	return nil
}

// writeCheckpoint records durably, in place, that generation gen and older
// need no replay.
func (j *Journal) writeCheckpoint(gen uint64) error {
	var b [ckptSize]byte
	putCheckpoint(b[:], gen)
	if _, err := j.ckf.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("journal: write journal checkpoint: %w", err)
	}
	if err := j.ckf.Datasync(); err != nil {
		return fmt.Errorf("journal: fdatasync journal checkpoint: %w", err)
	}
	return nil
}

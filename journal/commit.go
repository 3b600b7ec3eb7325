package journal

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/atedb/atedb/internal/gather"
)

// Group is one log's group of records on its way to the journal. A log
// makes one with NewGroup and reuses it for every commit: its writer has at
// most one group in flight. The exported fields describe the group being
// committed; the log sets them before each Commit.
type Group struct {
	// FileNum is the number of the file the data was written into; it
	// names the file through Files.Name (a segment's first offset).
	FileNum uint64
	// FileName is Files.Name(FileNum), given so that no commit formats it.
	FileName string
	// FileID is the identity in that file's header (Files.ID).
	FileID uint64
	// Pos is the position of Data in the file.
	Pos int64
	// Data are the bytes written at Pos, not yet synced.
	Data []byte

	rel    string     // log directory relative to the journal's root
	done   chan error // capacity 1
	direct func() error
	// directed: the last Commit ran direct instead of writing the journal.
	directed bool
}

// NewGroup returns the reusable group of the log in directory dir, which
// must be inside the journal's root. direct, called on the committing
// goroutine, makes the log's own file durable (its fdatasync); Commit runs
// it instead of writing the journal when the group is alone in its round.
func (j *Journal) NewGroup(dir string, direct func() error) (*Group, error) {
	rel, err := j.relDir(dir)
	if err != nil {
		return nil, err
	}
	return &Group{rel: rel, done: make(chan error, 1), direct: direct}, nil
}

// Directed reports whether the last Commit of g made it durable by running
// the log's own sync (see NewGroup) rather than through the journal. Its
// error is then the sync's.
func (g *Group) Directed() bool { return g.directed }

// MaxGroup returns the largest group, in bytes, that the journal takes
// (Options.MaxGroup): larger ones are synced by their log.
func (j *Journal) MaxGroup() int64 { return j.opts.MaxGroup }

// relDir returns dir relative to the journal's root, or an error if dir is
// not inside it.
func (j *Journal) relDir(dir string) (string, error) {
	rel, err := filepath.Rel(j.root, filepath.Clean(dir))
	if err != nil || !filepath.IsLocal(rel) || rel == "." {
		return "", fmt.Errorf("%w: log %s is not inside the journal's root %s", ErrInvalidOptions, dir, j.root)
	}
	if len(rel) > maxDirLen {
		return "", fmt.Errorf("%w: log directory %s is longer than %d bytes", ErrInvalidOptions, rel, maxDirLen)
	}
	return rel, nil
}

// errLead tells a waiting committer to take over as leader.
var errLead = errors.New("journal: lead")

// Commit queues r and returns once its data is durable, through the
// journal or by r's own sync (see NewGroup), or has failed; r.Data is not
// used after it returns. Errors: the error that poisoned the journal (its
// write or fdatasync failed, or a checkpoint did), ErrClosed, or the error
// of the log's own sync when r was directed. There is no journal goroutine: the first committer to arrive
// leads, writing and syncing every queued group (its own and those of the
// other logs), then hands the lead to the first committer that queued
// meanwhile, or gives it up. A lone log thus syncs on its own writer
// goroutine with no hand-off, and a leader never works for others beyond
// one round, so that its own log moves on.
func (j *Journal) Commit(r *Group) error {
	r.directed = false
	j.mu.Lock()
	if j.err != nil {
		err := j.err
		j.mu.Unlock()
		return err
	}
	if j.closing {
		j.mu.Unlock()
		return fmt.Errorf("journal: %w", ErrClosed)
	}
	j.pending = append(j.pending, r)
	if j.leading {
		j.mu.Unlock()
		if err := <-r.done; err != errLead {
			return err
		}
		j.mu.Lock()
	}
	j.leading = true
	if j.lastRound > 1 {
		j.mu.Unlock()
		j.gather()
		j.mu.Lock()
	}
	rs := j.pending
	j.pending = j.spare[:0]
	j.lastRound = len(rs)
	j.mu.Unlock()

	if len(rs) == 1 && rs[0] == r && r.direct != nil && !j.opts.NoDirect {
		// Alone in the round: sync the log's own file instead. The same
		// one fdatasync makes the group durable, without writing it twice
		// and leaving the file dirty for a checkpoint; earlier
		// journal records of this log stay valid (replay is idempotent).
		r.directed = true
		r.done <- r.direct()
		j.st.direct.Add(1)
	} else {
		j.write(rs) // completes every request of rs, r included
	}
	clear(rs)

	j.mu.Lock()
	j.spare = rs[:0]
	if len(j.pending) > 0 {
		j.pending[0].done <- errLead
	} else {
		j.leading = false
		j.idle.Broadcast()
	}
	j.mu.Unlock()
	return <-r.done
}

// gather lets the logs whose groups the previous round just acknowledged
// queue their next group before the leader takes the queue, as the log's
// writer does (mmaplog's Log.gather): without it, busy logs split into several
// staggered rounds, each syncing a fraction of them. It yields while the
// queue keeps growing (gather.WhileGrowing), and only after a round of
// several groups (a lone log waits for nothing).
func (j *Journal) gather() { gather.WhileGrowing(&j.mu, &j.pending) }

// write commits the groups of rs with as few write+fdatasync rounds as the
// file's free space allows (one, unless the active file fills up).
func (j *Journal) write(rs []*Group) {
	j.buf = j.buf[:0]
	j.group = j.group[:0]
	for _, r := range rs {
		if err := j.Err(); err != nil {
			r.done <- err
			continue
		}
		size := recSize(len(r.rel), len(r.Data))
		if j.pos+int64(len(j.buf))+size > j.opts.FileSize {
			j.flush()
			if err := j.switchFile(); err != nil {
				j.poison(err)
				r.done <- j.Err()
				continue
			}
		}
		j.buf = appendRecord(j.buf, recHeader{
			gen: j.gen, durable: j.pos, fileID: r.FileID, num: r.FileNum, pos: r.Pos,
		}, r.rel, r.Data)
		j.group = append(j.group, r)
	}
	j.flush()
	if cap(j.buf) > 2*int(j.opts.MaxGroup)+(1<<20) {
		j.buf = nil // a burst passed: do not keep its buffer
	}
}

// flush writes and syncs j.buf and completes the groups in j.group.
func (j *Journal) flush() {
	if len(j.group) == 0 {
		return
	}
	err := j.Err()
	if err == nil {
		var n int
		n, err = j.jf[j.cur].WriteAt(j.buf, j.pos)
		if err == nil && n != len(j.buf) {
			err = errors.New("short write")
		}
		if err == nil {
			err = j.jf[j.cur].Datasync()
			j.st.syncs.Add(1)
		}
		if err != nil {
			j.poison(fmt.Errorf("journal: %s: %w", fmt.Sprintf(fileNameFmt, j.cur), err))
			err = j.Err()
		}
	}
	if err == nil {
		j.pos += int64(len(j.buf))
		j.st.bytes.Add(uint64(len(j.buf)))
		j.st.groups.Add(uint64(len(j.group)))
		for _, r := range j.group {
			j.dirty[fileRef{r.rel, r.FileName}] = struct{}{}
		}
	}
	for _, r := range j.group {
		r.done <- err
	}
	clear(j.group)
	j.group = j.group[:0]
	j.buf = j.buf[:0]
}

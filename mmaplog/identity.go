package mmaplog

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"path/filepath"
	"time"
)

// activeCheckEvery is how often, at most, a group commit checks the
// active segment (checkActive). Checking every commit cost a lone appender
// about a fifth of its rate here (sync1: fstat and stat between the
// fdatasync and the acknowledgement), and at 10 ms it still cost the
// many-chains workload (2,000 busy chains each commit every 100 ms or so)
// about 15%: the fault it guards against is an operator's mistake that
// only needs to be noticed, so at most this long of appends is
// acknowledged into a vanished file before the log stops.
const activeCheckEvery = time.Second

// checkActive makes sure that the file the writer appends to is still the
// log's active segment: not removed (no links), renamed away, replaced by
// another file under its name, or cut below its size. Acknowledging appends
// into such a file would lose them at the next Open, which would then
// assign their offsets again. It costs an fstat and a stat, and runs at
// most every activeCheckEvery at group commits (SyncAlways), and at every
// interval sync (SyncInterval, force), never per record. On damage it
// leaves a head mark (flag lost) so that the next Open refuses to reuse the
// offsets, and returns a *CorruptionError.
func (l *Log) checkActive(force bool) error {
	w := &l.w
	if now := time.Now(); !force && now.Before(w.nextCheck) {
		return nil
	} else {
		w.nextCheck = now.Add(activeCheckEvery)
	}
	fst, err := w.f.Stat()
	if err != nil {
		return nil // cannot tell on this platform or file system
	}
	pst, perr := l.fs.Stat(filepath.Join(l.dir, w.seg.name))
	var reason string
	switch {
	case fst.Links == 0:
		reason = "was removed"
	case errors.Is(perr, iofs.ErrNotExist):
		reason = "was renamed away"
	case perr == nil && (pst.Ino != fst.Ino || pst.Dev != fst.Dev):
		reason = "was replaced by another file of the same name"
	case fst.Size < w.seg.size:
		reason = fmt.Sprintf("was cut from %d to %d bytes", w.seg.size, fst.Size)
	default:
		return nil
	}
	head := l.head.Load()
	cerr := &CorruptionError{Dir: l.dir, Segment: w.seg.name, Pos: w.pos, Offset: head,
		Reason: "the active segment " + reason + " while the log was running; records acknowledged in it are lost"}
	if err := l.writeMark(headMark{flags: markLost, head: head, segFirst: w.seg.first, segID: w.seg.id}); err != nil {
		l.log.Error("mmaplog: cannot write the head mark after losing the active segment", "dir", l.dir, "err", err)
	}
	return cerr
}

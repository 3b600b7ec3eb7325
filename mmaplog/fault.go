package mmaplog

import (
	"fmt"
	"runtime"
)

// catchFault turns r, recovered from a read of a mapped segment under
// debug.SetPanicOnFault, into a *CorruptionError and stops the log's
// appends with it: the mapping was cut short under the log (its file
// truncated, or the device failed), so acknowledged records are gone. Any
// other panic is raised again.
func (l *Log) catchFault(r any, s *segment, pos int64, off uint64) error {
	re, ok := r.(runtime.Error)
	fa, hasAddr := r.(interface{ Addr() uintptr })
	if !ok || !hasAddr {
		panic(r)
	}
	name := ""
	if s != nil {
		name = s.name
	}
	cerr := &CorruptionError{Dir: l.dir, Segment: name, Pos: pos, Offset: off,
		Reason: fmt.Sprintf("memory fault at %#x reading the mapped segment (%v): the file was cut short or its device failed", fa.Addr(), re)}
	l.log.Error("mmaplog: memory fault reading a segment", "dir", l.dir, "segment", name, "pos", pos, "offset", off, "err", re)
	l.poison(cerr)
	return cerr
}

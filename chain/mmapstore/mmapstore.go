// Package mmapstore adapts mmaplog, atedb's durable memory-mapped log, to
// the [chain.Log] interface, so that cmd/atedb can hand chain.Registry a
// real log:
//
//	reg, err := chain.NewRegistry(chain.Config{
//		Root: logsPath,
//		Open: mmapstore.Opener(mmaplog.Options{Sync: mmaplog.SyncAlways}),
//	})
//
// Records are converted field by field; payloads still alias the log's
// memory map, so history replay copies each event once, from the map into
// the outgoing frame.
package mmapstore

import (
	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/mmaplog"
)

// Opener returns a chain.Opener that opens (creating) an mmaplog.Log with
// opts in each chain's directory.
func Opener(opts mmaplog.Options) chain.Opener {
	return func(dir string) (chain.Log, error) {
		l, err := mmaplog.Open(dir, opts)
		if err != nil {
			return nil, err
		}
		return Log{l}, nil
	}
}

// Log is an *mmaplog.Log seen as a chain.Log. It is safe for concurrent
// use, as the log is.
type Log struct{ *mmaplog.Log }

var _ chain.Log = Log{}

// NewCursor implements chain.Log.
func (l Log) NewCursor(from uint64) (chain.Cursor, error) {
	c, err := l.Log.NewCursor(from)
	if err != nil {
		return nil, err
	}
	return &cursor{c: c}, nil
}

type cursor struct {
	c   *mmaplog.Cursor
	buf []mmaplog.Record
}

// Next implements chain.Cursor. It does not allocate once its buffer has
// grown to cap(dst).
func (c *cursor) Next(dst []chain.Record, maxBytes int) ([]chain.Record, error) {
	n := cap(dst)
	if n == 0 {
		n = 1
	}
	if cap(c.buf) < n {
		c.buf = make([]mmaplog.Record, 0, n)
	}
	recs, err := c.c.Next(c.buf[:0:n], maxBytes)
	dst = dst[:0]
	for _, r := range recs {
		dst = append(dst, chain.Record{Offset: r.Offset, Time: r.Time, Payload: r.Payload})
	}
	return dst, err
}

func (c *cursor) Close() error { return c.c.Close() }

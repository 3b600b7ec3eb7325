// Package mmapstore shows the storage root (package store) and its logs
// (package mmaplog) to package chain, so that cmd/atedb can hand
// chain.Registry a real store:
//
//	root, err := store.Open(logsPath, store.Options{Journal: true})
//	reg, err := chain.NewRegistry(chain.Config{Store: mmapstore.New(root)})
//
// A chain key maps to the directory <logs>/<key segments>/@log
// (chain.LogDirName). Records are converted field by field; payloads still
// alias the log's memory map, so history replay copies each event once,
// from the map into the outgoing frame.
package mmapstore

import (
	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/mmaplog"
	"github.com/atedb/atedb/store"
)

// Store is a store.Root seen as a chain.Store.
type Store struct{ root *store.Root }

var _ chain.Store = Store{}

// New returns root as a chain.Store.
func New(root *store.Root) Store { return Store{root} }

// Open implements chain.Store.
func (s Store) Open(key chain.Key) (chain.Log, error) {
	l, err := s.root.Open(key.Dir(""))
	if err != nil {
		return nil, err
	}
	return Log{l}, nil
}

// Exists implements chain.Store.
func (s Store) Exists(key chain.Key) (bool, error) { return s.root.Exists(key.Dir("")) }

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

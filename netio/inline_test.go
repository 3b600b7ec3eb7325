package netio

import (
	"fmt"
	"sync"
	"testing"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/chain/mmapstore"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/mmaplog"
	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/store"
)

// statsStore is the real storage, remembering the logs it opened so that a
// test can read their counters.
type statsStore struct {
	chain.Store
	mu   sync.Mutex
	logs map[chain.Key]mmapstore.Log
}

func (s *statsStore) Open(key chain.Key) (chain.Log, error) {
	l, err := s.Store.Open(key)
	if err == nil {
		s.mu.Lock()
		s.logs[key] = l.(mmapstore.Log)
		s.mu.Unlock()
	}
	return l, err
}

func (s *statsStore) stats(t *testing.T, key string) mmaplog.Stats {
	t.Helper()
	k, _ := chain.ParseKey(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.logs[k]
	if !ok {
		t.Fatalf("chain %s was not opened", key)
	}
	return l.Stats()
}

// TestAppendCommitPlacement: the reader's idle probe decides, with the
// log, where appends commit. A client that waits for each confirmation
// gets every append committed on the connection's reader (inline: no
// hand-off to the log's writer); a client that sends many appends before
// reading a reply gets them grouped by the log's writer, not committed one
// fdatasync at a time on a reader that has more requests buffered.
func TestAppendCommitPlacement(t *testing.T) {
	root, err := store.Open(t.TempDir(), store.Options{
		Log:    mmaplog.Options{SegmentSize: 4 << 20, MaxRecordSize: 1 << 20},
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	st := &statsStore{Store: mmapstore.New(root), logs: map[chain.Key]mmapstore.Log{}}
	ts := startServer(t, Config{}, chain.Config{Store: st}, storeOpts{})

	c := dial(t, ts.addrs["v4"], "placement/sync", kex.KeySizeNone)
	expect[*proto.Opened](c)
	const sequential = 30
	for id := uint64(1); id <= sequential; id++ {
		c.send(&proto.Append{Channel: 0, CommitID: id, Events: testEvents(fmt.Sprintf("s%d", id), 1)})
		if m := expect[*proto.Confirmed](c); m.CommitID != id {
			t.Fatalf("Confirmed %d, want %d", m.CommitID, id)
		}
	}
	if s := st.stats(t, "placement/sync"); s.InlineCommits != sequential {
		t.Fatalf("one append at a time: %d of %d committed inline (stats %+v)", s.InlineCommits, sequential, s)
	}

	p := dial(t, ts.addrs["v4"], "placement/pipelined", kex.KeySizeNone)
	expect[*proto.Opened](p)
	const pipelined = 400
	for id := uint64(1); id <= pipelined; id++ {
		body, err := (&proto.Append{Channel: 0, CommitID: id, Events: testEvents(fmt.Sprintf("p%d", id), 1)}).AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.fc.WriteFrame(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.fc.Flush(); err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= pipelined; id++ {
		if m := expect[*proto.Confirmed](p); m.CommitID != id {
			t.Fatalf("Confirmed %d, want %d", m.CommitID, id)
		}
	}
	s := st.stats(t, "placement/pipelined")
	if s.Commits > pipelined/4 || s.MaxGroup < 4 {
		t.Fatalf("%d pipelined appends took %d group commits (largest %d, %d inline): want them grouped", pipelined, s.Commits, s.MaxGroup, s.InlineCommits)
	}
	t.Logf("pipelined: %d appends in %d commits (largest group %d, %d inline)", pipelined, s.Commits, s.MaxGroup, s.InlineCommits)
}

package chain_test

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
)

// stubLog is a chain.Log that confirms appends only when the test calls
// flush, and otherwise does nothing: it isolates the chain's own cost.
type stubLog struct {
	mu    sync.Mutex
	next  uint64
	head  uint64
	queue []stubAppend
	ready []stubAppend
}

type stubAppend struct {
	first uint64
	n     int
	done  func(uint64, error)
}

func (l *stubLog) Enqueue(payloads [][]byte, done func(uint64, error)) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := l.next
	l.next += uint64(len(payloads))
	l.queue = append(l.queue, stubAppend{first, len(payloads), done})
	return first, nil
}

// flush confirms every queued append, in order.
func (l *stubLog) flush() {
	l.mu.Lock()
	l.ready, l.queue = l.queue, l.ready[:0]
	if n := len(l.ready); n > 0 {
		last := l.ready[n-1]
		l.head = last.first + uint64(last.n)
	}
	l.mu.Unlock()
	for i, a := range l.ready {
		a.done(a.first, nil)
		l.ready[i] = stubAppend{}
	}
}

func (l *stubLog) Head() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}
func (l *stubLog) Notify() <-chan struct{}                { return make(chan struct{}) }
func (l *stubLog) SeekTime(int64) (uint64, error)         { return 0, errors.New("stub") }
func (l *stubLog) NewCursor(uint64) (chain.Cursor, error) { return nil, errors.New("stub") }
func (l *stubLog) Err() error                             { return nil }
func (l *stubLog) Commit(func() bool)                     {}
func (l *stubLog) Close() error                           { return nil }

// appendBench appends single-event batches of 1 KiB through one writer of
// a chain on a stubLog.
type appendBench struct {
	log  *stubLog
	h    *chain.Handle
	w    *chain.Writer
	ev   []byte
	req  chain.AppendRequest
	seq  uint64
	got  int
	done func(chain.Result)
}

func newAppendBench(tb testing.TB) *appendBench {
	a := &appendBench{log: &stubLog{}}
	cfg := chain.Config{Logger: quietLogger(),
		Store: openFunc(func(chain.Key) (chain.Log, error) { return a.log, nil })}
	r, err := chain.NewRegistry(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	key, err := chain.ParseKey("bench/append")
	if err != nil {
		tb.Fatal(err)
	}
	o := &chain.Owner{}
	if a.h, err = r.Acquire(tb.Context(), key, o); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.h.Release)
	a.w = chain.NewWriter(o)
	a.ev = encodeTestEvent(string(make([]byte, 1024)), time.Time{})
	a.req = chain.AppendRequest{Events: [][]byte{a.ev}}
	a.done = func(r chain.Result) {
		if r.Err != nil {
			panic(r.Err)
		}
		a.got++
	}
	return a
}

// one appends a distinct event and confirms it.
func (a *appendBench) one() {
	a.seq++
	binary.LittleEndian.PutUint64(a.ev[len(a.ev)-8:], a.seq) // last bytes are data: still valid, not a retry
	a.h.Append(a.w, a.req, a.done)
	a.log.flush()
}

// TestAppendAllocs bounds the chain's allocations for a one-event append:
// the batch, the block holding the event's copy and the log's callback.
func TestAppendAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	a := newAppendBench(t)
	for range 300 { // fill the scratch pools and the dedup table's first sizes
		a.one()
	}
	if got := testing.AllocsPerRun(1000, a.one); got > 3 {
		t.Fatalf("%.1f allocations per one-event append, want at most 3", got)
	}
	if a.got != 300+1001 {
		t.Fatalf("%d appends confirmed, want %d", a.got, 300+1001)
	}
}

// BenchmarkChainAppend is the chain's own cost of a one-event 1 KiB append
// (decode, hash, dedup, copy, in-order confirmation), without the log.
func BenchmarkChainAppend(b *testing.B) {
	a := newAppendBench(b)
	b.SetBytes(int64(len(a.ev)))
	b.ReportAllocs()
	for b.Loop() {
		a.one()
	}
}

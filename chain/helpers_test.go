package chain_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/chain/memlog"
)

// testEvent returns a distinct valid encoded event named by s.
func testEvent(s string) []byte { return encodeTestEvent(s, time.Time{}) }

func testEvents(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = testEvent(fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

type memStore struct {
	mu    sync.Mutex
	logs  map[chain.Key]*memlog.Log // the last log opened for each key
	opts  memlog.Options
	opens int
}

func (m *memStore) Open(key chain.Key) (chain.Log, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opens++
	l := memlog.New(m.opts)
	if m.logs == nil {
		m.logs = map[chain.Key]*memlog.Log{}
	}
	m.logs[key] = l
	return l, nil
}

func (m *memStore) Exists(key chain.Key) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.logs[key]
	return ok, nil
}

func (m *memStore) get(key chain.Key) *memlog.Log {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.logs[key]
}

// openFunc is a chain.Store made of an open function (Exists: never).
type openFunc func(key chain.Key) (chain.Log, error)

func (f openFunc) Open(key chain.Key) (chain.Log, error) { return f(key) }
func (f openFunc) Exists(chain.Key) (bool, error)        { return false, nil }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestRegistry(t *testing.T, cfg chain.Config) *chain.Registry {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	r, err := chain.NewRegistry(cfg)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func mustKey(t *testing.T, s string) chain.Key {
	t.Helper()
	k, err := chain.ParseKey(s)
	if err != nil {
		t.Fatalf("ParseKey(%q): %v", s, err)
	}
	return k
}

func acquire(t *testing.T, r *chain.Registry, key string, o *chain.Owner) *chain.Handle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := r.Acquire(ctx, mustKey(t, key), o)
	if err != nil {
		t.Fatalf("Acquire(%q): %v", key, err)
	}
	return h
}

// appendWait appends synchronously and returns the result.
func appendWait(t *testing.T, c *chain.Handle, w *chain.Writer, req chain.AppendRequest) chain.Result {
	t.Helper()
	ch := make(chan chain.Result, 1)
	c.Append(w, req, func(r chain.Result) { ch <- r })
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("append did not complete")
		return chain.Result{}
	}
}

// readAll subscribes and collects events until io.EOF or n events.
func readSub(t *testing.T, s *chain.Subscription, n int) ([]chain.Record, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []chain.Record
	for n < 0 || len(out) < n {
		recs, err := s.Next(ctx)
		if err != nil {
			return out, err
		}
		for _, r := range recs {
			r.Payload = append([]byte(nil), r.Payload...)
			out = append(out, r)
		}
	}
	return out, nil
}

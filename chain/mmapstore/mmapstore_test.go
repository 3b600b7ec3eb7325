package mmapstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/chain/mmapstore"
	"github.com/atedb/atedb/mmaplog"
	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/store"
)

func event(s string) []byte {
	b, err := (&proto.Event{Data: []byte(s)}).AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func events(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = event(fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// stack is a registry on a storage root; Close closes both, in order.
type stack struct {
	*chain.Registry
	root *store.Root
}

func (s stack) Close() error {
	err := s.Registry.Close()
	if rerr := s.root.Close(); err == nil {
		err = rerr
	}
	return err
}

func open(t *testing.T, dir string) stack {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	root, err := store.Open(dir, store.Options{
		Log:    mmaplog.Options{SegmentSize: 1 << 20, MaxRecordSize: 64 << 10},
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := chain.NewRegistry(chain.Config{Store: mmapstore.New(root), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return stack{r, root}
}

func appendWait(t *testing.T, h *chain.Handle, w *chain.Writer, req chain.AppendRequest) chain.Result {
	t.Helper()
	ch := make(chan chain.Result, 1)
	h.Append(w, req, func(r chain.Result) { ch <- r })
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("append did not complete")
		return chain.Result{}
	}
}

// TestRealLogAcrossRestart runs the write path and subscriptions on the
// real memory-mapped log, closes everything, reopens, and checks that the
// history survived and that a retry of a batch confirmed before the restart
// still gets its original offsets (the duplicate window is rebuilt).
func TestRealLogAcrossRestart(t *testing.T) {
	root := t.TempDir()
	key, _ := chain.ParseKey("real/db")
	o := &chain.Owner{}
	r := open(t, root)
	h, err := r.Acquire(context.Background(), key, o)
	if err != nil {
		t.Fatal(err)
	}
	w := chain.NewWriter(o)
	for i := range 20 {
		if res := appendWait(t, h, w, chain.AppendRequest{Events: events(fmt.Sprintf("b%d", i), 50)}); res.Err != nil || res.First != uint64(i*50) {
			t.Fatalf("batch %d: %+v", i, res)
		}
	}
	// History then live from the same cursor, while appends go on.
	sub, err := h.Subscribe(chain.SubscribeOptions{History: true, Live: true, BatchEvents: 64})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w := chain.NewWriter(o)
		for i := range 10 {
			done := make(chan chain.Result, 1)
			h.Append(w, chain.AppendRequest{Events: events(fmt.Sprintf("live%d", i), 10)}, func(r chain.Result) { done <- r })
			if r := <-done; r.Err != nil {
				t.Errorf("live append %d: %v", i, r.Err)
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	next := uint64(0)
	for next < 1100 {
		recs, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("Next at %d: %v", next, err)
		}
		for _, rec := range recs {
			if rec.Offset != next {
				t.Fatalf("offset %d, want %d", rec.Offset, next)
			}
			var want []byte
			if next < 1000 {
				want = event(fmt.Sprintf("b%d-%d", next/50, next%50))
			} else {
				want = event(fmt.Sprintf("live%d-%d", (next-1000)/10, (next-1000)%10))
			}
			if string(rec.Payload) != string(want) {
				t.Fatalf("offset %d: payload mismatch", next)
			}
			next++
		}
	}
	sub.Close()
	h.Release()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	r = open(t, root)
	defer r.Close()
	h, err = r.Acquire(context.Background(), key, o)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	if h.Head() != 1100 {
		t.Fatalf("Head after restart = %d, want 1100", h.Head())
	}
	res := appendWait(t, h, chain.NewWriter(o), chain.AppendRequest{Events: events("b7", 50)})
	if res.Err != nil || !res.Duplicate || res.First != 350 {
		t.Fatalf("retry after restart: %+v, want the original offset 350", res)
	}
	res = appendWait(t, h, chain.NewWriter(o), chain.AppendRequest{Events: events("new", 1), HasExpect: true, Expect: 1100})
	if res.Err != nil || res.First != 1100 {
		t.Fatalf("append after restart: %+v", res)
	}
	s2, err := h.Subscribe(chain.SubscribeOptions{History: true, From: 1095})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	n := 0
	for {
		recs, err := s2.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n += len(recs)
	}
	if n != 6 {
		t.Fatalf("history from 1095: %d events, want 6", n)
	}
}

// TestInlineAppend checks the log's inline commits through the chain: a
// lone appender whose writer says it is idle (chain.NewIdleWriter) gets its
// batch confirmed before Append returns (committed on the caller's
// goroutine), and concurrent idle appenders, mixed with plain ones, all get
// their confirmations with dense, distinct offsets.
func TestInlineAppend(t *testing.T) {
	root := t.TempDir()
	key, _ := chain.ParseKey("real/inline")
	o := &chain.Owner{}
	r := open(t, root)
	defer r.Close()
	h, err := r.Acquire(context.Background(), key, o)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	idle := func() bool { return true }
	w := chain.NewIdleWriter(o, idle)
	for i := range 10 {
		var got *chain.Result
		h.Append(w, chain.AppendRequest{Events: events(fmt.Sprintf("lone%d", i), 2)},
			func(r chain.Result) { got = &r }) // a plain write: -race checks it is on this goroutine
		if got == nil {
			t.Fatalf("inline append %d: not confirmed when Append returned", i)
		}
		if got.Err != nil || got.First != uint64(2*i) || got.Count != 2 {
			t.Fatalf("inline append %d: %+v", i, *got)
		}
	}
	const appenders, each = 6, 40
	offsets := make(chan uint64, appenders*each)
	done := make(chan struct{})
	for a := range appenders {
		go func() {
			defer func() { done <- struct{}{} }()
			w := chain.NewWriter(o)
			if a%2 == 0 {
				w = chain.NewIdleWriter(o, idle)
			}
			for i := range each {
				res := appendWait(t, h, w, chain.AppendRequest{Events: events(fmt.Sprintf("c%d-%d", a, i), 1)})
				if res.Err != nil {
					t.Errorf("appender %d: %v", a, res.Err)
					return
				}
				offsets <- res.First
			}
		}()
	}
	for range appenders {
		<-done
	}
	close(offsets)
	seen := map[uint64]bool{}
	for off := range offsets {
		if seen[off] || off < 20 || off >= 20+appenders*each {
			t.Fatalf("offset %d duplicated or out of range", off)
		}
		seen[off] = true
	}
	if len(seen) != appenders*each {
		t.Fatalf("%d confirmations, want %d", len(seen), appenders*each)
	}
}

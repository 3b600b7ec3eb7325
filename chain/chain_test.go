package chain_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/chain/memlog"
)

func TestRegistrySharesConcurrentOpens(t *testing.T) {
	var opens atomic.Int32
	release := make(chan struct{})
	store := &memStore{}
	r := newTestRegistry(t, chain.Config{Store: openFunc(func(key chain.Key) (chain.Log, error) {
		opens.Add(1)
		<-release
		return store.Open(key)
	})})
	const n = 20
	handles := make([]*chain.Handle, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			h, err := r.Acquire(context.Background(), mustKey(t, "shared/db"), &chain.Owner{})
			if err != nil {
				t.Errorf("Acquire: %v", err)
				return
			}
			handles[i] = h
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if got := opens.Load(); got != 1 {
		t.Fatalf("opener called %d times, want 1", got)
	}
	for i, h := range handles {
		if h == nil || h.Chain != handles[0].Chain {
			t.Fatalf("handle %d does not share chain 0", i)
		}
		h.Release()
	}
}

func TestRegistryOpenDoesNotBlockOthers(t *testing.T) {
	store := &memStore{}
	slow := make(chan struct{})
	r := newTestRegistry(t, chain.Config{Store: openFunc(func(key chain.Key) (chain.Log, error) {
		if key.String() == "slow" {
			<-slow
		}
		return store.Open(key)
	})})
	defer close(slow)
	slowDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h, err := r.Acquire(ctx, mustKey(t, "slow"), &chain.Owner{})
		if err == nil {
			h.Release()
		}
		slowDone <- err
	}()
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	h := acquire(t, r, "fast", &chain.Owner{})
	h.Release()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("opening another chain took %v while one open was blocked", d)
	}
	select {
	case err := <-slowDone:
		t.Fatalf("slow open finished early: %v", err)
	default:
	}
	// A cancelled Acquire on the blocked chain returns at once.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.Acquire(ctx, mustKey(t, "slow"), &chain.Owner{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with expiring context = %v, want DeadlineExceeded", err)
	}
}

func TestRegistryIdleClose(t *testing.T) {
	store := &memStore{}
	r := newTestRegistry(t, chain.Config{Store: store, IdleGrace: 20 * time.Millisecond})
	h := acquire(t, r, "idle/db", &chain.Owner{})
	time.Sleep(60 * time.Millisecond)
	if got := r.Stats().Open; got != 1 {
		t.Fatalf("chain in use closed: open = %d", got)
	}
	h.Release()
	h.Release() // harmless
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Open != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle chain not closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h2 := acquire(t, r, "idle/db", &chain.Owner{})
	defer h2.Release()
	if store.opens != 2 {
		t.Fatalf("opens = %d, want 2 (reopened after idle close)", store.opens)
	}
	// Reacquired within the grace period: not closed.
	h2.Release()
	h3 := acquire(t, r, "idle/db", &chain.Owner{})
	defer h3.Release()
	if store.opens != 2 {
		t.Fatalf("opens = %d, want 2 (reacquired within grace)", store.opens)
	}
}

func TestRegistryAcquireExisting(t *testing.T) {
	store := &memStore{}
	r := newTestRegistry(t, chain.Config{Store: store, IdleGrace: time.Millisecond})
	ctx := context.Background()
	// Neither open nor stored: refused, and nothing is created, not even
	// the directory of a parent segment.
	for _, k := range []string{"missing/db", "a"} {
		if _, err := r.AcquireExisting(ctx, mustKey(t, k), &chain.Owner{}); !errors.Is(err, chain.ErrNotFound) {
			t.Fatalf("AcquireExisting(%s) = %v, want ErrNotFound", k, err)
		}
	}
	if store.opens != 0 {
		t.Fatalf("AcquireExisting opened %d logs", store.opens)
	}
	// A key whose parent is a chain is not a chain itself.
	h := acquire(t, r, "a/b", &chain.Owner{})
	if _, err := r.AcquireExisting(ctx, mustKey(t, "a"), &chain.Owner{}); !errors.Is(err, chain.ErrNotFound) {
		t.Fatalf("AcquireExisting of a parent segment = %v, want ErrNotFound", err)
	}
	// Open: shared with the open chain.
	h2, err := r.AcquireExisting(ctx, mustKey(t, "a/b"), &chain.Owner{})
	if err != nil || h2.Chain != h.Chain {
		t.Fatalf("AcquireExisting of an open chain = %v", err)
	}
	h.Release()
	h2.Release()
	// Closed after its idle grace, but stored: opened again.
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Open != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle chain not closed")
		}
		time.Sleep(time.Millisecond)
	}
	h3, err := r.AcquireExisting(ctx, mustKey(t, "a/b"), &chain.Owner{})
	if err != nil {
		t.Fatalf("AcquireExisting of a stored chain = %v", err)
	}
	h3.Release()
	if store.opens != 2 {
		t.Fatalf("opens = %d, want 2", store.opens)
	}
}

func TestRegistryOpenError(t *testing.T) {
	fail := true
	store := &memStore{}
	r := newTestRegistry(t, chain.Config{Store: openFunc(func(key chain.Key) (chain.Log, error) {
		if fail {
			return nil, errors.New("disk on fire")
		}
		return store.Open(key)
	})})
	if _, err := r.Acquire(context.Background(), mustKey(t, "x"), &chain.Owner{}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("disk on fire")) {
		t.Fatalf("Acquire = %v, want the open error", err)
	}
	fail = false
	h := acquire(t, r, "x", &chain.Owner{})
	h.Release()
}

func TestAppendConfirmsOnlyWhenDurable(t *testing.T) {
	store := &memStore{opts: memlog.Options{Hold: true}}
	r := newTestRegistry(t, chain.Config{Store: store})
	h := acquire(t, r, "c", &chain.Owner{})
	defer h.Release()
	w := chain.NewWriter(h.Owner())
	got := make(chan chain.Result, 1)
	h.Append(w, chain.AppendRequest{Events: testEvents("a", 3)}, func(r chain.Result) { got <- r })
	select {
	case r := <-got:
		t.Fatalf("confirmed before durable: %+v", r)
	case <-time.After(20 * time.Millisecond):
	}
	if h.Head() != 0 {
		t.Fatalf("Head = %d before durable", h.Head())
	}
	store.get(h.Key()).Release(1)
	res := <-got
	if res.Err != nil || res.First != 0 || res.Count != 3 {
		t.Fatalf("result %+v, want offsets 0..2", res)
	}
	if h.Head() != 3 {
		t.Fatalf("Head = %d, want 3", h.Head())
	}
}

func TestAppendRetryReturnsOriginalOffsets(t *testing.T) {
	store := &memStore{opts: memlog.Options{Hold: true}}
	r := newTestRegistry(t, chain.Config{Store: store})
	h := acquire(t, r, "c", &chain.Owner{})
	defer h.Release()
	w := chain.NewWriter(h.Owner())
	store.get(h.Key()).Release(-1)
	appendWait(t, h, w, chain.AppendRequest{Events: testEvents("pre", 2)})

	// Hold the original: the retry must wait for it, then get its offsets.
	first := make(chan chain.Result, 1)
	retry := make(chan chain.Result, 1)
	batch := testEvents("b", 3)
	h.Append(w, chain.AppendRequest{Events: batch}, func(r chain.Result) { first <- r })
	h.Append(w, chain.AppendRequest{Events: batch}, func(r chain.Result) { retry <- r })
	r1, r2 := <-first, <-retry
	if r1.Err != nil || r2.Err != nil {
		t.Fatalf("results %+v %+v", r1, r2)
	}
	if r1.First != 2 || r1.Count != 3 || r1.Duplicate {
		t.Fatalf("original %+v, want first 2 count 3", r1)
	}
	if r2.First != 2 || r2.Count != 3 || !r2.Duplicate {
		t.Fatalf("retry %+v, want the original offsets, Duplicate", r2)
	}
	if h.Head() != 5 {
		t.Fatalf("Head = %d, want 5 (retry stored nothing)", h.Head())
	}
	// A retry long after, of the first batch, too.
	r3 := appendWait(t, h, w, chain.AppendRequest{Events: testEvents("pre", 2)})
	if r3.Err != nil || r3.First != 0 || !r3.Duplicate {
		t.Fatalf("late retry %+v", r3)
	}
}

func TestAppendRetryWaitsForInFlightOriginal(t *testing.T) {
	store := &memStore{opts: memlog.Options{Hold: true}}
	r := newTestRegistry(t, chain.Config{Store: store})
	h := acquire(t, r, "c", &chain.Owner{})
	defer h.Release()
	w1, w2 := chain.NewWriter(h.Owner()), chain.NewWriter(h.Owner())
	batch := testEvents("b", 2)
	first := make(chan chain.Result, 1)
	retry := make(chan chain.Result, 1)
	h.Append(w1, chain.AppendRequest{Events: batch}, func(r chain.Result) { first <- r })
	h.Append(w2, chain.AppendRequest{Events: batch}, func(r chain.Result) { retry <- r })
	select {
	case r := <-retry:
		t.Fatalf("retry answered before the original is durable: %+v", r)
	case <-time.After(20 * time.Millisecond):
	}
	store.get(h.Key()).Release(1)
	if r := <-first; r.Err != nil || r.First != 0 {
		t.Fatalf("original %+v", r)
	}
	if r := <-retry; r.Err != nil || r.First != 0 || !r.Duplicate {
		t.Fatalf("retry %+v", r)
	}
}

func TestAppendRefusals(t *testing.T) {
	store := &memStore{}
	r := newTestRegistry(t, chain.Config{Store: store, MaxBatchEvents: 5, MaxBatchBytes: 1000})
	h := acquire(t, r, "c", &chain.Owner{})
	defer h.Release()
	stored := testEvents("s", 2)
	if res := appendWait(t, h, chain.NewWriter(h.Owner()), chain.AppendRequest{Events: stored}); res.Err != nil {
		t.Fatal(res.Err)
	}
	big := bytes.Repeat([]byte("x"), 1001)
	cases := map[string]struct {
		req   chain.AppendRequest
		code  chain.Code
		index int
	}{
		"partial duplicate": {chain.AppendRequest{Events: [][]byte{testEvent("new"), stored[1]}}, chain.CodeDuplicate, 1},
		"reordered retry":   {chain.AppendRequest{Events: [][]byte{stored[1], stored[0]}}, chain.CodeDuplicate, 0},
		"twice in batch":    {chain.AppendRequest{Events: [][]byte{testEvent("t"), testEvent("t")}}, chain.CodeDuplicate, 1},
		"conflict":          {chain.AppendRequest{Events: testEvents("c", 1), HasExpect: true, Expect: 1}, chain.CodeConflict, -1},
		"too many events":   {chain.AppendRequest{Events: testEvents("m", 6)}, chain.CodeTooLarge, -1},
		"too many bytes":    {chain.AppendRequest{Events: [][]byte{encodeTestEvent(string(big), time.Time{})}}, chain.CodeTooLarge, -1},
		"empty event":       {chain.AppendRequest{Events: [][]byte{testEvent("ok"), {}}}, chain.CodeInvalid, 1},
		"garbage event":     {chain.AppendRequest{Events: [][]byte{{0x05, 0x07, 0xff}}}, chain.CodeInvalid, 0},
		"future timestamp":  {chain.AppendRequest{Events: [][]byte{testEvent("ok2"), encodeTestEvent("f", time.Now().Add(3*time.Second))}}, chain.CodeFuture, 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res := appendWait(t, h, chain.NewWriter(h.Owner()), tc.req)
			if res.Err == nil {
				t.Fatalf("accepted: %+v", res)
			}
			if res.Err.Code != tc.code || res.Err.Index != tc.index {
				t.Fatalf("refused with %v (index %d), want %v (index %d): %s", res.Err.Code, res.Err.Index, tc.code, tc.index, res.Err.Reason)
			}
			if res.Err.Head != 2 {
				t.Fatalf("head = %d, want 2 (the chain's next offset, on every refusal)", res.Err.Head)
			}
		})
	}
	if h.Head() != 2 {
		t.Fatalf("Head = %d after refusals, want 2 (nothing stored)", h.Head())
	}
	// A timestamp a little ahead (within the 2 s tolerance) or in the past is fine.
	if res := appendWait(t, h, chain.NewWriter(h.Owner()), chain.AppendRequest{Events: [][]byte{
		encodeTestEvent("soon", time.Now().Add(time.Second)), encodeTestEvent("past", time.Now().Add(-time.Hour))}}); res.Err != nil {
		t.Fatalf("timestamps within tolerance refused: %v", res.Err)
	}
	// The condition that holds is accepted.
	if res := appendWait(t, h, chain.NewWriter(h.Owner()), chain.AppendRequest{Events: testEvents("e", 1), HasExpect: true, Expect: 4}); res.Err != nil || res.First != 4 {
		t.Fatalf("matching condition: %+v", res)
	}
}

func TestPipelineAbortsAfterFailure(t *testing.T) {
	store := &memStore{opts: memlog.Options{Hold: true}}
	r := newTestRegistry(t, chain.Config{Store: store})
	h := acquire(t, r, "c", &chain.Owner{})
	defer h.Release()
	w := chain.NewWriter(h.Owner())
	results := make([]chan chain.Result, 4)
	reqs := []chain.AppendRequest{
		{Events: testEvents("p1", 2), Seq: 1},
		{Events: testEvents("p2", 2), Seq: 2, HasExpect: true, Expect: 99}, // fails
		{Events: testEvents("p3", 2), Seq: 3},
		{Events: testEvents("p4", 2), Seq: 4},
	}
	for i, req := range reqs {
		results[i] = make(chan chain.Result, 1)
		h.Append(w, req, func(r chain.Result) { results[i] <- r })
	}
	store.get(h.Key()).Release(-1)
	if r := <-results[0]; r.Err != nil || r.First != 0 {
		t.Fatalf("batch 1: %+v", r)
	}
	if r := <-results[1]; r.Err == nil || r.Err.Code != chain.CodeConflict {
		t.Fatalf("batch 2: %+v, want conflict", r)
	}
	for i := 2; i < 4; i++ {
		if r := <-results[i]; r.Err == nil || r.Err.Code != chain.CodeAborted {
			t.Fatalf("batch %d: %+v, want aborted", i+1, r)
		}
	}
	// Another writer on the same chain is not affected.
	if r := appendWait(t, h, chain.NewWriter(h.Owner()), chain.AppendRequest{Events: testEvents("other", 1)}); r.Err != nil || r.First != 2 {
		t.Fatalf("other writer: %+v", r)
	}
	w.Reset()
	if r := appendWait(t, h, w, chain.AppendRequest{Events: testEvents("p3", 2)}); r.Err != nil || r.First != 3 {
		t.Fatalf("after Reset: %+v", r)
	}
}

func TestPoisonFailsInFlightAndLater(t *testing.T) {
	store := &memStore{opts: memlog.Options{Hold: true}}
	r := newTestRegistry(t, chain.Config{Store: store, IdleGrace: time.Millisecond})
	h := acquire(t, r, "c", &chain.Owner{})
	w := chain.NewWriter(h.Owner())
	a, b := make(chan chain.Result, 1), make(chan chain.Result, 1)
	h.Append(w, chain.AppendRequest{Events: testEvents("a", 1)}, func(r chain.Result) { a <- r })
	h.Append(chain.NewWriter(h.Owner()), chain.AppendRequest{Events: testEvents("b", 1)}, func(r chain.Result) { b <- r })
	store.get(h.Key()).Poison(errors.New("fsync: input/output error"))
	for _, ch := range []chan chain.Result{a, b} {
		if r := <-ch; r.Err == nil || r.Err.Code != chain.CodeStorage {
			t.Fatalf("in-flight batch: %+v, want storage failure", r)
		}
	}
	if r := appendWait(t, h, chain.NewWriter(h.Owner()), chain.AppendRequest{Events: testEvents("c", 1)}); r.Err == nil || r.Err.Code != chain.CodeStorage {
		t.Fatalf("later batch: %+v, want storage failure", r)
	}
	if h.Head() != 0 {
		t.Fatalf("Head = %d, want 0", h.Head())
	}
	// A poisoned chain is kept open (not idle-closed and reopened).
	h.Release()
	time.Sleep(30 * time.Millisecond)
	h2 := acquire(t, r, "c", &chain.Owner{})
	defer h2.Release()
	if h2.Err() == nil || store.opens != 1 {
		t.Fatalf("poisoned chain was reopened (opens %d, err %v)", store.opens, h2.Err())
	}
}

func TestBarrierWaitsForEarlierBatches(t *testing.T) {
	store := &memStore{opts: memlog.Options{Hold: true}}
	r := newTestRegistry(t, chain.Config{Store: store})
	h := acquire(t, r, "c", &chain.Owner{})
	defer h.Release()
	w := chain.NewWriter(h.Owner())
	h.Append(w, chain.AppendRequest{Events: testEvents("a", 2)}, func(chain.Result) {})
	barrier := make(chan chain.Result, 1)
	h.Append(w, chain.AppendRequest{}, func(r chain.Result) { barrier <- r })
	select {
	case r := <-barrier:
		t.Fatalf("barrier passed before earlier batch was durable: %+v", r)
	case <-time.After(20 * time.Millisecond):
	}
	store.get(h.Key()).Release(1)
	if r := <-barrier; r.Err != nil || r.First != 2 || r.Count != 0 {
		t.Fatalf("barrier %+v, want first 2 count 0", r)
	}
}

type rejectSecond struct{}

func (rejectSecond) Validate(_ chain.Key, _ *chain.Writer, events []chain.Event) error {
	if string(events[0].Meta.Data) != "v-0" {
		return fmt.Errorf("validator saw data %q, want the decoded event", events[0].Meta.Data)
	}
	if len(events) > 1 {
		return &chain.RejectError{Index: 1, Reason: "no second events today"}
	}
	return nil
}

func TestValidatorHook(t *testing.T) {
	store := &memStore{}
	r := newTestRegistry(t, chain.Config{Store: store, Validator: rejectSecond{}})
	h := acquire(t, r, "c", &chain.Owner{})
	defer h.Release()
	res := appendWait(t, h, chain.NewWriter(h.Owner()), chain.AppendRequest{Events: testEvents("v", 2)})
	if res.Err == nil || res.Err.Code != chain.CodeRejected || res.Err.Index != 1 || res.Err.Reason != "no second events today" {
		t.Fatalf("result %+v", res)
	}
	if h.Head() != 0 {
		t.Fatalf("Head = %d, want 0 (atomic batch)", h.Head())
	}
}

func TestSubscribeHistoryThenLiveNoGapNoDuplicate(t *testing.T) {
	store := &memStore{}
	r := newTestRegistry(t, chain.Config{Store: store, BatchEvents: 7})
	h := acquire(t, r, "c", &chain.Owner{})
	defer h.Release()
	w := chain.NewWriter(h.Owner())
	for i := range 10 {
		appendWait(t, h, w, chain.AppendRequest{Events: testEvents(fmt.Sprintf("h%d", i), 10)})
	}
	sub, err := h.Subscribe(chain.SubscribeOptions{History: true, Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if sub.Start() != 0 || sub.HistoryEnd() != 100 {
		t.Fatalf("start %d end %d", sub.Start(), sub.HistoryEnd())
	}
	// Appends continue during the replay.
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := chain.NewWriter(h.Owner())
		for i := range 40 {
			ch := make(chan chain.Result, 1)
			h.Append(w, chain.AppendRequest{Events: testEvents(fmt.Sprintf("l%d", i), 10)}, func(r chain.Result) { ch <- r })
			if r := <-ch; r.Err != nil {
				t.Errorf("live append %d: %v", i, r.Err)
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []chain.Record
	sawEnd := false
	for len(got) < 500 {
		recs, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d: %v", len(got), err)
		}
		for _, rec := range recs {
			if !sawEnd && rec.Offset >= 100 {
				t.Fatalf("history batch crossed the history end: offset %d", rec.Offset)
			}
			rec.Payload = append([]byte(nil), rec.Payload...)
			got = append(got, rec)
		}
		if !sawEnd && !sub.InHistory() {
			sawEnd = true
			if len(got) != 100 {
				t.Fatalf("history ended after %d events, want 100", len(got))
			}
		}
	}
	<-done
	for i, rec := range got {
		if rec.Offset != uint64(i) {
			t.Fatalf("event %d has offset %d", i, rec.Offset)
		}
		var want []byte
		if i < 100 {
			want = testEvent(fmt.Sprintf("h%d-%d", i/10, i%10))
		} else {
			j := i - 100
			want = testEvent(fmt.Sprintf("l%d-%d", j/10, j%10))
		}
		if !bytes.Equal(rec.Payload, want) {
			t.Fatalf("event %d payload mismatch", i)
		}
	}
	// Resubscribing from the last offset + 1 continues exactly there.
	sub2, err := h.Subscribe(chain.SubscribeOptions{From: 250, History: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	rest, err := readSub(t, sub2, -1)
	if !errors.Is(err, io.EOF) || len(rest) != 250 || rest[0].Offset != 250 {
		t.Fatalf("resubscribe: %d events from %v, err %v", len(rest), rest[0].Offset, err)
	}
}

func TestSubscribeModes(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	store := &memStore{opts: memlog.Options{Now: clock}}
	r := newTestRegistry(t, chain.Config{Store: store})
	h := acquire(t, r, "c", &chain.Owner{})
	defer h.Release()
	w := chain.NewWriter(h.Owner())
	appendWait(t, h, w, chain.AppendRequest{Events: testEvents("old", 3)})
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	appendWait(t, h, w, chain.AppendRequest{Events: testEvents("new", 2)})

	t.Run("history only", func(t *testing.T) {
		s, err := h.Subscribe(chain.SubscribeOptions{History: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, err := readSub(t, s, -1)
		if !errors.Is(err, io.EOF) || len(got) != 5 {
			t.Fatalf("got %d events, err %v; want 5 then EOF", len(got), err)
		}
	})
	t.Run("by time", func(t *testing.T) {
		s, err := h.Subscribe(chain.SubscribeOptions{History: true, ByTime: true, FromTime: time.Unix(1030, 0)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, err := readSub(t, s, -1)
		if !errors.Is(err, io.EOF) || len(got) != 2 || got[0].Offset != 3 {
			t.Fatalf("got %d events from %v, err %v; want offsets 3,4", len(got), got, err)
		}
	})
	t.Run("live only", func(t *testing.T) {
		s, err := h.Subscribe(chain.SubscribeOptions{From: 0, Live: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Start() != 5 || s.InHistory() {
			t.Fatalf("live-only start %d", s.Start())
		}
		h.Append(chain.NewWriter(h.Owner()), chain.AppendRequest{Events: testEvents("live", 1)}, func(chain.Result) {})
		got, err := readSub(t, s, 1)
		if err != nil || got[0].Offset != 5 || !bytes.Equal(got[0].Payload, testEvent("live-0")) {
			t.Fatalf("live event %+v, err %v", got, err)
		}
	})
	t.Run("beyond head", func(t *testing.T) {
		_, err := h.Subscribe(chain.SubscribeOptions{From: 99, History: true})
		if !errors.Is(err, chain.ErrBeyondHead) {
			t.Fatalf("err %v, want ErrBeyondHead", err)
		}
	})
	t.Run("cancel wakes Next", func(t *testing.T) {
		s, err := h.Subscribe(chain.SubscribeOptions{Live: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(10*time.Millisecond, cancel)
		if _, err := s.Next(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Next = %v, want Canceled", err)
		}
	})
}

func TestLocksOwnedByConnection(t *testing.T) {
	store := &memStore{}
	r := newTestRegistry(t, chain.Config{Store: store})
	a, b := &chain.Owner{Name: "a"}, &chain.Owner{Name: "b"}
	ha := acquire(t, r, "c", a)
	ha2 := acquire(t, r, "c", a) // a second channel of the same connection
	hb := acquire(t, r, "c", b)
	defer hb.Release()
	if !ha.Lock(a, 7) {
		t.Fatal("a cannot take a free lock")
	}
	if !ha2.Lock(a, 7) {
		t.Fatal("a cannot retake its lock through its second channel")
	}
	if hb.Lock(b, 7) {
		t.Fatal("b took a's lock")
	}
	if err := hb.Unlock(b, 7); !errors.Is(err, chain.ErrNotLockOwner) {
		t.Fatalf("b unlocking a's lock: %v, want ErrNotLockOwner", err)
	}
	if err := hb.Unlock(b, 8); !errors.Is(err, chain.ErrNotLocked) {
		t.Fatalf("unlocking a free key: %v, want ErrNotLocked", err)
	}
	// b's failed attempts released nothing; a's first handle going does not
	// release a's locks while a still holds the chain.
	ha.Release()
	if o, ok := hb.LockHolder(7); !ok || o != a {
		t.Fatal("a's lock released while a still holds the chain")
	}
	ha2.Release() // a disconnects
	if !hb.Lock(b, 7) {
		t.Fatal("a's lock survived its disconnect")
	}
	if err := hb.Unlock(b, 7); err != nil {
		t.Fatalf("b unlock: %v", err)
	}
}

func TestCloseFinishesInFlightAppends(t *testing.T) {
	store := &memStore{opts: memlog.Options{Delay: 20 * time.Millisecond}}
	r, err := chain.NewRegistry(chain.Config{Store: store, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h := acquire(t, r, "c", &chain.Owner{})
	res := make(chan chain.Result, 1)
	h.Append(chain.NewWriter(h.Owner()), chain.AppendRequest{Events: testEvents("x", 5)}, func(r chain.Result) { res <- r })
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case r := <-res:
		if r.Err != nil || r.Count != 5 {
			t.Fatalf("in-flight append %+v", r)
		}
	default:
		t.Fatal("Close returned before the in-flight append completed")
	}
	if r := appendWait(t, h, chain.NewWriter(h.Owner()), chain.AppendRequest{Events: testEvents("y", 1)}); r.Err == nil || r.Err.Code != chain.CodeClosed {
		t.Fatalf("append after Close: %+v", r)
	}
	if _, err := r.Acquire(context.Background(), mustKey(t, "c"), &chain.Owner{}); !errors.Is(err, chain.ErrClosed) {
		t.Fatalf("Acquire after Close: %v", err)
	}
}

func TestWriterResultsInOrder(t *testing.T) {
	store := &memStore{opts: memlog.Options{Hold: true}}
	r := newTestRegistry(t, chain.Config{Store: store})
	h := acquire(t, r, "c", &chain.Owner{})
	defer h.Release()
	w := chain.NewWriter(h.Owner())
	var mu sync.Mutex
	var order []uint64
	done := make(chan struct{}, 3)
	for seq, req := range []chain.AppendRequest{
		{Events: testEvents("o1", 1), Seq: 0},
		{Events: testEvents("o2", 1), Seq: 1, HasExpect: true, Expect: 9}, // refused at once
		{Events: testEvents("o3", 1), Seq: 2},                             // aborted at once
	} {
		h.Append(w, req, func(chain.Result) {
			mu.Lock()
			order = append(order, uint64(seq))
			mu.Unlock()
			done <- struct{}{}
		})
	}
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	if len(order) != 0 {
		t.Fatalf("refusals delivered before the earlier batch was answered: %v", order)
	}
	mu.Unlock()
	store.get(h.Key()).Release(1)
	for range 3 {
		<-done
	}
	if fmt.Sprint(order) != "[0 1 2]" {
		t.Fatalf("results delivered in order %v, want [0 1 2]", order)
	}
}

package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, fs *fakeServer, chain string, opts ...Option) *Client {
	t.Helper()
	opts = append([]Option{WithReconnect(true, 5*time.Millisecond, 50*time.Millisecond)}, opts...)
	c, err := Dial(testCtx(t), fs.url(chain), opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// collect reads n events from s.
func collect(t *testing.T, ctx context.Context, s *Subscription, n int) []Event {
	t.Helper()
	out := make([]Event, 0, n)
	for len(out) < n {
		e, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d of %d events: %v", len(out), n, err)
		}
		out = append(out, e)
	}
	return out
}

// checkSequence asserts offsets from..from+len-1 with data prefix-i.
func checkSequence(t *testing.T, evs []Event, from uint64, prefix string) {
	t.Helper()
	for i, e := range evs {
		if e.Offset != from+uint64(i) {
			t.Fatalf("event %d: offset %d, want %d", i, e.Offset, from+uint64(i))
		}
		if want := fmt.Sprintf("%s%d", prefix, from+uint64(i)); string(e.Data) != want {
			t.Fatalf("event %d (offset %d): data %q, want %q", i, e.Offset, e.Data, want)
		}
	}
}

func TestAppendThenReplayHistory(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "app/one")
	ctx := testCtx(t)
	for i := 0; i < 10; i += 2 {
		offs, err := c.Append(ctx, ev(fmt.Sprintf("e%d", i)), ev(fmt.Sprintf("e%d", i+1)))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if len(offs) != 2 || offs[0] != uint64(i) || offs[1] != uint64(i+1) {
			t.Fatalf("Append offsets = %v, want [%d %d]", offs, i, i+1)
		}
	}
	s, err := c.Subscribe(ctx, SubscribeOptions{History: true})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer s.Close()
	if s.Head() != 10 {
		t.Fatalf("Head = %d, want 10", s.Head())
	}
	evs := collect(t, ctx, s, 10)
	checkSequence(t, evs, 0, "e")
	if _, err := s.Next(ctx); err != io.EOF {
		t.Fatalf("Next after history = %v, want io.EOF", err)
	}
	select {
	case <-s.HistoryDone():
	default:
		t.Fatalf("HistoryDone not closed after the history")
	}
	// From an offset, with the iterator.
	s2, err := c.Subscribe(ctx, SubscribeOptions{History: true, From: 7})
	if err != nil {
		t.Fatalf("Subscribe from 7: %v", err)
	}
	defer s2.Close()
	var got []Event
	for e, err := range s2.Events(ctx) {
		if err != nil {
			t.Fatalf("iterator: %v", err)
		}
		got = append(got, e)
	}
	if len(got) != 3 {
		t.Fatalf("from 7: got %d events, want 3", len(got))
	}
	checkSequence(t, got, 7, "e")
	if got[0].Time.IsZero() || len(got[0].Raw) == 0 {
		t.Fatalf("event lacks server time or raw encoding: %+v", got[0])
	}
}

func TestSubscribeEmptyChainHistoryOnly(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "empty")
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, SubscribeOptions{History: true})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer s.Close()
	if _, err := s.Next(ctx); err != io.EOF {
		t.Fatalf("Next = %v, want io.EOF", err)
	}
}

func TestSubscribeBeyondHeadRefused(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "x")
	_, err := c.Subscribe(testCtx(t), SubscribeOptions{History: true, From: 5})
	var se *ServerError
	if !errors.As(err, &se) || se.Code != proto.CodeConflict || se.Reason == "" {
		t.Fatalf("Subscribe beyond head: %v, want ServerError conflict with a reason", err)
	}
}

func TestSubscribeOptionsValidated(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "x")
	for name, o := range map[string]SubscribeOptions{
		"nothing":           {},
		"from without hist": {Live: true, From: 3},
		"time without hist": {Live: true, FromTime: time.Now()},
		"both starts":       {History: true, From: 1, FromTime: time.Now()},
	} {
		if _, err := c.Subscribe(testCtx(t), o); err == nil {
			t.Errorf("%s: Subscribe(%+v) succeeded, want an error", name, o)
		}
	}
}

// TestHistoryJoinsLive appends continuously while a subscriber replays the
// history and continues live: it must see every offset exactly once.
func TestHistoryJoinsLive(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "join")
	w := dial(t, fs, "join")
	ctx := testCtx(t)
	for i := range 50 {
		if _, err := w.Append(ctx, ev(fmt.Sprintf("j%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	const total = 300
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 50; i < total; i++ {
			if _, err := w.Append(ctx, ev(fmt.Sprintf("j%d", i))); err != nil {
				t.Errorf("Append %d: %v", i, err)
				return
			}
		}
	}()
	s, err := c.Subscribe(ctx, SubscribeOptions{History: true, Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := collect(t, ctx, s, total)
	checkSequence(t, evs, 0, "j")
	select {
	case <-s.HistoryDone():
	default:
		t.Fatalf("HistoryDone not closed")
	}
	wg.Wait()
}

func TestLiveOnly(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "live")
	ctx := testCtx(t)
	fs.appendRaw("live", rawEvent(t, "old0"), rawEvent(t, "old1"))
	s, err := c.Subscribe(ctx, SubscribeOptions{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	select {
	case <-s.HistoryDone():
	default:
		t.Fatalf("HistoryDone not closed for a live-only subscription")
	}
	if _, err := c.Append(ctx, ev("l2"), ev("l3")); err != nil {
		t.Fatal(err)
	}
	checkSequence(t, collect(t, ctx, s, 2), 2, "l")
}

func TestSubscribeFromTime(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "time")
	ctx := testCtx(t)
	if _, err := c.Append(ctx, ev("t0"), ev("t1")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	mark := time.Now()
	time.Sleep(5 * time.Millisecond)
	if _, err := c.Append(ctx, ev("t2")); err != nil {
		t.Fatal(err)
	}
	s, err := c.Subscribe(ctx, SubscribeOptions{History: true, FromTime: mark})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSequence(t, collect(t, ctx, s, 1), 2, "t")
	if _, err := s.Next(ctx); err != io.EOF {
		t.Fatalf("Next = %v, want io.EOF", err)
	}
}

func TestPipelineKeepsOrder(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "pipe", WithWindow(8))
	ctx := testCtx(t)
	var futs []*Future
	for i := range 200 {
		f, err := c.AppendAsync(ctx, Batch{Events: []proto.Event{ev(fmt.Sprintf("p%d", 2*i)), ev(fmt.Sprintf("p%d", 2*i+1))}})
		if err != nil {
			t.Fatalf("AppendAsync %d: %v", i, err)
		}
		futs = append(futs, f)
	}
	for i, f := range futs {
		offs, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if offs[0] != uint64(2*i) || offs[1] != uint64(2*i+1) {
			t.Fatalf("batch %d offsets %v, want [%d %d]", i, offs, 2*i, 2*i+1)
		}
	}
	for i, e := range fs.stored("pipe") {
		var pe proto.Event
		if err := pe.Decode(e.raw); err != nil || string(pe.Data) != fmt.Sprintf("p%d", i) {
			t.Fatalf("stored %d = %q (%v), want p%d", i, pe.Data, err, i)
		}
	}
}

func TestWindowBlocksAndHonoursContext(t *testing.T) {
	fs := newFakeServer(t)
	block := make(chan struct{})
	fs.mu.Lock()
	fs.onAppend = func(*fakeConn, *proto.Append) bool { <-block; return false }
	fs.mu.Unlock()
	c := dial(t, fs, "win", WithWindow(2))
	ctx := testCtx(t)
	for i := range 2 {
		if _, err := c.AppendAsync(ctx, Batch{Events: []proto.Event{ev(fmt.Sprint(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := c.AppendAsync(short, Batch{Events: []proto.Event{ev("third")}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AppendAsync with a full window = %v, want deadline exceeded", err)
	}
	close(block)
	if _, err := c.Append(ctx, ev("after")); err != nil {
		t.Fatalf("Append once the window drained: %v", err)
	}
}

func TestConditionalAppend(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "cond")
	ctx := testCtx(t)
	if _, err := c.Append(ctx, ev("a"), ev("b")); err != nil {
		t.Fatal(err)
	}
	_, err := c.Chain().AppendIf(ctx, 1, ev("c"))
	var ce *CommitError
	if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) || errors.Is(err, ErrAborted) {
		t.Fatalf("AppendIf(1) = %v, want a conflict CommitError", err)
	}
	if ce.Head != 2 || ce.Code != proto.CodeConflict || ce.Reason == "" {
		t.Fatalf("conflict error = %+v, want Head 2 with a reason", ce)
	}
	if !errors.Is(err, &proto.CodeError{Code: proto.CodeConflict}) {
		t.Fatalf("errors.Is(err, CodeError{conflict}) = false")
	}
	offs, err := c.Chain().AppendIf(ctx, ce.Head, ev("c"))
	if err != nil || offs[0] != 2 {
		t.Fatalf("AppendIf(head) = %v, %v; want [2]", offs, err)
	}
}

// TestFailedBatchAbortsPipeline: once a batch fails, the batches in flight
// behind it fail too, and batches issued afterwards are accepted.
func TestFailedBatchAbortsPipeline(t *testing.T) {
	fs := newFakeServer(t)
	hold := make(chan struct{})
	var once sync.Once
	fs.mu.Lock()
	fs.onAppend = func(_ *fakeConn, m *proto.Append) bool {
		once.Do(func() { <-hold }) // let the client queue everything first
		return false
	}
	fs.mu.Unlock()
	c := dial(t, fs, "abort")
	ctx := testCtx(t)
	data := []string{"ok0", "bad", "ok2", "ok3"}
	var futs []*Future
	for _, d := range data {
		f, err := c.AppendAsync(ctx, Batch{Events: []proto.Event{ev(d)}})
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	close(hold)
	if _, err := futs[0].Wait(ctx); err != nil {
		t.Fatalf("batch 0: %v", err)
	}
	_, err := futs[1].Wait(ctx)
	var ce *CommitError
	if !errors.As(err, &ce) || ce.Code != proto.CodeValidationFailed || ce.Index != 0 || ce.Aborted {
		t.Fatalf("batch 1 = %v, want a validation failure of event 0", err)
	}
	for i := 2; i < 4; i++ {
		if _, err := futs[i].Wait(ctx); !errors.Is(err, ErrAborted) {
			t.Fatalf("batch %d = %v, want ErrAborted", i, err)
		}
	}
	offs, err := c.Append(ctx, ev("ok4"))
	if err != nil || offs[0] != 1 {
		t.Fatalf("Append after the failure = %v, %v; want offset 1", offs, err)
	}
	if n := len(fs.stored("abort")); n != 2 {
		t.Fatalf("stored %d events, want 2", n)
	}
}

// sentAppend is what the fake server saw of one Append.
type sentAppend struct {
	channel uint32
	data    string // the first event's data
	restart bool
}

// TestRestartFlag checks the client's side of PROTOCOL.md §5: the first
// batch sent after a failure was received carries the restart flag, and
// only that one (aborted replies arriving later start nothing); a restart
// batch that fails makes the next batch restart again; everything stays on
// the chain's own channel; codes map to errors with no inference.
func TestRestartFlag(t *testing.T) {
	fs := newFakeServer(t)
	var mu sync.Mutex
	var seen []sentAppend
	holds := map[string]chan struct{}{"bad1": make(chan struct{}), "a2": make(chan struct{}), "bad6": make(chan struct{})}
	fs.mu.Lock()
	fs.rawReply = func(m *proto.Append) []byte {
		var e proto.Event
		if len(m.Events) > 0 {
			_ = e.Decode(m.Events[0])
		}
		mu.Lock()
		seen = append(seen, sentAppend{m.Channel, string(e.Data), m.Restart})
		mu.Unlock()
		if h := holds[string(e.Data)]; h != nil {
			<-h // the server reads nothing more until the test says so
		}
		if string(e.Data) == "conflict" {
			// An unconditional batch refused with conflict: a conflict
			// all the same (the client infers nothing from the flags).
			b, _ := (&proto.CommitError{Channel: m.Channel, CommitID: m.CommitID, Code: proto.CodeConflict,
				Index: -1, Head: 3, Reason: "told so"}).AppendBinary(nil)
			return b
		}
		return nil
	}
	fs.mu.Unlock()
	c := dial(t, fs, "restart")
	ctx := testCtx(t)
	send := func(data string) *Future {
		t.Helper()
		f, err := c.AppendAsync(ctx, Batch{Events: []proto.Event{ev(data)}})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	wantOK := func(f *Future, off uint64) {
		t.Helper()
		if offs, err := f.Wait(ctx); err != nil || offs[0] != off {
			t.Fatalf("batch = %v, %v; want offset %d", offs, err, off)
		}
	}
	wantAborted := func(f *Future) {
		t.Helper()
		_, err := f.Wait(ctx)
		var ce *CommitError
		if !errors.As(err, &ce) || ce.Code != proto.CodeAborted || !ce.Aborted || !errors.Is(err, ErrAborted) || errors.Is(err, ErrConflict) {
			t.Fatalf("batch = %v, want ErrAborted", err)
		}
	}

	// a0 ok, bad1 fails, a2 and a3 are held in the server's input; all
	// four are sent before the server answers bad1.
	f0, f1, f2, f3 := send("a0"), send("bad1"), send("a2"), send("a3")
	close(holds["bad1"])
	wantOK(f0, 0)
	if _, err := f1.Wait(ctx); !errors.Is(err, &proto.CodeError{Code: proto.CodeValidationFailed}) || errors.Is(err, ErrAborted) {
		t.Fatalf("bad1 = %v, want a validation failure", err)
	}
	// The failure is known: a4 restarts, though a2 and a3 are unanswered.
	f4 := send("a4")
	close(holds["a2"])
	wantAborted(f2)
	wantAborted(f3)
	wantOK(f4, 1)
	// The aborted replies came after the restart: a5 does not restart.
	wantOK(send("a5"), 2)

	// A failing batch of the new pipeline aborts the ones behind it; the
	// next batch after the failure restarts again.
	f6, f7 := send("bad6"), send("a7")
	close(holds["bad6"])
	if _, err := f6.Wait(ctx); err == nil {
		t.Fatal("bad6 confirmed")
	}
	wantAborted(f7)
	wantOK(send("a8"), 3)

	// No inference: a conflict is a conflict, and restarts like any failure.
	_, err := send("conflict").Wait(ctx)
	if !errors.Is(err, ErrConflict) || errors.Is(err, ErrAborted) {
		t.Fatalf("conflict = %v, want ErrConflict and not ErrAborted", err)
	}
	wantOK(send("a9"), 4)

	mu.Lock()
	defer mu.Unlock()
	var restarted []string
	for _, s := range seen {
		if s.channel != 0 {
			t.Errorf("batch %s sent on channel %d, want the chain's channel 0", s.data, s.channel)
		}
		if s.restart {
			restarted = append(restarted, s.data)
		}
	}
	if want := []string{"a4", "a8", "a9"}; !slices.Equal(restarted, want) {
		t.Fatalf("batches sent with the restart flag: %q, want %q", restarted, want)
	}
	var stored []string
	for _, s := range fs.stored("restart") {
		var e proto.Event
		if err := e.Decode(s.raw); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, string(e.Data))
	}
	if want := []string{"a0", "a4", "a5", "a8", "a9"}; !slices.Equal(stored, want) {
		t.Fatalf("stored %q, want %q", stored, want)
	}
}

func TestEncodeErrorBeforeSending(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "enc")
	bad := proto.Event{Tombstone: true} // a tombstone needs a data key
	_, err := c.Append(testCtx(t), ev("fine"), bad)
	var ee *proto.EncodeError
	if !errors.As(err, &ee) {
		t.Fatalf("Append of an unencodable event = %v, want *proto.EncodeError", err)
	}
	if n := len(fs.stored("enc")); n != 0 {
		t.Fatalf("stored %d events after a refused encode, want 0", n)
	}
}

func TestBatchTooLargeForFrame(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "big", WithMaxFrameSize(1024))
	_, err := c.Append(testCtx(t), proto.Event{Data: make([]byte, 2000)})
	if err == nil {
		t.Fatalf("Append of a batch over the frame limit succeeded")
	}
	if _, err := c.Append(testCtx(t), ev("small")); err != nil {
		t.Fatalf("Append after an oversized batch: %v", err)
	}
}

func TestSync(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "sync")
	ctx := testCtx(t)
	f, err := c.AppendAsync(ctx, Batch{Events: []proto.Event{ev("s")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	select {
	case <-f.Done():
	default:
		t.Fatalf("Sync returned before an earlier batch was answered")
	}
}

func TestLocks(t *testing.T) {
	fs := newFakeServer(t)
	a := dial(t, fs, "locks")
	b := dial(t, fs, "locks")
	ctx := testCtx(t)
	if err := a.Lock(ctx, 42); err != nil {
		t.Fatalf("a.Lock: %v", err)
	}
	err := b.Lock(ctx, 42)
	if !errors.Is(err, &proto.CodeError{Code: proto.CodeLockHeld}) {
		t.Fatalf("b.Lock of a held key = %v, want lock held", err)
	}
	err = b.Unlock(ctx, 42)
	if !errors.Is(err, &proto.CodeError{Code: proto.CodeNotLockOwner}) {
		t.Fatalf("b.Unlock of a's lock = %v, want not lock owner", err)
	}
	if err := a.Unlock(ctx, 42); err != nil {
		t.Fatalf("a.Unlock: %v", err)
	}
	if err := b.Lock(ctx, 42); err != nil {
		t.Fatalf("b.Lock after release: %v", err)
	}
	// A lock dies with its connection.
	fs.dropAll()
	if err := b.Unlock(ctx, 42); !errors.Is(err, ErrLockLost) && !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Unlock after a reconnect = %v, want ErrLockLost", err)
	}
	if err := a.Lock(ctx, 42); err != nil {
		t.Fatalf("a.Lock after b's connection ended: %v", err)
	}
}

func TestPing(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "ping")
	rtt, err := c.Ping(testCtx(t))
	if err != nil || rtt <= 0 {
		t.Fatalf("Ping = %v, %v", rtt, err)
	}
}

func TestAnswersServerPing(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "pong")
	if _, err := c.Ping(testCtx(t)); err != nil { // the connection is up
		t.Fatal(err)
	}
	fs.pingAll(99)
	deadline := time.Now().Add(5 * time.Second)
	for {
		fs.mu.Lock()
		got := append([]uint64(nil), fs.pongs...)
		fs.mu.Unlock()
		if len(got) == 1 && got[0] == 99 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pongs = %v, want [99]", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHelloRefusedIsPermanent(t *testing.T) {
	fs := newFakeServer(t)
	fs.refuseHello = func(h *proto.Hello) (proto.ErrorCode, string) {
		return proto.CodeInvalidChainKey, "chain key \"" + h.ChainKey + "\" has a hidden segment"
	}
	_, err := Dial(testCtx(t), fs.url("a/.b"))
	var se *ServerError
	if !errors.As(err, &se) || se.Code != proto.CodeInvalidChainKey || se.Reason == "" {
		t.Fatalf("Dial = %v, want a ServerError with code invalid chain key", err)
	}
	if !permanent(err) {
		t.Fatalf("an invalid chain key is not treated as permanent")
	}
}

func TestOpenRefusedFailsDial(t *testing.T) {
	fs := newFakeServer(t)
	fs.refuseOpen = func(string) (proto.ErrorCode, string) { return proto.CodeStorageFailure, "disk on fire" }
	_, err := Dial(testCtx(t), fs.url("a"))
	var se *ServerError
	if !errors.As(err, &se) || se.Code != proto.CodeStorageFailure || se.Reason != "disk on fire" {
		t.Fatalf("Dial = %v, want the server's storage failure", err)
	}
}

func TestDialErrors(t *testing.T) {
	if _, err := Dial(testCtx(t), "http://x/db/y"); err == nil {
		t.Fatalf("Dial with a bad URL succeeded")
	}
	// Nothing listens there (the port is freed at once).
	fs := newFakeServer(t)
	url := fs.url("x")
	fs.close()
	if _, err := Dial(testCtx(t), url); err == nil {
		t.Fatalf("Dial to a closed port succeeded")
	}
}

func TestHandshakeTimeout(t *testing.T) {
	// A listener that accepts and says nothing.
	fs := newFakeServer(t)
	fs.refuseHello = func(*proto.Hello) (proto.ErrorCode, string) {
		time.Sleep(600 * time.Millisecond)
		return proto.CodeOK, ""
	}
	start := time.Now()
	_, err := Dial(testCtx(t), fs.url("x"), WithHandshakeTimeout(100*time.Millisecond))
	if err == nil || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("Dial against a silent server = %v after %v, want a timeout within 0.5s", err, time.Since(start))
	}
}

func TestMultipleChainsOneConnection(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "first")
	ctx := testCtx(t)
	second, err := c.OpenChain(ctx, "second")
	if err != nil {
		t.Fatalf("OpenChain: %v", err)
	}
	s1, err := c.Subscribe(ctx, SubscribeOptions{History: true, Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := second.Subscribe(ctx, SubscribeOptions{History: true, Live: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := c.Append(ctx, ev(fmt.Sprintf("f%d", i))); err != nil {
			t.Fatal(err)
		}
		if _, err := second.Append(ctx, ev(fmt.Sprintf("s%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	checkSequence(t, collect(t, ctx, s1, 5), 0, "f")
	checkSequence(t, collect(t, ctx, s2, 5), 0, "s")
	// Closing the second chain does not disturb the first.
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next on a closed chain's subscription = %v, want ErrClosed", err)
	}
	if _, err := second.Append(ctx, ev("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append on a closed chain = %v, want ErrClosed", err)
	}
	if _, err := c.Append(ctx, ev("f5")); err != nil {
		t.Fatal(err)
	}
	checkSequence(t, collect(t, ctx, s1, 1), 5, "f")
	if fs.helloCount() != 1 {
		t.Fatalf("%d connections made, want 1", fs.helloCount())
	}
	// A refused chain.
	fs.mu.Lock()
	fs.refuseOpen = func(string) (proto.ErrorCode, string) { return proto.CodeInvalidChainKey, "no" }
	fs.mu.Unlock()
	if _, err := c.OpenChain(ctx, "..."); !errors.Is(err, &proto.CodeError{Code: proto.CodeInvalidChainKey}) {
		t.Fatalf("OpenChain of a refused key = %v", err)
	}
}

// TestReconnectResumesSubscription cuts the connection repeatedly while
// events are appended: the subscription sees every offset exactly once.
func TestReconnectResumesSubscription(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "resume")
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, SubscribeOptions{History: true, Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const total = 120
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			fs.appendRaw("resume", rawEvent(t, fmt.Sprintf("r%d", i)))
			if i%30 == 10 {
				fs.dropAll()
			}
			time.Sleep(time.Millisecond)
		}
	}()
	evs := collect(t, ctx, s, total)
	<-done
	checkSequence(t, evs, 0, "r")
	if fs.helloCount() < 2 {
		t.Fatalf("only %d connections: the test did not reconnect", fs.helloCount())
	}
}

// TestReconnectResendsAppends loses the confirmation of a stored batch:
// the client resends it and gets the original offsets; nothing is stored
// twice.
func TestReconnectResendsAppends(t *testing.T) {
	fs := newFakeServer(t)
	var n int
	fs.mu.Lock()
	fs.onAppend = func(*fakeConn, *proto.Append) bool { n++; return n == 2 }
	fs.mu.Unlock()
	c := dial(t, fs, "resend")
	ctx := testCtx(t)
	var futs []*Future
	for i := range 5 {
		f, err := c.AppendAsync(ctx, Batch{Events: []proto.Event{ev(fmt.Sprintf("x%d", i))}})
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	for i, f := range futs {
		offs, err := f.Wait(ctx)
		if err != nil || len(offs) != 1 || offs[0] != uint64(i) {
			t.Fatalf("batch %d = %v, %v; want offset %d", i, offs, err, i)
		}
	}
	if got := len(fs.stored("resend")); got != 5 {
		t.Fatalf("stored %d events, want 5 (no duplicates)", got)
	}
}

func TestNoReconnectFailsPending(t *testing.T) {
	fs := newFakeServer(t)
	fs.onAppend = func(*fakeConn, *proto.Append) bool { return true } // store, then drop
	c, err := Dial(testCtx(t), fs.url("nore"), WithReconnect(false, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Append(testCtx(t), ev("x"))
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Append when the connection drops = %v, want ErrConnectionLost", err)
	}
	if !errors.Is(c.Err(), ErrConnectionLost) {
		t.Fatalf("Err() = %v, want ErrConnectionLost", c.Err())
	}
	if _, err := c.Append(testCtx(t), ev("y")); err == nil {
		t.Fatalf("Append on a dead client succeeded")
	}
}

func TestPermanentRefusalStopsReconnecting(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "perm")
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, SubscribeOptions{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fs.mu.Lock()
	fs.refuseHello = func(*proto.Hello) (proto.ErrorCode, string) { return proto.CodeDenied, "go away" }
	fs.mu.Unlock()
	fs.dropAll()
	_, err = s.Next(ctx)
	if !errors.Is(err, &proto.CodeError{Code: proto.CodeDenied}) {
		t.Fatalf("Next after a permanent refusal = %v, want denied", err)
	}
	if !errors.Is(c.Err(), &proto.CodeError{Code: proto.CodeDenied}) {
		t.Fatalf("Err() = %v", c.Err())
	}
}

func TestKeepAliveDetectsSilentServer(t *testing.T) {
	fs := newFakeServer(t)
	fs.noPong = true
	c, err := Dial(testCtx(t), fs.url("ka"), WithReconnect(false, 0, 0), WithKeepAlive(30*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-c.dead:
	case <-time.After(5 * time.Second):
		t.Fatalf("client did not notice a server that stopped answering")
	}
	if !errors.Is(c.Err(), ErrConnectionLost) {
		t.Fatalf("Err() = %v, want ErrConnectionLost", c.Err())
	}
}

// TestSlowConsumerBoundedBuffer: a subscriber that does not read pauses
// the stream instead of buffering everything, then gets every event.
func TestSlowConsumerBoundedBuffer(t *testing.T) {
	fs := newFakeServer(t)
	fs.eventsPerMsg = 1
	c := dial(t, fs, "slow")
	ctx := testCtx(t)
	const limit = 4 << 10
	s, err := c.Subscribe(ctx, SubscribeOptions{History: true, Live: true, BufferBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const total = 500
	for i := range total {
		fs.appendRaw("slow", rawEvent(t, fmt.Sprintf("b%d", i)))
	}
	// Let the stream fill the buffer, then check its bound.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		st, bytes := s.state, s.bufBytes
		c.mu.Unlock()
		if bytes > limit+subChunkOverhead+64 {
			t.Fatalf("buffer holds %d bytes, limit %d", bytes, limit)
		}
		if st == subPaused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream never paused (state %d, %d bytes)", st, bytes)
		}
		time.Sleep(time.Millisecond)
	}
	checkSequence(t, collect(t, ctx, s, total), 0, "b")
	fs.mu.Lock()
	unsubs := fs.unsubscribes
	fs.mu.Unlock()
	if unsubs < 2 {
		t.Fatalf("the stream paused %d times, want several", unsubs)
	}
}

// TestPausedSubscriptionResumesAfterReconnect: a subscription paused by
// its full buffer, whose consumer drains the buffer while the connection
// is down, resumes on the next connection. It used to stay paused for
// good: Next had no connection to resume on, and the reconnection only
// reopened the channel.
func TestPausedSubscriptionResumesAfterReconnect(t *testing.T) {
	fs := newFakeServer(t)
	fs.eventsPerMsg = 1
	c := dial(t, fs, "paused")
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, SubscribeOptions{History: true, Live: true, BufferBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const total = 300
	for i := range total {
		fs.appendRaw("paused", rawEvent(t, fmt.Sprintf("p%d", i)))
	}
	waitState := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			c.mu.Lock()
			ok := cond()
			c.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitState("the stream to pause", func() bool { return s.state == subPaused })
	// Hold reconnections at the hello until the buffer is drained.
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	defer open()
	fs.mu.Lock()
	fs.refuseHello = func(*proto.Hello) (proto.ErrorCode, string) { <-release; return proto.CodeOK, "" }
	fs.mu.Unlock()
	fs.dropAll()
	waitState("the client to see the drop", func() bool { return c.cur == nil })
	c.mu.Lock()
	buffered := s.bufEvents
	c.mu.Unlock()
	if buffered == 0 || buffered >= total {
		t.Fatalf("%d events buffered when paused, want some but not all %d", buffered, total)
	}
	got := collect(t, ctx, s, buffered)
	open()
	got = append(got, collect(t, ctx, s, total-buffered)...)
	checkSequence(t, got, 0, "p")
}

func TestCloseFailsWaitersAndIsIdempotent(t *testing.T) {
	fs := newFakeServer(t)
	block := make(chan struct{})
	defer close(block)
	fs.onAppend = func(*fakeConn, *proto.Append) bool { <-block; return false }
	c := dial(t, fs, "close")
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, SubscribeOptions{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.AppendAsync(ctx, Batch{Events: []proto.Event{ev("pending")}})
	if err != nil {
		t.Fatal(err)
	}
	nextErr := make(chan error, 1)
	go func() {
		// The fake server stores the batch before its hook blocks the
		// confirmation, so the live subscription may deliver it before
		// Close; whatever comes, Next must end with ErrClosed.
		for {
			e, err := s.Next(ctx)
			if err == nil && string(e.Data) != "pending" {
				err = fmt.Errorf("unexpected event %q", e.Data)
			}
			if err != nil {
				nextErr <- err
				return
			}
		}
	}()
	c.Close()
	c.Close()
	if _, err := f.Wait(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("pending append after Close = %v, want ErrClosed", err)
	}
	if err := <-nextErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v, want ErrClosed", err)
	}
	if _, err := c.Append(ctx, ev("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if err := c.Lock(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Lock after Close = %v, want ErrClosed", err)
	}
}

func TestWireEncryption(t *testing.T) {
	for _, tc := range []struct {
		name         string
		floor, wants kex.KeySize
	}{
		{"server floor 128, client default", kex.KeySize128, kex.KeySize128},
		{"client raises to 256", kex.KeySizeNone, kex.KeySize256},
		{"plaintext both", kex.KeySizeNone, kex.KeySizeNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeServer(t)
			fs.floor = tc.floor
			c := dial(t, fs, "enc", WithWireEncryption(tc.wants))
			ctx := testCtx(t)
			if _, err := c.Append(ctx, ev("sealed")); err != nil {
				t.Fatal(err)
			}
			c.mu.Lock()
			sess := c.cur.sess
			c.mu.Unlock()
			want := max(tc.floor, tc.wants)
			switch {
			case want == kex.KeySizeNone && sess != nil:
				t.Fatalf("session established, want plaintext")
			case want != kex.KeySizeNone && (sess == nil || sess.KeySize() != want):
				t.Fatalf("session %v, want %v", sess, want)
			}
			if got := c.WireEncryption(); got != want {
				t.Fatalf("WireEncryption() = %v, want %v", got, want)
			}
		})
	}
}

func TestDowngradeRefused(t *testing.T) {
	fs := newFakeServer(t)
	none := proto.KeySize(0)
	fs.ackKeySize = &none
	_, err := Dial(testCtx(t), fs.url("x"), WithWireEncryption(kex.KeySize192))
	if !errors.Is(err, kex.ErrDowngrade) {
		t.Fatalf("Dial against a server answering without encryption = %v, want ErrDowngrade", err)
	}
	if !permanent(err) {
		t.Fatalf("a downgrade is not treated as permanent")
	}
}

func TestPinnedFingerprint(t *testing.T) {
	fs := newFakeServer(t)
	id, err := kex.GenerateIdentity(kex.IdentityEd25519, nil)
	if err != nil {
		t.Fatalf("GenerateIdentity: %v", err)
	}
	fs.identity = id
	c := dial(t, fs, "pin", WithPinnedFingerprint(id.Fingerprint()))
	if _, err := c.Append(testCtx(t), ev("pinned")); err != nil {
		t.Fatal(err)
	}
	other, err := kex.GenerateIdentity(kex.IdentityEd25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(testCtx(t), fs.url("pin"), WithPinnedFingerprint(other.Fingerprint()))
	if !errors.Is(err, kex.ErrFingerprintMismatch) {
		t.Fatalf("Dial with another pinned fingerprint = %v, want ErrFingerprintMismatch", err)
	}
}

// TestServerProtocolViolations: a server that answers with something the
// client cannot accept loses the connection, and the client does not
// retry a server that breaks the protocol.
func TestServerProtocolViolations(t *testing.T) {
	for name, reply := range map[string]func(m *proto.Append) []byte{
		"garbage":     func(*proto.Append) []byte { return []byte{0xee, 1, 2, 3} },
		"empty frame": func(*proto.Append) []byte { return []byte{} },
		"truncated": func(m *proto.Append) []byte {
			b, _ := (&proto.Confirmed{Channel: m.Channel, CommitID: m.CommitID, Offsets: []uint64{1}}).AppendBinary(nil)
			return b[:len(b)-1]
		},
		"client msg": func(m *proto.Append) []byte { b, _ := m.AppendBinary(nil); return b },
		"wrong count": func(m *proto.Append) []byte {
			b, _ := (&proto.Confirmed{Channel: m.Channel, CommitID: m.CommitID, Offsets: []uint64{1, 2, 3}}).AppendBinary(nil)
			return b
		},
		"lying history": func(m *proto.Append) []byte {
			b, _ := (&proto.StartOfHistory{Channel: 9, Integrity: proto.IntegrityCentralized, Head: 1, Count: 5}).AppendBinary(nil)
			return b
		},
	} {
		t.Run(name, func(t *testing.T) {
			fs := newFakeServer(t)
			fs.rawReply = reply
			c := dial(t, fs, "violations")
			_, err := c.Append(testCtx(t), ev("x"))
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("Append answered by %s = %v, want ErrProtocol", name, err)
			}
			if !errors.Is(c.Err(), ErrProtocol) {
				t.Fatalf("Err() = %v, want ErrProtocol", c.Err())
			}
			if fs.helloCount() != 1 {
				t.Fatalf("the client reconnected %d times to a server that broke the protocol", fs.helloCount()-1)
			}
		})
	}
}

// TestFatalShuttingDownReconnects: a server that ends the connection with
// a transient Fatal (shutting down) is redialled, and the pending append
// completes on the next connection.
func TestFatalShuttingDownReconnects(t *testing.T) {
	fs := newFakeServer(t)
	var once sync.Once
	fs.rawReply = func(*proto.Append) []byte {
		var b []byte
		once.Do(func() { b, _ = (&proto.Fatal{Code: proto.CodeShuttingDown, Reason: "bye"}).AppendBinary(nil) })
		return b
	}
	c := dial(t, fs, "fatal") // the client drops the connection on a Fatal
	offs, err := c.Append(testCtx(t), ev("survives"))
	if err != nil || len(offs) != 1 {
		t.Fatalf("Append across a shutdown Fatal = %v, %v", offs, err)
	}
	if fs.helloCount() < 2 {
		t.Fatalf("no reconnection after a shutting-down Fatal")
	}
}

// TestExistingChainsOnly: with WithExistingChainsOnly, a chain the server
// does not have fails Dial (at once, no retry) and OpenChain with
// CodeNoSuchChain, and the server creates nothing; existing chains open.
func TestExistingChainsOnly(t *testing.T) {
	fs := newFakeServer(t)
	ctx := testCtx(t)
	_, err := Dial(ctx, fs.url("ro/missing"), WithExistingChainsOnly(true))
	var se *ServerError
	if !errors.As(err, &se) || se.Code != proto.CodeNoSuchChain || !errors.Is(err, &proto.CodeError{Code: proto.CodeNoSuchChain}) {
		t.Fatalf("Dial of a missing chain = %v, want a ServerError no such chain", err)
	}
	if fs.exists("ro/missing") || fs.helloCount() != 1 {
		t.Fatalf("the chain was created (%v) or the dial retried (%d hellos)", fs.exists("ro/missing"), fs.helloCount())
	}
	fs.appendRaw("ro/present", rawEvent(t, "p0"))
	c, err := Dial(ctx, fs.url("ro/present"), WithExistingChainsOnly(true))
	if err != nil {
		t.Fatalf("Dial of an existing chain: %v", err)
	}
	defer c.Close()
	if _, err := c.OpenChain(ctx, "ro/other"); !errors.As(err, &se) || se.Code != proto.CodeNoSuchChain {
		t.Fatalf("OpenChain of a missing chain = %v, want no such chain", err)
	}
	s, err := c.Subscribe(ctx, SubscribeOptions{History: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSequence(t, collect(t, ctx, s, 1), 0, "p")
}

// TestOpenChainFailsWhenConnectionLostWithoutReconnect: an Open in flight
// when the connection dies (reconnect off) fails with ErrConnectionLost
// instead of waiting forever (found by the bench harness).
func TestOpenChainFailsWhenConnectionLostWithoutReconnect(t *testing.T) {
	fs := newFakeServer(t)
	c := dial(t, fs, "first", WithReconnect(false, 0, 0))
	fs.mu.Lock()
	fs.refuseOpen = func(key string) (proto.ErrorCode, string) {
		if key == "second" {
			fs.dropAll() // the connection dies before the Open is answered
		}
		return proto.CodeOK, ""
	}
	fs.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.OpenChain(ctx, "second")
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("OpenChain on a lost connection = %v after %v, want ErrConnectionLost", err, time.Since(start))
	}
}

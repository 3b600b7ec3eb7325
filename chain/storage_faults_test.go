package chain_test

import (
	"bytes"
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/chain/mmapstore"
	"github.com/atedb/atedb/internal/vfs"
	"github.com/atedb/atedb/mmaplog"
)

// TestUnavailableLogIsRetryable runs a chain on the real log whose next
// segment cannot be created (EMFILE, as when a client holds every file
// descriptor): the batch that needs the segment is refused with
// CodeUnavailable, the chain is not poisoned, and once descriptors are back
// the same batch, sent again, is stored at the offset it was refused at
// (given back, not skipped) and is not mistaken for a duplicate of itself.
// Today's code poisoned the chain until the process restarted.
func TestUnavailableLogIsRetryable(t *testing.T) {
	in := &vfs.Injector{}
	opts := mmaplog.Options{FS: vfs.Inject(vfs.NewMem(), in), SegmentSize: 16 << 10, MaxRecordSize: 4 << 10}
	r := newTestRegistry(t, chain.Config{Open: mmapstore.Opener(opts)})
	o := &chain.Owner{}
	h := acquire(t, r, "faults/unavailable", o)
	defer h.Release()
	w := chain.NewWriter(o)
	in.Add(vfs.Rule{Ops: vfs.OpCreate, Path: "prealloc", Err: syscall.EMFILE})
	var stored [][]byte
	var failed chain.AppendRequest
	var res chain.Result
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatalf("1000 batches stored without needing a new segment")
		}
		req := chain.AppendRequest{Events: testEvents("u"+string(rune('a'+i%26))+string(rune('a'+i/26)), 4)}
		res = appendWait(t, h, w, req)
		if res.Err != nil {
			failed = req
			break
		}
		if res.First != uint64(len(stored)) {
			t.Fatalf("batch %d: First = %d, want %d", i, res.First, len(stored))
		}
		stored = append(stored, req.Events...)
	}
	if res.Err.Code != chain.CodeUnavailable {
		t.Fatalf("batch needing a new segment: %v, want code %v", res.Err, chain.CodeUnavailable)
	}
	if err := h.Err(); err != nil {
		t.Fatalf("chain poisoned by a retryable failure: %v", err)
	}
	in.Reset()
	w.Reset()
	deadline := time.Now().Add(5 * time.Second)
	for {
		res = appendWait(t, h, w, failed)
		if res.Err == nil {
			break
		}
		if res.Err.Code != chain.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("retry after the cause is gone: %v", res.Err)
		}
		w.Reset()
		time.Sleep(5 * time.Millisecond)
	}
	if res.Duplicate || res.First != uint64(len(stored)) {
		t.Fatalf("retried batch: %+v, want stored anew at %d", res, len(stored))
	}
	stored = append(stored, failed.Events...)
	more := chain.AppendRequest{Events: testEvents("after", 3)}
	if res = appendWait(t, h, w, more); res.Err != nil || res.First != uint64(len(stored)) {
		t.Fatalf("append after recovery: %+v, want First %d", res, len(stored))
	}
	stored = append(stored, more.Events...)
	sub, err := h.Subscribe(chain.SubscribeOptions{History: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	recs, err := readSub(t, sub, len(stored))
	if err != nil {
		t.Fatalf("reading back: %v", err)
	}
	for i, rec := range recs {
		if rec.Offset != uint64(i) || !bytes.Equal(rec.Payload, stored[i]) {
			t.Fatalf("record %d: offset %d, payload differs: %v", i, rec.Offset, !bytes.Equal(rec.Payload, stored[i]))
		}
	}
}

// blockingValidator holds the chain's append lock (Validate runs under it)
// until release is closed.
type blockingValidator struct {
	entered chan struct{}
	release chan struct{}
}

func (v *blockingValidator) Validate(chain.Key, *chain.Writer, []chain.Event) error {
	v.entered <- struct{}{}
	<-v.release
	return nil
}

// TestIdleSubscriberTakesNoAppendLock parks a subscriber at the head while
// an append holds the chain's append lock (a slow validation): the
// subscriber's idle Next must still wait on its context alone and return
// when it ends, rather than queue behind the append lock on every poll.
// Today's Next checked for a closed chain under that lock.
func TestIdleSubscriberTakesNoAppendLock(t *testing.T) {
	v := &blockingValidator{entered: make(chan struct{}), release: make(chan struct{})}
	r := newTestRegistry(t, chain.Config{Validator: v, Open: (&memStore{}).open})
	o := &chain.Owner{}
	h := acquire(t, r, "idle/poll", o)
	defer h.Release()
	sub, err := h.Subscribe(chain.SubscribeOptions{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	done := make(chan chain.Result, 1)
	go h.Append(chain.NewWriter(o), chain.AppendRequest{Events: testEvents("held", 1)}, func(r chain.Result) { done <- r })
	<-v.entered // the append lock is held from here until release
	returned := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := sub.Next(ctx)
		returned <- err
	}()
	blocked := false
	select {
	case err := <-returned:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("idle Next: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(3 * time.Second):
		blocked = true
		t.Errorf("idle Next still blocked 3 s after its 50 ms context ended: it waits for the append lock")
	}
	close(v.release)
	if res := <-done; res.Err != nil {
		t.Fatalf("held append: %v", res.Err)
	}
	if blocked {
		<-returned
	}
}

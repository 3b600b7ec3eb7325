package chain_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/chain/mmapstore"
	"github.com/atedb/atedb/internal/vfs"
	"github.com/atedb/atedb/mmaplog"
	"github.com/atedb/atedb/store"
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
	root, err := store.Open("/logs", store.Options{FS: vfs.Inject(vfs.NewMem(), in), Log: mmaplog.Options{SegmentSize: 16 << 10, MaxRecordSize: 4 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	r := newTestRegistry(t, chain.Config{Store: mmapstore.New(root)})
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
	r := newTestRegistry(t, chain.Config{Validator: v, Store: &memStore{}})
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

// TestCorruptOldRecordDoesNotBlockAppends flips a byte of an old event in
// a sealed segment of a closed chain (the log's index lets it open without
// reading it): reopened, the chain still takes appends (the duplicate
// window leaves the unreadable events out and says so, with the offset, in
// its log), and a reader gets the events before the damage and then an
// error naming it. Today's code refused every append, because rebuilding
// the duplicate window read the corrupt record.
func TestCorruptOldRecordDoesNotBlockAppends(t *testing.T) {
	dir := t.TempDir()
	var logBuf syncBuffer
	logger := slog.New(slog.NewTextHandler(&logBuf, nil))
	var root *store.Root
	openStack := func() *chain.Registry {
		var err error
		root, err = store.Open(dir, store.Options{Log: mmaplog.Options{SegmentSize: 16 << 10, MaxRecordSize: 4 << 10}, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		r, err := chain.NewRegistry(chain.Config{Store: mmapstore.New(root), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := openStack()
	o := &chain.Owner{}
	h := acquire(t, r, "faults/corrupt", o)
	w := chain.NewWriter(o)
	var stored int
	for i := range 40 {
		req := chain.AppendRequest{Events: testEvents(fmt.Sprintf("c%d-%0100d", i, 0), 10)} // 3 segments
		if res := appendWait(t, h, w, req); res.Err != nil {
			t.Fatalf("batch %d: %v", i, res.Err)
		}
		stored += 10
	}
	h.Release()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := root.Close(); err != nil {
		t.Fatal(err)
	}
	var seg0 string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "00000000000000000000.seg" {
			seg0 = p
		}
		return nil
	})
	b, err := os.ReadFile(seg0)
	if err != nil {
		t.Fatal(err)
	}
	const corruptOffset = 3
	pos := int64(32) // segment header; records follow, each a 32-byte header and its padded payload
	for range corruptOffset {
		n := int64(binary.LittleEndian.Uint32(b[pos:]))
		pos += (32 + n + 7) &^ 7
	}
	b[pos+32+4] ^= 0xff // a payload byte of the record at offset 3
	if err := os.WriteFile(seg0, b, 0o600); err != nil {
		t.Fatal(err)
	}

	r = openStack()
	t.Cleanup(func() { r.Close(); root.Close() })
	h = acquire(t, r, "faults/corrupt", o)
	defer h.Release()
	res := appendWait(t, h, chain.NewWriter(o), chain.AppendRequest{Events: testEvents("after", 2)})
	if res.Err != nil || res.First != uint64(stored) {
		t.Fatalf("append after an old record was corrupted: %+v, want stored at %d", res, stored)
	}
	if !strings.Contains(logBuf.String(), "from_offset="+strconv.Itoa(corruptOffset)) {
		t.Fatalf("the chain's log does not name corrupt offset %d:\n%s", corruptOffset, logBuf.String())
	}
	sub, err := h.Subscribe(chain.SubscribeOptions{History: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	recs, err := readSub(t, sub, -1)
	if len(recs) != corruptOffset || err == nil || !strings.Contains(err.Error(), "record offset 3") {
		t.Fatalf("reading the history: %d records, %v; want %d records then an error naming record offset %d", len(recs), err, corruptOffset, corruptOffset)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

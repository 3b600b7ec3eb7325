package netio

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/chain/memlog"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// TestPipelineAbortAndRestart checks PROTOCOL.md §5 over TCP: in a
// pipeline of n Appends on one channel, batch k fails; batches k+1..n are
// answered with CodeAborted naming k (conditional ones included) even
// though nothing is wrong with them; an Append with the restart flag is
// then processed normally, and so are the ones after it; a restart batch
// that fails starts a new abort. The chain's history holds exactly the
// confirmed batches, in the order sent.
func TestPipelineAbortAndRestart(t *testing.T) {
	const n = 8
	future := time.Now().Add(time.Hour).UnixNano()
	// Each failure kind: how to make batch k fail, and the code it gets.
	fails := map[string]struct {
		build func(k int) *proto.Append
		code  proto.ErrorCode
	}{
		"condition": {func(k int) *proto.Append {
			return &proto.Append{Events: testEvents(fmt.Sprint("b", k), 2), HasCondition: true, ExpectedNext: 1 << 40}
		}, proto.CodeConflict},
		"clock skew": {func(k int) *proto.Append {
			ev, _ := (&proto.Event{Timestamp: future, Data: []byte("late")}).AppendBinary(nil)
			return &proto.Append{Events: [][]byte{testEvent(fmt.Sprint("b", k)), ev}}
		}, proto.CodeClockSkew},
		"malformed event": {func(k int) *proto.Append {
			return &proto.Append{Events: [][]byte{testEvent(fmt.Sprint("b", k)), {0x05, 0x02}}}
		}, proto.CodeMalformed},
		"same event twice in the batch": {func(k int) *proto.Append {
			return &proto.Append{Events: [][]byte{testEvent(fmt.Sprint("b", k)), testEvent(fmt.Sprint("b", k))}}
		}, proto.CodeDuplicate},
		"batch too large": {func(k int) *proto.Append {
			return &proto.Append{Events: testEvents(fmt.Sprint("b", k), 5)}
		}, proto.CodeBatchTooLarge},
	}
	// A delayed log keeps the earlier batches in flight while the later
	// ones arrive, so the abort really is decided in the pipeline.
	ts := startServer(t, Config{}, chain.Config{MaxBatchEvents: 4}, storeOpts{Options: memlog.Options{Delay: 2 * time.Millisecond}})
	run := 0
	for name, fail := range fails {
		for _, k := range []int{1, 4, n} {
			for _, fam := range ts.families() {
				run++
				key := fmt.Sprintf("abort/r%d", run)
				t.Run(fmt.Sprintf("%s/k=%d/%s", name, k, fam), func(t *testing.T) {
					testAbortAndRestart(t, ts.addrs[fam], key, n, k, fail.build, fail.code)
				})
			}
		}
	}
}

func testAbortAndRestart(t *testing.T, addr, key string, n, k int, failing func(int) *proto.Append, code proto.ErrorCode) {
	c := dial(t, addr, key, kex.KeySizeNone)
	expect[*proto.Opened](c)
	var want []string // data of the events the chain must hold, in order
	next := uint64(0)
	// Batch i (1-based) has events "b<i>-0", "b<i>-1", except batch k.
	for i := 1; i <= n; i++ {
		m := &proto.Append{Events: testEvents(fmt.Sprint("b", i), 2)}
		if i == k {
			m = failing(k)
		}
		if i == k+1 {
			// Conditional, with a condition that holds: aborted all the same.
			m.HasCondition, m.ExpectedNext = true, uint64(2*(k-1))
		}
		m.Channel, m.CommitID = 0, uint64(i)
		c.send(m)
	}
	for i := 1; i <= n; i++ {
		switch r := c.recv().(type) {
		case *proto.Confirmed:
			if i >= k || r.CommitID != uint64(i) || len(r.Offsets) != 2 || r.Offsets[0] != next {
				t.Fatalf("reply %d: Confirmed %+v (next offset %d)", i, r, next)
			}
			want = append(want, fmt.Sprint("b", i, "-0"), fmt.Sprint("b", i, "-1"))
			next += 2
		case *proto.CommitError:
			switch {
			case r.CommitID != uint64(i):
				t.Fatalf("reply %d answers commit %d", i, r.CommitID)
			case i < k:
				t.Fatalf("reply %d: %+v before the failing batch %d", i, r, k)
			case i == k && r.Code != code:
				t.Fatalf("failing batch: %s (%s), want %s", r.Code, r.Reason, code)
			case i > k && (r.Code != proto.CodeAborted || r.Head != next || r.Index != -1 ||
				!contains(r.Reason, fmt.Sprintf("earlier batch (%d)", k))):
				t.Fatalf("reply %d: %+v, want aborted naming batch %d with head %d", i, r, k, next)
			}
		default:
			t.Fatalf("reply %d: %s", i, r.Type())
		}
	}
	// Still aborted without the flag, however long after.
	c.send(&proto.Append{Channel: 0, CommitID: 100, Events: testEvents("late", 1)})
	if r := expect[*proto.CommitError](c); r.Code != proto.CodeAborted {
		t.Fatalf("append without restart: %+v, want aborted", r)
	}
	// A restart batch, then a pipeline behind it: all processed normally.
	for i := 0; i < 4; i++ {
		m := &proto.Append{Channel: 0, CommitID: uint64(200 + i), Events: testEvents(fmt.Sprint("r", i), 1)}
		m.Restart = i == 0
		c.send(m)
	}
	for i := 0; i < 4; i++ {
		r := expect[*proto.Confirmed](c)
		if r.CommitID != uint64(200+i) || r.Offsets[0] != next {
			t.Fatalf("after restart, reply %d: %+v, want offset %d", i, r, next)
		}
		want = append(want, fmt.Sprint("r", i, "-0"))
		next++
	}
	// A restart batch that fails aborts the ones behind it in turn; a
	// restart when nothing failed is harmless.
	c.send(&proto.Append{Channel: 0, CommitID: 300, Restart: true, HasCondition: true, ExpectedNext: 1 << 40})
	c.send(&proto.Append{Channel: 0, CommitID: 301, Events: testEvents("x", 1)})
	c.send(&proto.Append{Channel: 0, CommitID: 302, Restart: true, Events: testEvents("y", 1)})
	c.send(&proto.Append{Channel: 0, CommitID: 303, Restart: true, Events: testEvents("z", 1)})
	if r := expect[*proto.CommitError](c); r.CommitID != 300 || r.Code != proto.CodeConflict {
		t.Fatalf("failing restart batch: %+v", r)
	}
	if r := expect[*proto.CommitError](c); r.CommitID != 301 || r.Code != proto.CodeAborted || !contains(r.Reason, "(300)") {
		t.Fatalf("behind the failing restart batch: %+v", r)
	}
	for _, id := range []uint64{302, 303} {
		if r := expect[*proto.Confirmed](c); r.CommitID != id || r.Offsets[0] != next {
			t.Fatalf("restart batch %d: %+v", id, r)
		}
		next++
	}
	want = append(want, "y-0", "z-0")

	// The chain holds exactly the confirmed batches, in the order sent.
	c.send(&proto.Subscribe{Channel: 0, History: true})
	if s := expect[*proto.StartOfHistory](c); s.Head != next || s.Count != next {
		t.Fatalf("StartOfHistory %+v, want head %d", s, next)
	}
	var got []string
	for {
		switch m := c.recv().(type) {
		case *proto.Events:
			for _, it := range eventItems(t, m) {
				if it.Offset != uint64(len(got)) {
					t.Fatalf("event at offset %d, want %d", it.Offset, len(got))
				}
				got = append(got, string(it.Event))
			}
			continue
		case *proto.EndOfHistory:
		default:
			t.Fatalf("history: %s", m.Type())
		}
		break
	}
	if !slices.Equal(got, want) {
		t.Fatalf("stored %q, want %q", got, want)
	}
}

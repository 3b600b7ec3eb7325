package mmaplog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atedb/atedb/internal/vfs"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestSyncErrorPoisons injects EIO into an fdatasync under many concurrent
// appenders: every waiter of that group and every later append fails with
// it, fdatasync is not retried, and what was acknowledged before survives a
// power loss.
func TestSyncErrorPoisons(t *testing.T) {
	mem := vfs.NewMem()
	in := &vfs.Injector{}
	in.Add(vfs.Rule{Ops: vfs.OpDatasync, Path: segSuffix, Skip: 20, Err: syscall.EIO})
	l := openT(t, "/log", Options{FS: vfs.Inject(mem, in), SegmentSize: 64 << 10, MaxRecordSize: 1 << 10})

	type result struct {
		first, n uint64
		err      error
		enqueued bool
	}
	var mu sync.Mutex
	var results []result
	payloads := map[uint64][]byte{}
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				ps := [][]byte{[]byte(fmt.Sprintf("w%d-%d-a", w, i)), []byte(fmt.Sprintf("w%d-%d-b", w, i))}
				done := make(chan error, 1)
				var first uint64
				var err error
				if w%2 == 0 {
					first, err = l.AppendAsync(ps, func(_ uint64, err error) { done <- err })
				} else {
					first, err = l.Enqueue(ps, func(_ uint64, err error) { done <- err })
					if err == nil {
						l.Commit(callerIdle)
					}
				}
				enqueued := err == nil
				if enqueued {
					mu.Lock()
					payloads[first], payloads[first+1] = ps[0], ps[1]
					mu.Unlock()
					err = <-done
				}
				mu.Lock()
				results = append(results, result{first, 2, err, enqueued})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if !errors.Is(l.Err(), syscall.EIO) {
		t.Fatalf("Err = %v, want EIO", l.Err())
	}
	var ackedMax uint64
	failedMin := ^uint64(0)
	acked := 0
	for _, r := range results {
		if r.err == nil {
			acked++
			ackedMax = max(ackedMax, r.first+r.n)
			continue
		}
		if !errors.Is(r.err, syscall.EIO) {
			t.Fatalf("append failed with %v, want EIO", r.err)
		}
		if r.enqueued { // a waiter of the failed group (or a later one)
			failedMin = min(failedMin, r.first)
		}
	}
	if acked == 0 || acked == len(results) {
		t.Fatalf("%d of %d appends acknowledged; want some but not all", acked, len(results))
	}
	if ackedMax > failedMin {
		t.Fatalf("acknowledged offsets up to %d but offset %d failed: a waiter of the failed group was acknowledged", ackedMax, failedMin)
	}
	if in.Fired() != 1 {
		t.Fatalf("fdatasync failed %d times: it was retried after the first failure", in.Fired())
	}
	if _, err := l.Append([][]byte{{1}}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append after poison: %v, want EIO", err)
	}
	select {
	case <-l.Notify():
	default:
		t.Fatal("Notify not closed on poison")
	}
	c, _ := l.NewCursor(l.Head())
	if _, err := c.Next(nil, 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("tailer at Head of a poisoned log: %v, want EIO", err)
	}
	c.Close()
	l.Close()

	after := mem.Crash(vfs.CrashOptions{})
	l = openT(t, "/log", Options{FS: after, SegmentSize: 64 << 10, MaxRecordSize: 1 << 10})
	defer l.Close()
	if l.Head() < ackedMax {
		t.Fatalf("Head after power loss = %d, want >= %d acknowledged", l.Head(), ackedMax)
	}
	for _, r := range readAll(t, l, 0) {
		if r.Offset < ackedMax && !bytes.Equal(r.Payload, payloads[r.Offset]) {
			t.Fatalf("offset %d: payload %q, want %q", r.Offset, r.Payload, payloads[r.Offset])
		}
	}
}

// TestWriteENOSPC makes a write run out of space halfway: the batch fails,
// the log is poisoned, and after reopening no partial record is visible even
// though the partial bytes reached the disk.
func TestWriteENOSPC(t *testing.T) {
	mem := vfs.NewMem()
	in := &vfs.Injector{}
	in.Add(vfs.Rule{Ops: vfs.OpWrite, Path: segSuffix, Skip: 30, Short: 150, Err: syscall.ENOSPC})
	opts := Options{FS: vfs.Inject(mem, in), SegmentSize: 64 << 10, MaxRecordSize: 1 << 10}
	l := openT(t, "/log", opts)
	var acked uint64
	for i := uint64(0); ; i++ {
		_, err := l.Append([][]byte{payloadFor(i, sizeFor(i)), payloadFor(i+1000, 200)})
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("append %d: %v, want ENOSPC", i, err)
			}
			break
		}
		acked += 2
	}
	if _, err := l.Append([][]byte{{1}}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append after ENOSPC: %v", err)
	}
	l.Close()
	// Even if every written byte reached the disk, the partial batch must
	// not be visible.
	after := mem.Crash(vfs.CrashOptions{KeepUnsynced: 1})
	l = openT(t, "/log", Options{FS: after, SegmentSize: 64 << 10, MaxRecordSize: 1 << 10})
	defer l.Close()
	if l.Head() != acked {
		t.Fatalf("Head = %d, want %d (partial batch dropped)", l.Head(), acked)
	}
	if st := l.Stats(); st.Repairs != 1 {
		t.Fatalf("Repairs = %d, want 1", st.Repairs)
	}
	if n := len(readAll(t, l, 0)); uint64(n) != acked {
		t.Fatalf("read %d records, want %d", n, acked)
	}
}

// TestPowerLoss runs random workloads on the crash-simulating file system,
// cuts the power at a random moment, and checks after each recovery that
// every acknowledged record is present, in order, without duplicates; that
// recovered unacknowledged records are whole batches that were really
// appended; and that recovery never reports corruption.
// MMAPLOG_POWER_TRIALS sets the number of trials (default 100).
func TestPowerLoss(t *testing.T) {
	trials := 100
	deadline := time.Now().Add(40 * time.Second) // bounds a CI run on a slow machine
	if s := os.Getenv("MMAPLOG_POWER_TRIALS"); s != "" {
		trials, _ = strconv.Atoi(s)
		deadline = time.Now().Add(24 * time.Hour)
	}
	var total plStats
	for trial := 0; trial < trials; trial++ {
		if time.Now().After(deadline) {
			t.Logf("stopping after %d trials (time bound)", trial)
			break
		}
		s := powerLossTrial(t, uint64(trial))
		total.crashes += s.crashes
		total.openCrashes += s.openCrashes
		total.acked += s.acked
		total.unackedKept += s.unackedKept
		total.repairs += s.repairs
	}
	t.Logf("%d crashes (%d more during recovery), %d acknowledged records checked, %d unacknowledged records recovered, %d torn tails cut",
		total.crashes, total.openCrashes, total.acked, total.unackedKept, total.repairs)
	if total.acked == 0 || total.repairs == 0 {
		t.Fatalf("the trials exercised too little: %+v", total)
	}
}

type plStats struct{ crashes, openCrashes, acked, unackedKept, repairs int }

type plBatch struct {
	first    uint64
	payloads [][]byte
}

func powerLossTrial(t *testing.T, seed uint64) (st plStats) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b9))
	mem := vfs.NewMem()
	opts := Options{
		SegmentSize:   int64(4+rng.IntN(28)) << 10,
		MaxRecordSize: 1 << 10,
		Logger:        discard,
	}
	if rng.IntN(4) == 0 {
		opts.Sync, opts.SyncInterval = SyncInterval, time.Millisecond
	}
	keep := []float64{0, 0.3, 1}[rng.IntN(3)]
	durable := map[uint64][]byte{} // records that must be present from now on
	var durableHead uint64
	for round := 0; round < 1+rng.IntN(3); round++ {
		opts.FS = mem
		l, err := Open("/log", opts)
		if err != nil {
			t.Fatalf("seed %d round %d: Open: %v", seed, round, err)
		}
		var mu sync.Mutex
		var attempted []plBatch
		var acked []plBatch
		var wg sync.WaitGroup
		writers := 1 + rng.IntN(4)
		for w := 0; w < writers; w++ {
			wrng := rand.New(rand.NewPCG(seed, uint64(round*16+w)))
			inline := wrng.IntN(2) == 0 // Enqueue + Commit: may commit on this goroutine
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					ps := make([][]byte, 1+wrng.IntN(4))
					for j := range ps {
						ps[j] = []byte(fmt.Sprintf("s%d r%d w%d i%d j%d %s", seed, round, w, i, j,
							bytes.Repeat([]byte{'x'}, wrng.IntN(600))))
					}
					done := make(chan error, 1)
					mu.Lock() // keep attempted in offset order
					enqueue := l.AppendAsync
					if inline {
						enqueue = l.Enqueue
					}
					first, err := enqueue(ps, func(_ uint64, err error) { done <- err })
					if err == nil {
						attempted = append(attempted, plBatch{first, ps})
					}
					mu.Unlock()
					if err != nil {
						return
					}
					if inline {
						l.Commit(callerIdle)
					}
					if err := <-done; err != nil {
						return
					}
					mu.Lock()
					acked = append(acked, plBatch{first, ps})
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(rng.IntN(8000)) * time.Microsecond)
		next := mem.Crash(vfs.CrashOptions{KeepUnsynced: keep, Rand: rng})
		wg.Wait()
		l.Close()
		mem = next

		if rng.IntN(3) == 0 {
			// Lose power again while Open is recovering (repairing a torn
			// tail, rebuilding an index): recovery must be restartable.
			opts.FS = mem
			delay := time.Duration(rng.IntN(400)) * time.Microsecond
			crashed := make(chan *vfs.MemFS, 1)
			timer := time.AfterFunc(delay, func() {
				crashed <- mem.Crash(vfs.CrashOptions{KeepUnsynced: keep, Rand: rand.New(rand.NewPCG(seed, 5))})
			})
			if l, err := Open("/log", opts); err == nil {
				l.Close()
			}
			if !timer.Stop() {
				mem = <-crashed
			} else {
				mem = mem.Crash(vfs.CrashOptions{KeepUnsynced: keep, Rand: rng})
			}
			st.openCrashes++
		}

		opts.FS = mem
		l, err = Open("/log", opts)
		if err != nil {
			t.Fatalf("seed %d round %d: reopen after power loss: %v", seed, round, err)
		}
		recs := readAll(t, l, 0)
		head := l.Head()
		if uint64(len(recs)) != head {
			t.Fatalf("seed %d round %d: %d records readable, Head %d", seed, round, len(recs), head)
		}
		for i, r := range recs {
			if r.Offset != uint64(i) {
				t.Fatalf("seed %d round %d: record %d has offset %d", seed, round, i, r.Offset)
			}
		}
		if head < durableHead {
			t.Fatalf("seed %d round %d: Head %d below durable head %d", seed, round, head, durableHead)
		}
		for off, p := range durable {
			if !bytes.Equal(recs[off].Payload, p) {
				t.Fatalf("seed %d round %d: durable record %d changed", seed, round, off)
			}
		}
		if opts.Sync == SyncAlways {
			for _, b := range acked {
				if b.first+uint64(len(b.payloads)) > head {
					t.Fatalf("seed %d round %d: acknowledged batch at %d lost (Head %d)", seed, round, b.first, head)
				}
				for j, p := range b.payloads {
					if !bytes.Equal(recs[b.first+uint64(j)].Payload, p) {
						t.Fatalf("seed %d round %d: acknowledged record %d differs", seed, round, b.first+uint64(j))
					}
				}
			}
		}
		// Everything above the durable head must be whole attempted batches.
		pos := durableHead
		for _, b := range attempted {
			if b.first < pos || b.first >= head {
				continue
			}
			if b.first != pos {
				t.Fatalf("seed %d round %d: records %d..%d come from no batch", seed, round, pos, b.first)
			}
			if b.first+uint64(len(b.payloads)) > head {
				t.Fatalf("seed %d round %d: batch at %d recovered partly (Head %d)", seed, round, b.first, head)
			}
			for j, p := range b.payloads {
				if !bytes.Equal(recs[b.first+uint64(j)].Payload, p) {
					t.Fatalf("seed %d round %d: record %d is not what was appended", seed, round, b.first+uint64(j))
				}
			}
			pos = b.first + uint64(len(b.payloads))
		}
		if pos != head {
			t.Fatalf("seed %d round %d: records %d..%d come from no batch", seed, round, pos, head)
		}
		st.crashes++
		st.repairs += int(l.Stats().Repairs)
		for _, b := range acked {
			st.acked += len(b.payloads)
		}
		for _, r := range recs {
			durable[r.Offset] = r.Payload
		}
		st.unackedKept += int(head-durableHead) - countIn(acked, durableHead, head)
		durableHead = head
		l.Close()
	}
	return st
}

func countIn(bs []plBatch, lo, hi uint64) int {
	n := 0
	for _, b := range bs {
		if b.first >= lo && b.first < hi {
			n += len(b.payloads)
		}
	}
	return n
}

// TestOpenIOErrors fails one operation of Open at a time: Open returns the
// error and no log, releases what it took, and the next Open succeeds.
func TestOpenIOErrors(t *testing.T) {
	for _, op := range []vfs.Op{vfs.OpList, vfs.OpLock, vfs.OpOpen, vfs.OpRead, vfs.OpMap, vfs.OpSyncDir, vfs.OpMkdir} {
		t.Run(op.String(), func(t *testing.T) {
			mem := vfs.NewMem()
			in := &vfs.Injector{}
			opts := Options{FS: vfs.Inject(mem, in), SegmentSize: 8 << 10, MaxRecordSize: 1 << 10, Logger: discard}
			l := openT(t, "/log", opts)
			appendN(t, l, 0, 100, 3) // several segments
			l.Close()
			in.Add(vfs.Rule{Ops: op, Count: 1, Err: vfs.ErrInjected})
			l, err := Open("/log", opts)
			if !errors.Is(err, vfs.ErrInjected) || l != nil {
				t.Fatalf("Open with a failing %v: %v, %v", op, l, err)
			}
			l = openT(t, "/log", opts)
			defer l.Close()
			checkDense(t, readAll(t, l, 0), 0, 100)
		})
	}
}

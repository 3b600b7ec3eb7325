package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/atedb/atedb/internal/vfs"
	"github.com/atedb/atedb/journal"
	"github.com/atedb/atedb/mmaplog"
)

const allOps = vfs.OpCreate | vfs.OpOpen | vfs.OpRemove | vfs.OpRename | vfs.OpMkdir | vfs.OpList |
	vfs.OpSyncDir | vfs.OpLock | vfs.OpRead | vfs.OpWrite | vfs.OpTruncate | vfs.OpAllocate |
	vfs.OpSync | vfs.OpDatasync | vfs.OpMap | vfs.OpClose | vfs.OpSyncFS

// crashBatch is one Append of the crash workload.
type crashBatch struct {
	log      int
	first    uint64
	payloads [][]byte
	acked    bool
}

// crashWorkload appends batches to three logs, one at a time, through a
// root in always+journal mode with a small journal and small segments, so
// that the run crosses segment rollovers and journal switches and
// checkpoints. It stops at the first error (after a crash every operation
// fails) and returns every batch it attempted.
func crashWorkload(fs vfs.FS, seed uint64) (batches []crashBatch) {
	rng := rand.New(rand.NewPCG(seed, 0xc4a5))
	o := modes["always+journal"]
	o.FS, o.Logger = fs, discard
	o.JournalFileSize = journal.MinFileSize
	o.JournalNoDirect = seed%2 == 0 // else lone groups sync their segment
	o.Log.SegmentSize, o.Log.MaxRecordSize = 8<<10, 2<<10
	r, err := Open("/logs", o)
	if err != nil {
		return nil
	}
	var logs []*mmaplog.Log
	defer func() {
		for _, l := range logs {
			l.Close()
		}
		r.Close()
	}()
	for i := range 3 {
		l, err := r.Open(fmt.Sprintf("app/c%d/@log", i))
		if err != nil {
			return batches
		}
		logs = append(logs, l)
	}
	for range 150 {
		i := rng.IntN(len(logs))
		b := crashBatch{log: i}
		for range 1 + rng.IntN(3) {
			b.payloads = append(b.payloads, bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, 50+rng.IntN(600)))
		}
		b.first = logs[i].Head() // appends are sequential: the next offset
		batches = append(batches, b)
		if _, err := logs[i].Append(b.payloads); err != nil {
			return batches
		}
		batches[len(batches)-1].acked = true
	}
	return batches
}

// TestCrashPoints cuts the power at every file operation of a whole
// workload in turn (the k-th operation fails and the file system keeps
// only what was synced, plus, in some trials, a random part of what was
// not), then reopens the logs directory in one of the three modes. For
// every k: every acknowledged batch is there with its bytes at its
// offsets, and what was recovered beyond that is whole attempted batches.
// Across all k, some trials must have lost written-but-unsynced data, so
// that the check is not vacuous. A failure prints the seed and k to replay.
func TestCrashPoints(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		in := &vfs.Injector{}
		clean := crashWorkload(vfs.Inject(vfs.NewMem(), in), seed)
		total := in.Seen(allOps)
		if len(clean) == 0 || !clean[len(clean)-1].acked {
			t.Fatalf("seed %d: the workload fails without a crash", seed)
		}
		stride := 1
		if raceEnabled || testing.Short() {
			stride = 7
		}
		var trials, unsyncedLost, recoveredUnacked int
		modeNames := slices.Sorted(func(yield func(string) bool) {
			for n := range modes {
				if !yield(n) {
					return
				}
			}
		})
		for k := 0; k < total+10; k += stride {
			mode := modeNames[k%len(modeNames)]
			lost, extra, err := crashTrial(t, seed, k, mode)
			if err != nil {
				t.Fatal(err)
			}
			trials++
			if lost {
				unsyncedLost++
			}
			if extra {
				recoveredUnacked++
			}
		}
		t.Logf("seed %d: %d operations, %d crash points; %d lost written-but-unsynced batches, %d recovered unacknowledged ones",
			seed, total, trials, unsyncedLost, recoveredUnacked)
		if unsyncedLost == 0 {
			t.Errorf("seed %d: no crash point lost unsynced data: the trials did not test durability", seed)
		}
	}
}

// crashTrial runs the workload with the power cut at operation k, reopens
// in mode, and checks the logs. lost reports that a batch whose bytes were
// written was lost (the crash cut a sync); extra that an unacknowledged
// batch survived.
func crashTrial(t *testing.T, seed uint64, k int, mode string, extraRules ...vfs.Rule) (lost, extra bool, err error) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, uint64(k)))
	mem := vfs.NewMem()
	in := &vfs.Injector{}
	for _, r := range extraRules {
		in.Add(r)
	}
	var after *vfs.MemFS
	var cutAt vfs.Op
	in.Add(vfs.Rule{Ops: allOps, Skip: k, Count: 1, Err: vfs.ErrCrashed, Hook: func(op vfs.Op, _ string) {
		cutAt = op
		after = mem.Crash(vfs.CrashOptions{KeepUnsynced: []float64{0, 0, 0.5}[rng.IntN(3)], Rand: rng})
	}})
	batches := crashWorkload(vfs.Inject(mem, in), seed)
	if after == nil {
		after = mem.Crash(vfs.CrashOptions{}) // k past the end: power cut after a clean close
	}
	o := modes[mode]
	o.FS, o.Logger = after, discard
	o.Log.SegmentSize, o.Log.MaxRecordSize = 8<<10, 2<<10
	r, err := Open("/logs", o)
	if err != nil {
		return false, false, fmt.Errorf("seed %d k %d (%v): reopen in mode %s: %v", seed, k, cutAt, mode, err)
	}
	defer r.Close()
	got := map[int][][]byte{}
	for i := range 3 {
		rel := fmt.Sprintf("app/c%d/@log", i)
		if ok, _ := r.Exists(rel); !ok {
			continue
		}
		l, err := r.Open(rel)
		if err != nil {
			return lost, extra, fmt.Errorf("seed %d k %d (%v): reopen %s in mode %s: %v", seed, k, cutAt, rel, mode, err)
		}
		got[i], err = readLog(l)
		if err != nil {
			l.Close()
			return lost, extra, fmt.Errorf("seed %d k %d (%v, then %s): %w", seed, k, cutAt, mode, err)
		}
		if err := l.Close(); err != nil {
			return lost, extra, fmt.Errorf("seed %d k %d: close %s: %v", seed, k, rel, err)
		}
	}
	// Walk each log's batches in order: acknowledged ones must be there;
	// after the first missing batch nothing more may be.
	for i := range 3 {
		recs := got[i]
		end := 0 // records of log i accounted for
		for _, b := range batches {
			if b.log != i {
				continue
			}
			if int(b.first) != end {
				if b.acked {
					return lost, extra, fmt.Errorf("seed %d k %d (%v, then %s): log %d batch at %d acknowledged but the log has only %d records",
						seed, k, cutAt, mode, i, b.first, end)
				}
				continue
			}
			n := len(b.payloads)
			if len(recs) < end+n {
				if len(recs) > end {
					return lost, extra, fmt.Errorf("seed %d k %d (%v, then %s): log %d batch at %d recovered in part: %d of %d records",
						seed, k, cutAt, mode, i, b.first, len(recs)-end, n)
				}
				if b.acked {
					return lost, extra, fmt.Errorf("seed %d k %d (%v, then %s): log %d lost the acknowledged batch at %d (log has %d records)",
						seed, k, cutAt, mode, i, b.first, len(recs))
				}
				if cutAt&(vfs.OpDatasync|vfs.OpSync|vfs.OpSyncFS) != 0 {
					lost = true
				}
				continue
			}
			for j, p := range b.payloads {
				if !bytes.Equal(recs[end+j], p) {
					return lost, extra, fmt.Errorf("seed %d k %d (%v, then %s): log %d record %d holds other bytes than were appended",
						seed, k, cutAt, mode, i, end+j)
				}
			}
			if !b.acked {
				extra = true
			}
			end += n
		}
		if len(recs) != end {
			return lost, extra, fmt.Errorf("seed %d k %d (%v, then %s): log %d has %d records, only %d were appended",
				seed, k, cutAt, mode, i, len(recs), end)
		}
	}
	return lost, extra, nil
}

// TestCrashPointsNoticeMissingSyncs is the mutation check of TestCrashPoints:
// with the fdatasyncs of the journal, or of the segments, turned into
// no-ops that report success, some crash point must lose an acknowledged
// batch, so the crash test cannot pass on code that does not sync.
func TestCrashPointsNoticeMissingSyncs(t *testing.T) {
	for name, path := range map[string]string{"journal": "/" + journal.DirName + "/", "segments": ".seg"} {
		t.Run(name, func(t *testing.T) {
			seed := uint64(2) // journal through NoDirect: both kinds of sync carry acknowledgements
			lie := vfs.Rule{Ops: vfs.OpDatasync | vfs.OpSync | vfs.OpSyncFS, Path: path, Lie: true}
			caught := 0
			for k := 50; k < 800 && caught == 0; k += 25 {
				if _, _, err := crashTrial(t, seed, k, "always+journal", lie); err != nil {
					caught++
					t.Logf("k %d: %v", k, err)
				}
			}
			if caught == 0 {
				t.Fatalf("with the %s fdatasyncs skipped, no crash point lost an acknowledged batch", name)
			}
		})
	}
}

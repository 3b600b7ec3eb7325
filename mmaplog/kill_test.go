//go:build unix

package mmaplog

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/atedb/atedb/journal"
	"time"
)

const killHelperEnv = "MMAPLOG_KILL_HELPER_DIR"

// killPayload is the payload of the record at offset off in the kill test.
func killPayload(off uint64) []byte {
	return payloadFor(off, int(off*53%700)+10)
}

// TestHelperProcess is the child of TestKill9: it appends from several
// goroutines and prints "ack <first> <n>" for each acknowledged batch until
// it is killed. It does nothing in a normal test run.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(killHelperEnv)
	if dir == "" {
		t.Skip("helper process for TestKill9")
	}
	mode, _ := ParseSyncMode(os.Getenv(killHelperEnv + "_SYNC"))
	opts := Options{SegmentSize: 256 << 10, MaxRecordSize: 1 << 10, Logger: discard,
		Sync: mode, SyncInterval: 50 * time.Millisecond}
	if os.Getenv(killHelperEnv+"_JOURNAL") != "" {
		// A small journal, so that files switch and checkpoint before the kill.
		j, err := journal.Open(filepath.Dir(dir), journal.Options{Files: SegmentFiles{}, FileSize: journal.MinFileSize, Logger: discard,
			NoDirect: true}) // every group through the journal, even when alone
		if err != nil {
			fmt.Fprintln(os.Stderr, "open journal:", err)
			os.Exit(2)
		}
		opts.Journal = j
	}
	l, err := Open(dir, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	var mu sync.Mutex // serialises AppendAsync so the child knows each offset first
	nextOff := l.Head()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for {
				n := 1 + rng.IntN(5)
				done := make(chan error, 1)
				mu.Lock()
				first := nextOff
				nextOff += uint64(n)
				ps := make([][]byte, n)
				for j := range ps {
					ps[j] = killPayload(first + uint64(j))
				}
				got, err := l.AppendAsync(ps, func(_ uint64, err error) { done <- err })
				mu.Unlock()
				if err != nil || got != first {
					fmt.Fprintln(os.Stderr, "append:", got, first, err)
					os.Exit(3)
				}
				if err := <-done; err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(3)
				}
				outMu.Lock()
				fmt.Fprintf(out, "ack %d %d\n", first, n)
				out.Flush() // the parent may kill us any time after this line is out
				outMu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestKill9 kills a child process that appends, at random moments, with
// SIGKILL, and checks after each kill that every batch the child reported
// as acknowledged is present with its payloads. Trials alternate between
// SyncInterval, SyncAlways and SyncAlways through a commit journal (whose
// replay then runs before the log opens): a killed process loses no page
// cache, so every mode must keep every acknowledged record (interval mode
// spares the loaded test machine's disk). MMAPLOG_KILL_TRIALS sets the number of
// trials (default 20).
func TestKill9(t *testing.T) {
	if os.Getenv(killHelperEnv) != "" {
		t.Skip("in the helper process")
	}
	trials := 20
	if s := os.Getenv("MMAPLOG_KILL_TRIALS"); s != "" {
		trials, _ = strconv.Atoi(s)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "log")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var ackedHead uint64
	totalAcked := 0
	for trial := 0; trial < trials; trial++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		mode := []SyncMode{SyncInterval, SyncAlways, SyncAlways}[trial%3]
		withJournal := trial%3 == 2
		cmd.Env = append(os.Environ(), killHelperEnv+"="+dir, killHelperEnv+"_SYNC="+mode.String())
		if withJournal {
			cmd.Env = append(cmd.Env, killHelperEnv+"_JOURNAL=1")
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Wait for the first acknowledgement, then kill at a random moment.
		var acks []string
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("trial %d: child exited before appending: %s", trial, stderr.String())
			}
			acks = append(acks, line)
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("trial %d: child did not append: %s", trial, stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for line := range lines {
			acks = append(acks, line)
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("trial %d: child ended with %v, not by SIGKILL: %s", trial, err, stderr.String())
		}

		opts := Options{SegmentSize: 256 << 10, MaxRecordSize: 1 << 10}
		var j *journal.Journal
		if withJournal {
			j = openJournalT(t, root, journal.Options{Files: SegmentFiles{}, FileSize: journal.MinFileSize})
			opts.Journal = j
		}
		l := openT(t, dir, opts)
		head := l.Head()
		for _, a := range acks {
			if !strings.HasPrefix(a, "ack ") {
				continue // test framework output
			}
			var first, n uint64
			if _, err := fmt.Sscanf(a, "ack %d %d", &first, &n); err != nil {
				t.Fatalf("trial %d: bad line %q", trial, a)
			}
			if first+n > head {
				t.Fatalf("trial %d: acknowledged batch %d+%d lost (Head %d)", trial, first, n, head)
			}
			ackedHead = max(ackedHead, first+n)
			totalAcked += int(n)
		}
		if head < ackedHead {
			t.Fatalf("trial %d: Head %d below acknowledged %d", trial, head, ackedHead)
		}
		recs := readAll(t, l, 0)
		if uint64(len(recs)) != head {
			t.Fatalf("trial %d: %d records for Head %d", trial, len(recs), head)
		}
		for i, r := range recs {
			if r.Offset != uint64(i) || !bytes.Equal(r.Payload, killPayload(r.Offset)) {
				t.Fatalf("trial %d: record %d (offset %d) is wrong", trial, i, r.Offset)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if j != nil {
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if strings.TrimSpace(stderr.String()) != "" {
			t.Logf("trial %d child stderr: %s", trial, stderr.String())
		}
	}
	t.Logf("%d kills, %d acknowledged records verified, final head %d", trials, totalAcked, ackedHead)
}

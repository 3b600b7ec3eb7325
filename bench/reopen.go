package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atedb/atedb/bench/internal/harness"
	"github.com/atedb/atedb/client"
	"github.com/atedb/atedb/proto"
)

// killMarker tags the events appended during the kill -9 phase of reopen.
const killMarker = 0xFFFE

// runReopen fills a chain with p.Count events (1 GiB at full size), stops
// the server cleanly and times the reopening of the chain on a new server
// process; then appends from p.Producers pipelined producers, kills the
// server with SIGKILL while appends are in flight, and times the recovery
// (process start to chain open), checking that every event confirmed
// before the kill is still there.
func runReopen(ctx context.Context, rc *runCtx) harness.Result {
	p := rc.it.p
	r := harness.Result{System: "atedb", Workload: "reopen", Params: p}
	fail := func(format string, a ...any) harness.Result {
		r.Error = fmt.Sprintf(format, a...)
		return r
	}
	if rc.srv == nil {
		return fail("reopen needs its own server (no -url)")
	}
	key := harness.StreamName("reopen")
	filled, fillTime, err := harness.Fill(ctx, rc.env, key, "atedb reopen: filling", p)
	if err != nil {
		return fail("fill: %v", err)
	}
	r.Events = filled
	r.Bytes = filled * int64(p.EventSize)
	r.SetExtra("fill_events_per_s", float64(filled)/fillTime.Seconds())
	r.SetExtra("log_mib", float64(dirSize(rc.srv.cfg.dataDir))/(1<<20))

	// Clean stop, then reopen on a new process.
	t := time.Now()
	if err := rc.srv.stop(); err != nil {
		return fail("clean stop: %v", err)
	}
	r.SetExtra("shutdown_ms", ms(time.Since(t)))
	if err := rc.restart(ctx); err != nil {
		return fail("restart: %v", err)
	}
	r.SetExtra("server_start_ms", ms(rc.srv.startedIn))
	profDone := rc.profileBriefly(ctx, "reopen", 1)
	open, head, err := timedOpen(ctx, rc, key)
	profDone()
	if err != nil {
		return fail("reopen: %v", err)
	}
	if head != uint64(filled) {
		return fail("reopened chain has %d events, want %d", head, filled)
	}
	r.SetExtra("reopen_ms", ms(open))

	// Appends in flight, kill -9, recover.
	confirmed, err := appendUntilKilled(ctx, rc, key, p)
	if err != nil {
		return fail("kill phase: %v", err)
	}
	r.SetExtra("confirmed_before_kill", float64(len(confirmed)))
	if err := rc.restart(ctx); err != nil {
		return fail("restart after kill -9: %v", err)
	}
	start := rc.srv.startedIn
	profDone = rc.profileBriefly(ctx, "recovery", 1)
	open, head, err = timedOpen(ctx, rc, key)
	profDone()
	if err != nil {
		return fail("open after kill -9: %v", err)
	}
	r.SetExtra("recovery_server_start_ms", ms(start))
	r.SetExtra("recovery_ms", ms(start+open))
	lost, extra, err := checkSurvivors(ctx, rc, key, uint64(filled), head, confirmed)
	if err != nil {
		return fail("check after kill -9: %v", err)
	}
	r.SetExtra("unconfirmed_kept", float64(extra))
	if lost > 0 {
		return fail("%d of %d events confirmed before kill -9 are missing after recovery", lost, len(confirmed))
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// restart replaces the run's server with a new process on the same data.
func (rc *runCtx) restart(ctx context.Context) error {
	srv, err := rc.srv.restart(ctx)
	if err != nil {
		return err
	}
	rc.setServer(srv)
	return nil
}

// timedOpen connects to a scratch chain, then times the opening of chain
// key on that connection (the server opens its log on demand) and returns
// the chain's event count.
func timedOpen(ctx context.Context, rc *runCtx, key string) (time.Duration, uint64, error) {
	d := newDriver(rc.url, 0, 1)
	c, err := d.dial(ctx, harness.StreamName("probe"))
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	t := time.Now()
	ch, err := c.OpenChain(ctx, keyPrefix+key)
	if err != nil {
		return 0, 0, err
	}
	open := time.Since(t)
	sub, err := ch.Subscribe(ctx, client.SubscribeOptions{Live: true})
	if err != nil {
		return 0, 0, err
	}
	head := sub.Head()
	sub.Close()
	return open, head, nil
}

// appendUntilKilled runs pipelined producers on key, kills the server with
// SIGKILL once they have been confirmed for a while, and returns the
// sequence numbers confirmed before the kill.
func appendUntilKilled(ctx context.Context, rc *runCtx, key string, p harness.Params) ([]uint64, error) {
	d := newDriver(rc.url, 0, p.Window)
	var (
		seq       atomic.Uint64
		confirmed atomic.Int64
		mu        sync.Mutex
		got       []uint64
		wg        sync.WaitGroup
	)
	clients := make([]*client.Client, p.Producers)
	for i := range clients {
		c, err := d.dial(ctx, key)
		if err != nil {
			return nil, err
		}
		clients[i] = c
	}
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			type sent struct {
				f   *client.Future
				seq uint64
			}
			q := make(chan sent, p.Window)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for s := range q {
					if _, err := s.f.Wait(ctx); err != nil {
						for range q { // drain: the server is gone
						}
						return
					}
					confirmed.Add(1)
					mu.Lock()
					got = append(got, s.seq)
					mu.Unlock()
				}
			}()
			data := make([]byte, p.EventSize)
			binary.LittleEndian.PutUint16(data[8:], killMarker)
		loop:
			for {
				n := seq.Add(1)
				binary.LittleEndian.PutUint64(data, n)
				f, err := c.AppendAsync(ctx, client.Batch{Events: []proto.Event{{Data: data}}})
				if err != nil {
					break // the server is gone
				}
				select {
				case q <- sent{f, n}:
				case <-done:
					break loop
				}
			}
			close(q)
			<-done
		}()
	}
	// Let appends flow (at least 200 ms and 1,000 confirmations, at most 10 s), then kill.
	t := time.Now()
	for time.Since(t) < 200*time.Millisecond || confirmed.Load() < 1000 {
		if time.Since(t) > 10*time.Second || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	rc.srv.kill()
	wg.Wait()
	if confirmed.Load() == 0 {
		return nil, errors.New("no append was confirmed before the kill")
	}
	return got, nil
}

// checkSurvivors reads the events from offset from to the head and
// returns how many confirmed sequence numbers are missing, and how many
// unconfirmed events survived (appended but not yet acknowledged at the kill).
func checkSurvivors(ctx context.Context, rc *runCtx, key string, from, head uint64, confirmed []uint64) (lost, unconfirmed int, err error) {
	if head < from {
		return 0, 0, fmt.Errorf("chain shrank from %d to %d events", from, head)
	}
	d := newDriver(rc.url, 0, 1)
	c, err := d.dial(ctx, key)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, client.SubscribeOptions{History: true, From: from})
	if err != nil {
		return 0, 0, err
	}
	defer sub.Close()
	present := make(map[uint64]bool, head-from)
	for {
		ev, err := sub.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		if len(ev.Data) < 10 || binary.LittleEndian.Uint16(ev.Data[8:]) != killMarker {
			return 0, 0, fmt.Errorf("offset %d: not an event of the kill phase", ev.Offset)
		}
		present[binary.LittleEndian.Uint64(ev.Data)] = true
	}
	for _, s := range confirmed {
		if !present[s] {
			lost++
		}
	}
	return lost, len(present) - (len(confirmed) - lost), nil
}

// dirSize returns the total size of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// profileBriefly records a CPU profile of secs seconds of the current
// server around a short phase when -pprof is set; call the returned function
// after the phase.
func (rc *runCtx) profileBriefly(ctx context.Context, phase string, secs int) func() {
	if rc.bf.pprofDir == "" {
		return func() {}
	}
	srv := rc.srv
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := filepath.Join(rc.bf.pprofDir, fmt.Sprintf("%s-%s-cpu.pb.gz", rc.it.name, phase))
		if err := srv.fetchProfile(ctx, "profile", fmt.Sprintf("seconds=%d", secs), path); err != nil {
			fmt.Fprintf(os.Stderr, "pprof %s: %v\n", phase, err)
		}
	}()
	time.Sleep(100 * time.Millisecond) // let the profile start
	return func() { <-done }
}

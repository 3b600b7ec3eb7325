package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atedb/atedb/bench/internal/harness"
	"github.com/atedb/atedb/client"
	"github.com/atedb/atedb/proto"
)

// manychains settings.
const (
	zipfS = 1.1 // Zipf exponent of chain popularity
	// activeSegment is the segment size of the active-chains phase: every
	// open chain holds a segment and a preallocated next one, so 10,000
	// chains at the 64 MiB default would need 1.3 TB of disk.
	activeSegment = 256 << 10
	// diskSegment is the segment size of the 100,000 chains on disk.
	diskSegment = 16 << 10
	// maxBatchEvents bounds a batch's events so that a batch of
	// segment/4 bytes fits a small segment with its record headers (atedb
	// solo refuses segment sizes that cannot hold its largest batch); the
	// workload appends one event at a time.
	maxBatchEvents = 256
	// maxOpenMeasured bounds the chains opened (and kept open, idle) in the
	// open-on-demand phase; fewer are opened if the server's memory nears
	// -max-server-rss.
	maxOpenMeasured = 1000
	// channelsPerConn is the server's --max-channels in the open phase.
	channelsPerConn = 1000
)

// runManyChains measures (A) durable append throughput when the load is
// spread over 1, 100 and p.Chains chains, and (B) the latency of opening a
// chain on demand among many chains on disk, with the server memory each
// open idle chain costs.
//
// Phase A: chain k is written by the producers i with k ≡ i (mod
// min(chains, producers)), each on its own connection with a channel open
// on each of its chains (opened before timing); a producer picks the next
// chain among its own with probability ∝ (k+1)^-1.1 (Zipf over the global
// rank), appends one event and waits for the confirmation.
//
// Phase B: a fresh server gets on-disk-chains chains of one event each, is
// restarted (so none is open), and up to 1,000 of them are opened one at a
// time and kept open idle.
func runManyChains(ctx context.Context, rc *runCtx) harness.Result {
	p := rc.it.p
	r := harness.Result{System: "atedb", Workload: "manychains", Params: p}
	fail := func(format string, a ...any) harness.Result {
		r.Error = fmt.Sprintf(format, a...)
		return r
	}
	if rc.srv == nil {
		return fail("manychains restarts its server with other settings: it cannot use -url")
	}
	if p.Chains < 1 || p.Producers < 1 || p.DurationS <= 0 {
		return fail("%v: manychains needs chains, producers and a duration", harness.ErrBadParams)
	}
	onDisk := rc.bf.onDisk
	if onDisk == 0 {
		onDisk = 100_000
		if rc.o.Smoke {
			onDisk = 2_000
		}
	}

	// Phase A, on a server whose segments fit 10,000 chains on the disk and
	// whose connections may hold a channel on each of their chains.
	// A server death in phase A (the memory cap) ends phase A only.
	perConn := (p.Chains+p.Producers-1)/p.Producers + 1
	actx, acancel := context.WithCancelCause(ctx)
	runCancel, runDone := rc.cancel, rc.done
	rc.cancel, rc.done = acancel, actx.Done()
	phaseErr := func() error {
		defer acancel(nil)
		srvA, err := rc.replaceServer(actx, "active", rc.it.p.Sync,
			"--segment-size", fmt.Sprint(activeSegment), "--max-batch-bytes", fmt.Sprint(activeSegment/4),
			"--max-batch-events", fmt.Sprint(maxBatchEvents), "--max-channels", fmt.Sprint(max(perConn, 64)))
		if err != nil {
			return fmt.Errorf("start server: %w", err)
		}
		defer os.RemoveAll(srvA.cfg.dataDir)
		counts := []int{1, 100, p.Chains}
		counts = slices.Compact(slices.DeleteFunc(counts, func(c int) bool { return c > p.Chains }))
		var first *phaseResult
		for _, c := range counts {
			profDone := rc.profileBriefly(actx, fmt.Sprintf("%dchains", c), max(1, int(p.DurationS)))
			pr, err := zipfPhase(actx, rc, c, p)
			profDone()
			if err != nil {
				if cause := context.Cause(actx); cause != nil {
					err = cause
				}
				return fmt.Errorf("%d active chains: %w", c, err)
			}
			r.SetExtra(fmt.Sprintf("rate_%d_chains", c), pr.rate)
			if first == nil {
				first = pr
			}
			if c == p.Chains {
				r.SetExtra("create_active_chains_per_s", pr.openRate)
				r.SetExtra("rate_ratio_many_over_one", pr.rate/first.rate)
				r.Events = pr.events
				r.Bytes = pr.events * int64(p.EventSize)
				pr.meter.Fill(&r)
				r.Latency = pr.hist.Latency()
			}
		}
		rc.env.AddStandardLimits(&r, true)
		return srvA.stop()
	}()
	rc.cancel, rc.done = runCancel, runDone

	// Phase B: create the chains on a server that closes idle chains at
	// once (set-up only), then open some on a fresh process.
	if _, err := rc.replaceServer(ctx, "disk", "interval",
		"--segment-size", fmt.Sprint(diskSegment), "--max-batch-bytes", fmt.Sprint(diskSegment/4), "--max-batch-events", fmt.Sprint(maxBatchEvents),
		"--idle-close", "1s", "--max-channels", "64", "--dedup-window", "16"); err != nil {
		return fail("start server: %v", err)
	}
	prefix := harness.StreamName("md")
	t := time.Now()
	if err := createChains(ctx, rc, prefix, onDisk, p.Producers); err != nil {
		return fail("create %d chains: %v", onDisk, err)
	}
	r.SetExtra("on_disk_chains", float64(onDisk))
	r.SetExtra("create_chains_per_s", float64(onDisk)/time.Since(t).Seconds())
	if err := rc.srv.stop(); err != nil {
		return fail("stop server: %v", err)
	}
	cfg := rc.srv.cfg
	cfg.sync = p.Sync
	cfg.extra = append(slices.Clone(rc.bf.serverArg), "--segment-size", fmt.Sprint(diskSegment),
		"--max-batch-bytes", fmt.Sprint(diskSegment/4), "--max-batch-events", fmt.Sprint(maxBatchEvents), "--max-channels", fmt.Sprint(channelsPerConn))
	srvB, err := startServer(ctx, cfg)
	if err != nil {
		return fail("restart: %v", err)
	}
	rc.setServer(srvB)
	profDone := rc.profileBriefly(ctx, "open", 3)
	op, err := openOnDemand(ctx, rc, prefix, onDisk)
	profDone()
	if err != nil {
		return fail("open on demand: %v", err)
	}
	r.SetExtra("open_p50_us", op.hist.Latency().P50)
	r.SetExtra("open_p99_us", op.hist.Latency().P99)
	r.SetExtra("open_max_us", op.hist.Latency().Max)
	r.SetExtra("opened_idle_chains", float64(op.opened))
	r.SetExtra("bytes_per_idle_chain", op.bytesPerChain)
	r.SetExtra("fds_per_idle_chain", op.fdsPerChain)
	r.Note = fmt.Sprintf("server flags: --segment-size %d --max-batch-bytes %d --max-batch-events 256 --max-channels %d for the active chains; --segment-size %d --max-batch-bytes %d --max-batch-events 256 for the chains on disk (created with --sync interval --idle-close 1s --dedup-window 16, opened with the defaults)",
		activeSegment, activeSegment/4, max(perConn, 64), diskSegment, diskSegment/4)
	if phaseErr != nil {
		r.Error = phaseErr.Error()
	}
	return r
}

// replaceServer stops the run's server and starts one on a new data
// directory with the given sync mode and extra flags.
func (rc *runCtx) replaceServer(ctx context.Context, name, sync string, extra ...string) (*atedbServer, error) {
	if err := rc.srv.stop(); err != nil {
		return nil, err
	}
	cfg := rc.srv.cfg
	dir := filepath.Dir(cfg.dataDir)
	cfg.dataDir = filepath.Join(dir, "data-"+name)
	cfg.logPath = filepath.Join(dir, "server-"+name+".log")
	cfg.sync = sync
	cfg.extra = append(slices.Clone(rc.bf.serverArg), extra...)
	srv, err := startServer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	rc.setServer(srv)
	return srv, nil
}

// setServer makes srv the run's server and cancels the run if srv dies
// unasked (a client request might otherwise wait for it forever).
func (rc *runCtx) setServer(srv *atedbServer) {
	rc.srv = srv
	rc.url = "tcp://" + srv.addr
	rc.env.Server = srv.proc
	if rc.cancel != nil {
		srv.watch(rc.done, rc.bf.maxRSS, func(err error) { rc.cancel(fmt.Errorf("server died during the run: %w", err)) })
	}
}

type phaseResult struct {
	events   int64
	rate     float64
	openRate float64 // chains created and opened per second while preparing
	hist     harness.Histogram
	meter    *harness.Meter
}

// zipfPhase runs phase A over c chains.
func zipfPhase(ctx context.Context, rc *runCtx, c int, p harness.Params) (*phaseResult, error) {
	prefix := harness.StreamName(fmt.Sprintf("mc%d", c))
	groups := min(c, p.Producers)
	d := newDriver(rc.url, p.WireEncryption, 1)
	type prod struct {
		c      *client.Client
		chains []*client.Chain
		cum    []float64 // cumulative Zipf weights of chains
		hist   harness.Histogram
	}
	prods := make([]*prod, p.Producers)
	defer func() {
		for _, pr := range prods {
			if pr != nil && pr.c != nil {
				pr.c.Close()
			}
		}
	}()
	// Connect and open every producer's chains (untimed, in parallel).
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		firstEr error
	)
	setErr := func(err error) {
		errMu.Lock()
		if firstEr == nil {
			firstEr = err
		}
		errMu.Unlock()
	}
	tOpen := time.Now()
	for i := range prods {
		pr := &prod{}
		prods[i] = pr
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := i % groups
			cl, err := d.dial(ctx, fmt.Sprintf("%s/c%d", prefix, first))
			if err != nil {
				setErr(err)
				return
			}
			pr.c = cl
			total := 0.0
			for k := first; k < c; k += groups {
				ch := cl.Chain()
				if k != first {
					if ch, err = cl.OpenChain(ctx, fmt.Sprintf("%s%s/c%d", keyPrefix, prefix, k)); err != nil {
						setErr(fmt.Errorf("open chain %d: %w", k, err))
						return
					}
				}
				pr.chains = append(pr.chains, ch)
				total += math.Pow(float64(k+1), -zipfS)
				pr.cum = append(pr.cum, total)
			}
		}()
	}
	wg.Wait()
	if firstEr != nil {
		return nil, firstEr
	}
	res := &phaseResult{openRate: float64(c) / time.Since(tOpen).Seconds()}

	var n atomic.Int64
	prog := harness.StartProgress(rc.env.Progress, fmt.Sprintf("atedb manychains (%d chains)", c), &n, 0, p.Duration())
	m := harness.StartMeter(rc.env)
	deadline := m.Start().Add(p.Duration())
	for i, pr := range prods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), uint64(i)))
			data := make([]byte, p.EventSize)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			var seq uint64
			for ctx.Err() == nil && time.Now().Before(deadline) {
				x := rng.Float64() * pr.cum[len(pr.cum)-1]
				ch := pr.chains[sort.SearchFloat64s(pr.cum, x)]
				seq++
				binary64(data, seq, uint64(i))
				t := time.Now()
				if _, err := ch.Append(ctx, proto.Event{Data: data}); err != nil {
					setErr(fmt.Errorf("append to %s: %w", ch.Key(), err))
					return
				}
				pr.hist.Record(time.Since(t))
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	m.Stop()
	prog.Stop()
	if firstEr != nil {
		return nil, firstEr
	}
	for _, pr := range prods {
		res.hist.Merge(&pr.hist)
	}
	res.events = n.Load()
	res.meter = m
	res.rate = float64(res.events) / m.Elapsed().Seconds()
	return res, nil
}

// binary64 writes seq and producer at the start of data, so that no two
// events are identical (the server deduplicates identical events).
func binary64(data []byte, seq, producer uint64) {
	for b := range 8 {
		data[b] = byte(seq >> (8 * b))
		data[8+b] = byte(producer >> (8 * b))
	}
}

// createChains creates n chains of one event each from workers
// connections in parallel.
func createChains(ctx context.Context, rc *runCtx, prefix string, n, workers int) error {
	d := newDriver(rc.url, 0, 1)
	var (
		next    atomic.Int64
		done    atomic.Int64
		wg      sync.WaitGroup
		errMu   sync.Mutex
		firstEr error
	)
	prog := harness.StartProgress(rc.env.Progress, "atedb manychains: creating chains", &done, int64(n), 0)
	defer prog.Stop()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := d.dial(ctx, fmt.Sprintf("%s-w/%d", prefix, w))
			if err != nil {
				errMu.Lock()
				firstEr = err
				errMu.Unlock()
				return
			}
			defer cl.Close()
			data := make([]byte, 64)
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				if k >= int64(n) {
					return
				}
				err := func() error {
					ch, err := cl.OpenChain(ctx, fmt.Sprintf("%s%s/c%d", keyPrefix, prefix, k))
					if err != nil {
						return err
					}
					defer ch.Close()
					binary64(data, uint64(k), 0)
					_, err = ch.Append(ctx, proto.Event{Data: data})
					return err
				}()
				if err != nil {
					errMu.Lock()
					if firstEr == nil {
						firstEr = fmt.Errorf("chain %d: %w", k, err)
					}
					errMu.Unlock()
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstEr != nil {
		return firstEr
	}
	return ctx.Err()
}

type openResult struct {
	hist          harness.Histogram
	opened        int
	bytesPerChain float64
	fdsPerChain   float64
}

// openOnDemand opens up to maxOpenMeasured random chains among the n on
// disk, one at a time, keeps them open and idle, and measures the server's
// memory and file descriptors per open chain.
func openOnDemand(ctx context.Context, rc *runCtx, prefix string, n int) (*openResult, error) {
	m := min(n, maxOpenMeasured)
	d := newDriver(rc.url, 0, 1)
	conns := make([]*client.Client, (m+channelsPerConn-2)/(channelsPerConn-1))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		c, err := d.dial(ctx, fmt.Sprintf("%s-open/%d", prefix, i))
		if err != nil {
			return nil, err
		}
		conns[i] = c
	}
	pid := rc.srv.proc.Pid()
	rss0, err := harness.ProcessRSS(pid)
	if err != nil {
		return nil, err
	}
	fd0 := countFDs(pid)
	res := &openResult{}
	order := rand.New(rand.NewPCG(7, 11)).Perm(n)[:m]
	for i, k := range order {
		if i > 0 && i%50 == 0 && rc.bf.maxRSS > 0 {
			if rss, err := harness.ProcessRSS(pid); err == nil && rss > rc.bf.maxRSS/10*7 {
				break // stay clear of the memory cap: measure with what is open
			}
		}
		c := conns[i/(channelsPerConn-1)]
		t := time.Now()
		if _, err := c.OpenChain(ctx, fmt.Sprintf("%s%s/c%d", keyPrefix, prefix, k)); err != nil {
			return nil, fmt.Errorf("open chain %d: %w", k, err)
		}
		res.hist.Record(time.Since(t))
		res.opened++
	}
	time.Sleep(100 * time.Millisecond) // let the server settle (background preallocation)
	rss1, err := harness.ProcessRSS(pid)
	if err != nil {
		return nil, err
	}
	res.bytesPerChain = float64(rss1-rss0) / float64(res.opened)
	if fd0 >= 0 {
		res.fdsPerChain = float64(countFDs(pid)-fd0) / float64(res.opened)
	}
	return res, nil
}

// countFDs returns the number of open file descriptors of pid, or -1.
func countFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atedb/atedb/bench/internal/harness"
)

// runHandshake measures complete encrypted connection setups per second:
// p.Producers dialers each connect (TCP, hello, ML-KEM key exchange, the
// opening of the URL's chain) and close, in a loop, for p.Duration or
// p.Count setups. Latency is one Dial.
func runHandshake(ctx context.Context, rc *runCtx) harness.Result {
	p := rc.it.p
	r := harness.Result{System: "atedb", Workload: "handshake", Params: p}
	if p.Producers < 1 || (p.Count <= 0 && p.DurationS <= 0) {
		r.Error = fmt.Sprintf("%v: handshake needs dialers and a count or a duration", harness.ErrBadParams)
		return r
	}
	d := newDriver(rc.url, p.WireEncryption, 1)
	key := harness.StreamName("handshake")
	// The first connection creates the chain; the timed ones reopen it.
	c, err := d.dial(ctx, key)
	if err != nil {
		r.Error = fmt.Sprintf("first dial: %v", err)
		return r
	}
	c.Close()

	var (
		n        atomic.Int64
		issued   atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		hists    = make([]harness.Histogram, p.Producers)
	)
	prog := harness.StartProgress(rc.env.Progress, "atedb handshake", &n, p.Count, p.Duration())
	m := harness.StartMeter(rc.env)
	deadline := m.Start().Add(p.Duration())
	for i := range p.Producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if p.DurationS > 0 && time.Now().After(deadline) {
					return
				}
				if p.Count > 0 && issued.Add(1) > p.Count {
					return
				}
				t := time.Now()
				c, err := d.dial(ctx, key)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				hists[i].Record(time.Since(t))
				c.Close()
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	m.Stop()
	prog.Stop()
	if firstErr != nil {
		r.Error = firstErr.Error()
		return r
	}
	var h harness.Histogram
	for i := range hists {
		h.Merge(&hists[i])
	}
	r.Events = n.Load()
	m.Fill(&r)
	r.Latency = h.Latency()
	if l := rc.env.Limits; l != nil && p.WireEncryption == 192 {
		r.AddLimit(harness.LimitKEM768, "kex/s", r.EventsPerSec, l.KEM768PerSec)
	}
	return r
}

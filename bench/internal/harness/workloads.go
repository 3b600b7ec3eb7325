package harness

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Env is what a workload needs besides its parameters.
type Env struct {
	System   string    // name printed in results: "atedb", "nats-always", ...
	Driver   Driver    // the system under test
	Limits   *Limits   // nil: results carry no ratios
	Server   *Process  // nil: server CPU is not reported (e.g. a server given by URL)
	Progress io.Writer // nil: no progress display
	// StallTimeout is how long a phase may go without progress before it
	// fails (0: 15 s).
	StallTimeout time.Duration
}

func (env *Env) stallTimeout() time.Duration {
	if env.StallTimeout > 0 {
		return env.StallTimeout
	}
	return defaultStallTimeout
}

// ErrBadParams reports workload parameters that cannot run.
var ErrBadParams = errors.New("harness: bad parameters")

// ErrStalled reports a phase that stopped making progress.
var ErrStalled = errors.New("harness: no progress")

// Event payload layout written by producers and checked by readers:
//
//	[0:8]   sequence number, little endian, unique within one run
//	[8:10]  producer index (warmupProducer for untimed warm-up events)
//	[10:]   deterministic filler
const (
	headerSize          = 10
	MinEventSize        = 16
	warmupProducer      = 0xFFFF
	defaultStallTimeout = 15 * time.Second
)

func putHeader(b []byte, seq int64, producer int) {
	binary.LittleEndian.PutUint64(b, uint64(seq))
	binary.LittleEndian.PutUint16(b[8:], uint16(producer))
}

func header(b []byte) (seq int64, producer int, ok bool) {
	if len(b) < headerSize {
		return 0, 0, false
	}
	return int64(binary.LittleEndian.Uint64(b)), int(binary.LittleEndian.Uint16(b[8:])), true
}

func newEvent(size, producer int) []byte {
	b := make([]byte, size)
	fill(b[headerSize:], uint64(producer)+7)
	return b
}

// StreamName returns a fresh stream (chain) name for one run of workload,
// so reruns against a long-running server never see old events.
func StreamName(workload string) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return workload + "-" + hex.EncodeToString(r[:])
}

func (p Params) check(needProducers bool) error {
	if p.EventSize < MinEventSize {
		return fmt.Errorf("%w: event size %d, need at least %d", ErrBadParams, p.EventSize, MinEventSize)
	}
	if needProducers && p.Producers < 1 {
		return fmt.Errorf("%w: producers %d, need at least 1", ErrBadParams, p.Producers)
	}
	if p.Producers > warmupProducer {
		return fmt.Errorf("%w: producers %d, at most %d", ErrBadParams, p.Producers, warmupProducer-1)
	}
	if p.Count <= 0 && p.DurationS <= 0 {
		return fmt.Errorf("%w: need a count or a duration", ErrBadParams)
	}
	if p.Window < 0 {
		return fmt.Errorf("%w: window %d", ErrBadParams, p.Window)
	}
	return nil
}

// Meter measures wall time and the CPU of both ends over one phase.
// Start it with [StartMeter], end it with Stop, then Fill a result.
type Meter struct {
	env         *Env
	t0          time.Time
	cpu0, srv0  time.Duration
	srvOK       bool
	elapsed     time.Duration
	cpu, srvCPU time.Duration
}

// StartMeter starts measuring now.
func StartMeter(env *Env) *Meter {
	m := &Meter{env: env}
	if env.Server != nil {
		var err error
		m.srv0, err = env.Server.CPU()
		m.srvOK = err == nil
	}
	m.cpu0 = SelfCPU()
	m.t0 = time.Now()
	return m
}

// Stop ends the measurement.
func (m *Meter) Stop() {
	m.elapsed = time.Since(m.t0)
	m.cpu = SelfCPU() - m.cpu0
	if m.srvOK {
		if c, err := m.env.Server.CPU(); err == nil {
			m.srvCPU = c - m.srv0
		} else {
			m.srvOK = false
		}
	}
}

// Start returns when the measurement started.
func (m *Meter) Start() time.Time { return m.t0 }

// Elapsed returns the measured wall time (after Stop).
func (m *Meter) Elapsed() time.Duration { return m.elapsed }

// Fill sets r.Seconds, the CPU figures and the rates from the measurement.
func (m *Meter) Fill(r *Result) {
	r.Seconds = math.Round(m.elapsed.Seconds()*1e6) / 1e6
	r.CPUClientS = round3(m.cpu.Seconds())
	if m.srvOK {
		v := round3(m.srvCPU.Seconds())
		r.CPUServerS = &v
	}
	r.SetRates()
}

// AddStandardLimits adds the ratios that fit a workload that moves
// r.Bytes of events (durable appends or deliveries).
func (env *Env) AddStandardLimits(r *Result, durable bool) {
	l := env.Limits
	if l == nil || r.Error != "" {
		return
	}
	if durable {
		r.AddLimit(LimitFsync4K, "ops/s", r.EventsPerSec, l.Fsync4KPerSec)
		r.AddLimit(LimitWrite1M, "GB/s", r.MBPerSec/1e3, l.Write1MGBps)
	} else {
		r.AddLimit(LimitLoopback, "GB/s", r.MBPerSec/1e3, l.LoopbackGBps)
	}
	if r.Params.WireEncryption > 0 {
		r.AddLimit(LimitAESGCM, "GB/s", r.MBPerSec/1e3, l.AESGCMGBps)
	}
}

// ticket hands out sequence numbers until the count or the deadline.
type ticket struct {
	issued   atomic.Int64
	count    int64
	deadline time.Time // zero: none; written before the start barrier
}

func (t *ticket) take() (int64, bool) {
	if !t.deadline.IsZero() && time.Now().After(t.deadline) {
		return 0, false
	}
	seq := t.issued.Add(1) - 1
	if t.count > 0 && seq >= t.count {
		return 0, false
	}
	return seq, true
}

// produceResult is the outcome of a producer phase.
type produceResult struct {
	done  int64
	hist  Histogram
	meter *Meter
}

// produce connects p.Producers producers to stream, lets each append warmup
// events untimed, then runs them together until p.Count events or
// p.Duration, whichever comes first. Window <= 1 uses Append (one event
// per round trip); a larger window keeps that many appends in flight.
func produce(ctx context.Context, env *Env, stream, label string, p Params, warmup int) (*produceResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prods := make([]Producer, p.Producers)
	defer func() {
		for _, pr := range prods {
			if pr != nil {
				pr.Close()
			}
		}
	}()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	// Connect and warm up in parallel.
	for i := range prods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr, err := env.Driver.Producer(ctx, stream)
			if err != nil {
				fail(fmt.Errorf("producer %d: connect: %w", i, err))
				return
			}
			prods[i] = pr
			ev := newEvent(p.EventSize, warmupProducer)
			for w := range warmup {
				// Unique warm-up events: servers deduplicate identical ones.
				putHeader(ev, int64(i*warmup+w), warmupProducer)
				if err := pr.Append(ctx, ev); err != nil {
					fail(fmt.Errorf("producer %d: warm-up append: %w", i, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}

	tk := &ticket{count: p.Count}
	var done atomic.Int64
	hists := make([]Histogram, p.Producers)
	start := make(chan struct{})
	for i, pr := range prods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := runProducer(ctx, pr, i, p, tk, &done, &hists[i]); err != nil {
				fail(fmt.Errorf("producer %d: %w", i, err))
			}
		}()
	}
	prog := StartProgress(env.Progress, label, &done, p.Count, p.Duration())
	defer prog.Stop()
	m := StartMeter(env)
	if p.DurationS > 0 {
		tk.deadline = m.t0.Add(p.Duration())
	}
	close(start)
	wg.Wait()
	m.Stop()
	prog.Stop()
	if firstErr != nil {
		return nil, firstErr
	}
	res := &produceResult{done: done.Load(), meter: m}
	for i := range hists {
		res.hist.Merge(&hists[i])
	}
	return res, nil
}

// runProducer is one producer's timed loop.
func runProducer(ctx context.Context, pr Producer, id int, p Params, tk *ticket, done *atomic.Int64, h *Histogram) error {
	if p.Window <= 1 {
		ev := newEvent(p.EventSize, id)
		for {
			seq, ok := tk.take()
			if !ok {
				return nil
			}
			putHeader(ev, seq, id)
			t := time.Now()
			if err := pr.Append(ctx, ev); err != nil {
				return fmt.Errorf("append: %w", err)
			}
			h.Record(time.Since(t))
			done.Add(1)
		}
	}
	return pipeline(ctx, pr, id, p.EventSize, p.Window, tk.take, func(_ int64, lat time.Duration) {
		h.Record(lat)
		done.Add(1)
	})
}

// pipeline keeps up to window appends in flight on pr, taking sequence
// numbers from next until it says stop. A second goroutine waits for the
// confirmations in order (they arrive in order) and calls confirmed with
// each one's latency, so latency is measured when the confirmation
// arrives, not when the sender next looks.
func pipeline(ctx context.Context, pr Producer, id, size, window int, next func() (int64, bool), confirmed func(seq int64, lat time.Duration)) error {
	type inflight struct {
		pend Pending
		seq  int64
		t    time.Time
		buf  []byte
	}
	free := make(chan []byte, window)
	for range window {
		free <- newEvent(size, id)
	}
	q := make(chan inflight, window)
	errc := make(chan error, 1)
	go func() {
		for f := range q {
			if err := f.pend.Wait(ctx); err != nil {
				errc <- fmt.Errorf("append %d: %w", f.seq, err)
				return
			}
			confirmed(f.seq, time.Since(f.t))
			free <- f.buf
		}
		errc <- nil
	}()
	for {
		seq, ok := next()
		if !ok {
			break
		}
		var buf []byte
		select {
		case buf = <-free:
		case err := <-errc:
			close(q)
			return err
		case <-ctx.Done():
			close(q)
			<-errc
			return ctx.Err()
		}
		putHeader(buf, seq, id)
		t := time.Now()
		pend, err := pr.AppendAsync(buf)
		if err != nil {
			close(q)
			<-errc
			return fmt.Errorf("append %d: %w", seq, err)
		}
		q <- inflight{pend: pend, seq: seq, t: t, buf: buf}
	}
	close(q)
	return <-errc
}

// Fill appends p.Count events of p.EventSize to stream from p.Producers
// producers with p.Window appends in flight each (untimed set-up for
// replay-like workloads), showing progress under label, and returns the
// number of events appended and the time it took.
func Fill(ctx context.Context, env *Env, stream, label string, p Params) (int64, time.Duration, error) {
	p.DurationS = 0
	p.Producers = max(p.Producers, 1)
	p.Window = max(p.Window, 1)
	if p.Count <= 0 {
		return 0, 0, fmt.Errorf("%w: fill needs a count", ErrBadParams)
	}
	if err := p.check(true); err != nil {
		return 0, 0, err
	}
	res, err := produce(ctx, env, stream, label, p, 0)
	if err != nil {
		return 0, 0, err
	}
	if res.done != p.Count {
		return res.done, res.meter.elapsed, fmt.Errorf("fill: %d of %d events appended", res.done, p.Count)
	}
	return res.done, res.meter.elapsed, nil
}

// RunProducers runs an append workload (sync1, closed64, pipelined64, ...)
// and returns its result; failures are reported in Result.Error.
func RunProducers(ctx context.Context, env *Env, workload string, p Params) Result {
	r := Result{System: env.System, Workload: workload, Params: p}
	if err := p.check(true); err != nil {
		r.Error = err.Error()
		return r
	}
	res, err := produce(ctx, env, StreamName(workload), env.System+" "+workload, p, 2)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Events = res.done
	r.Bytes = res.done * int64(p.EventSize)
	r.Latency = res.hist.Latency()
	res.meter.Fill(&r)
	env.AddStandardLimits(&r, true)
	if l := env.Limits; l != nil && r.Error == "" && p.Window <= 1 {
		// Closed loops: also bounded by the request/reply round trip.
		switch p.Producers {
		case 1:
			r.AddLimit(LimitRTT1K, "ops/s", r.EventsPerSec, l.RTT1KPerSec)
			if r.Latency != nil {
				r.SetExtra("p50_vs_fsync4k_p50", r.Latency.P50/l.Fsync4KP50US)
				r.SetExtra("p50_vs_fsync4k_plus_rtt1k_p50", r.Latency.P50/(l.Fsync4KP50US+l.RTT1KP50US))
			}
		case EchoConns:
			r.AddLimit(LimitEcho64, "ops/s", r.EventsPerSec, l.Echo64PerSec)
		}
	}
	return r
}

// watch waits until doneCh is closed, ctx ends, or the counter stops
// moving for stall.
func watch(ctx context.Context, stall time.Duration, what string, counter func() int64, want int64, doneCh <-chan struct{}) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	last, lastMove := counter(), time.Now()
	for {
		select {
		case <-doneCh:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case now := <-t.C:
			if n := counter(); n != last {
				last, lastMove = n, now
			} else if now.Sub(lastMove) > stall {
				return fmt.Errorf("%w: %s stalled at %d of %d for %v", ErrStalled, what, n, want, stall)
			}
		}
	}
}

// RunReplay fills a fresh stream with p.Count events (untimed, from
// p.Producers pipelined producers with p.Window each) and then times one
// subscriber reading all of them from the start. With a duration
// (p.DurationS > 0) the history is filled once and read again from the
// start, each pass on a new subscription, until the duration elapses; the
// pass running then stops there, and the figures cover every event read.
func RunReplay(ctx context.Context, env *Env, p Params) Result {
	r := Result{System: env.System, Workload: "replay", Params: p}
	if p.Count <= 0 {
		r.Error = fmt.Sprintf("%v: replay needs a count (the events of history to fill and read)", ErrBadParams)
		return r
	}
	stream := StreamName("replay")
	filled, fillTime, err := Fill(ctx, env, stream, env.System+" replay: filling", p)
	if err != nil {
		r.Error = fmt.Sprintf("fill: %v", err)
		return r
	}
	r.SetExtra("fill_events_per_s", float64(filled)/fillTime.Seconds())

	var (
		n          atomic.Int64 // events read, every pass
		got        int64        // events read in the current pass
		bytes      int64
		orderErrs  int64
		lastSeq    map[int]int64
		firstEvent time.Duration
		t0         time.Time
		doneCh     chan struct{}
	)
	// handle runs on the subscription's goroutine; the variables it
	// touches are reset between passes, after the previous Close returned.
	handle := func(data []byte) {
		c := n.Add(1)
		if c == 1 {
			firstEvent = time.Since(t0)
		}
		got++
		bytes += int64(len(data))
		seq, prod, ok := header(data)
		if !ok || len(data) != p.EventSize {
			orderErrs++
		} else if last, seen := lastSeq[prod]; seen && seq <= last {
			orderErrs++
		} else {
			lastSeq[prod] = seq
		}
		if got == p.Count {
			close(doneCh)
		}
	}
	dur := p.Duration()
	total := p.Count
	if dur > 0 {
		total = 0 // unknown: the progress line shows the time budget
	}
	prog := StartProgress(env.Progress, env.System+" replay", &n, total, dur)
	m := StartMeter(env)
	t0 = m.t0
	passes := 0
	for {
		got, lastSeq, doneCh = 0, make(map[int]int64), make(chan struct{})
		passes++
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if dur > 0 {
			wctx, cancel = context.WithDeadline(ctx, t0.Add(dur))
		}
		var sub Subscription
		sub, err = env.Driver.Subscribe(ctx, stream, handle)
		if err != nil {
			cancel()
			err = fmt.Errorf("subscribe (pass %d): %w", passes, err)
			break
		}
		err = watch(wctx, env.stallTimeout(), "replay", n.Load, p.Count, doneCh)
		timeUp := dur > 0 && err != nil && ctx.Err() == nil && wctx.Err() != nil
		cancel()
		if timeUp {
			err = nil
		}
		if cerr := sub.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close subscription: %w", cerr)
		}
		if err != nil || dur <= 0 || timeUp || time.Since(t0) >= dur {
			break
		}
	}
	m.Stop()
	prog.Stop()
	if err != nil {
		r.Error = err.Error()
		return r
	}
	// Every handler goroutine has stopped (Close returned): its fields are ours.
	r.Events = n.Load()
	r.Bytes = bytes
	m.Fill(&r)
	r.SetExtra("first_event_ms", float64(firstEvent)/1e6)
	if dur > 0 {
		r.SetExtra("passes", float64(passes))
	}
	if orderErrs > 0 {
		r.Error = fmt.Sprintf("%d events out of order, duplicated or malformed", orderErrs)
	}
	env.AddStandardLimits(&r, false)
	return r
}

// fanoutWarmup is the number of untimed events every subscriber must
// receive before the timed phase starts.
const fanoutWarmup = 10

// RunFanout runs one producer at p.Rate events/s (pipelined, p.Window in
// flight) for p.Count events or p.Duration into a stream with
// p.Subscribers live subscribers, each on its own connection. Its latency
// is the delivery time after the producer saw the confirmation; the
// end-to-end latency (after the send) is in Extra.
func RunFanout(ctx context.Context, env *Env, p Params) Result {
	r := Result{System: env.System, Workload: "fanout", Params: p}
	if err := p.check(false); err != nil {
		r.Error = err.Error()
		return r
	}
	if p.Rate <= 0 || p.Subscribers < 1 {
		r.Error = fmt.Sprintf("%v: fanout needs a rate and subscribers (rate %d, subscribers %d)", ErrBadParams, p.Rate, p.Subscribers)
		return r
	}
	total := p.Count
	if p.DurationS > 0 {
		byTime := int64(p.DurationS * float64(p.Rate))
		if total <= 0 || byTime < total {
			total = byTime
		}
	}
	const maxFanoutEvents = 50_000_000
	if total < 1 || total > maxFanoutEvents {
		r.Error = fmt.Sprintf("%v: fanout of %d events (1..%d)", ErrBadParams, total, maxFanoutEvents)
		return r
	}
	stream := StreamName("fanout")
	base := time.Now()
	sendNs := make([]atomic.Int64, total)
	confNs := make([]atomic.Int64, total)

	type subState struct {
		warm, got      atomic.Int64
		last           int64
		early, badSeq  int64
		afterConf, e2e Histogram
	}
	subs := make([]*subState, p.Subscribers)
	var delivered atomic.Int64
	handles := make([]Subscription, 0, p.Subscribers)
	defer func() {
		for _, s := range handles {
			s.Close()
		}
	}()
	for i := range subs {
		s := &subState{last: -1}
		subs[i] = s
		sub, err := env.Driver.Subscribe(ctx, stream, func(data []byte) {
			now := int64(time.Since(base))
			seq, prod, ok := header(data)
			switch {
			case !ok:
				s.badSeq++
			case prod == warmupProducer:
				s.warm.Add(1)
			case seq < 0 || seq >= total || seq <= s.last:
				s.badSeq++
			default:
				s.last = seq
				if c := confNs[seq].Load(); c == 0 {
					s.early++
					s.afterConf.Record(0)
				} else {
					s.afterConf.Record(time.Duration(now - c))
				}
				s.e2e.Record(time.Duration(now - sendNs[seq].Load()))
				s.got.Add(1)
				delivered.Add(1)
			}
		})
		if err != nil {
			r.Error = fmt.Sprintf("subscriber %d: %v", i, err)
			return r
		}
		handles = append(handles, sub)
	}
	pr, err := env.Driver.Producer(ctx, stream)
	if err != nil {
		r.Error = fmt.Sprintf("producer: %v", err)
		return r
	}
	defer pr.Close()
	ev := newEvent(p.EventSize, warmupProducer)
	for w := range fanoutWarmup {
		putHeader(ev, int64(w), warmupProducer)
		if err := pr.Append(ctx, ev); err != nil {
			r.Error = fmt.Sprintf("warm-up append: %v", err)
			return r
		}
	}
	warmDone := make(chan struct{})
	go func() {
		for {
			all := true
			for _, s := range subs {
				if s.warm.Load() < fanoutWarmup {
					all = false
				}
			}
			if all {
				close(warmDone)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	warmCount := func() int64 {
		var n int64
		for _, s := range subs {
			n += s.warm.Load()
		}
		return n
	}
	if err := watch(ctx, env.stallTimeout(), "fanout warm-up", warmCount, fanoutWarmup*int64(len(subs)), warmDone); err != nil {
		r.Error = fmt.Sprintf("subscribers did not receive the warm-up events: %v", err)
		return r
	}

	want := total * int64(p.Subscribers)
	allDelivered := make(chan struct{})
	go func() {
		for delivered.Load() < want {
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
		close(allDelivered)
	}()
	prog := StartProgress(env.Progress, env.System+" fanout (delivered)", &delivered, want, 0)
	m := StartMeter(env)
	interval := time.Second / time.Duration(p.Rate)
	var sent int64
	next := func() (int64, bool) {
		if sent >= total {
			return 0, false
		}
		if d := time.Until(m.t0.Add(time.Duration(sent) * interval)); d > 0 {
			time.Sleep(d)
		}
		seq := sent
		sent++
		sendNs[seq].Store(int64(time.Since(base)))
		return seq, true
	}
	var confirmed atomic.Int64
	var appendHist Histogram
	perr := pipeline(ctx, pr, 0, p.EventSize, max(p.Window, 1), next, func(seq int64, lat time.Duration) {
		confNs[seq].Store(int64(time.Since(base)))
		appendHist.Record(lat)
		confirmed.Add(1)
	})
	sendTime := time.Since(m.t0)
	if perr != nil {
		prog.Stop()
		r.Error = fmt.Sprintf("producer: %v", perr)
		return r
	}
	werr := watch(ctx, env.stallTimeout(), "fanout delivery", delivered.Load, want, allDelivered)
	m.Stop()
	prog.Stop()
	for _, s := range handles {
		if err := s.Close(); err != nil && werr == nil {
			werr = fmt.Errorf("close subscription: %w", err)
		}
	}
	handles = nil
	// Handlers have stopped: their state is ours.
	var afterConf, e2e Histogram
	var early, bad int64
	for _, s := range subs {
		afterConf.Merge(&s.afterConf)
		e2e.Merge(&s.e2e)
		early += s.early
		bad += s.badSeq
	}
	r.Events = delivered.Load()
	r.Bytes = r.Events * int64(p.EventSize)
	m.Fill(&r)
	r.Latency = afterConf.Latency()
	if l := e2e.Latency(); l != nil {
		r.SetExtra("e2e_p50_us", l.P50)
		r.SetExtra("e2e_p99_us", l.P99)
	}
	if l := appendHist.Latency(); l != nil {
		r.SetExtra("append_p50_us", l.P50)
		r.SetExtra("append_p99_us", l.P99)
	}
	r.SetExtra("offered_rate", float64(p.Rate))
	r.SetExtra("produced_per_s", float64(confirmed.Load())/sendTime.Seconds())
	r.SetExtra("delivered_before_confirm", float64(early))
	if produced := float64(confirmed.Load()) / sendTime.Seconds(); produced < 0.95*float64(p.Rate) {
		r.Note = fmt.Sprintf("the producer reached only %.0f of the %d events/s offered", produced, p.Rate)
	}
	switch {
	case werr != nil:
		r.Error = werr.Error()
	case bad > 0:
		r.Error = fmt.Sprintf("%d events delivered out of order, twice or malformed", bad)
	}
	env.AddStandardLimits(&r, false)
	return r
}

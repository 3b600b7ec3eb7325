package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/atedb/atedb/bench/internal/harness"
)

const usage = `bench: end-to-end throughput and latency of atedb, beside the machine's limits.

Usage:
  go run ./bench <workload>... [flags]
  go run ./bench all [flags]          every workload, plain and with -wire-encryption 128
  go run ./bench limits [flags]       only the machine limits
  go run ./bench compare FILE...      medians and atedb/peer ratios of JSON result files

Workloads:
  sync1        1 producer, one event per append, waits for each confirmation
  closed64     64 producers, one event per append, each waits for its confirmation
  pipelined64  64 producers, 256 appends in flight each
  replay       read 1,000,000 events of history from offset 0 (with -duration: again and again)
  fanout       1 producer at 10,000 events/s, 16 live subscribers
  handshake    encrypted connection setups per second (default -wire-encryption 192: ML-KEM-768)
  manychains   appends spread over 10,000 chains (Zipf), then opens among 100,000 chains on disk
  reopen       time to reopen a 1 GiB chain, and to recover it after kill -9

Each workload starts a fresh 'atedb solo' (built from ./cmd/atedb into a
temporary directory) on 127.0.0.1 with its data under -dir, unless -url
names a running server. Results: one JSON line each as they finish, then a
table. Every figure is also given as a ratio to the machine limit it is
bounded by, measured in the same run on the same file system.

Flags:
`

// atedbDefaults are the full-size parameters of the atedb-only workloads.
var atedbDefaults = map[string]harness.Params{
	"handshake":  {EventSize: 1024, Producers: 8, DurationS: 10, WireEncryption: 192},
	"manychains": {EventSize: 1024, Producers: 64, Window: 1, Chains: 10_000, DurationS: 10},
	"reopen":     {EventSize: 1024, Producers: 8, Window: 256, Count: 1 << 20},
}

var genericNames = []string{harness.Sync1, harness.Closed64, harness.Pipelined64, harness.Replay, harness.Fanout}

// item is one workload run.
type item struct {
	name string
	p    harness.Params
}

// benchFlags are the flags only the atedb side has.
type benchFlags struct {
	atedbBin  string
	serverArg multiFlag
	onDisk    int
	pprofDir  string
	clientCPU string
	trace     string
	maxRSS    int64
	except    string
	chains    int
	nofile    uint64
}

type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "compare" {
		if err := runCompare(args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	var o harness.Options
	var bf benchFlags
	fs := harness.NewFlagSet("bench", &o, "always",
		"atedb --sync mode: always (acknowledge after fdatasync) or interval (acknowledge after write, fsync on a timer)")
	fs.StringVar(&bf.atedbBin, "atedb", "", "atedb binary to run (default: go build ./cmd/atedb)")
	fs.Var(&bf.serverArg, "server-arg", "extra argument for `atedb solo` (repeatable), e.g. -server-arg=--cpuprofile=/tmp/cpu.out")
	fs.StringVar(&bf.pprofDir, "pprof", "", "save the server's CPU, heap, allocation, block and mutex profiles of each workload in this directory (builds atedb with a profiling hook through go build -overlay; the source tree is untouched)")
	fs.IntVar(&bf.chains, "chains", 0, "manychains: active chains of the largest phase (default 10000; smoke 500)")
	fs.Uint64Var(&bf.nofile, "nofile", 0, "raise the open-file limit of the servers to this (soft and hard; needs privilege); 0 keeps the system's")
	fs.StringVar(&bf.except, "except", "", "comma-separated workloads that all leaves out, e.g. -except manychains")
	var maxRSSMiB int64
	fs.Int64Var(&maxRSSMiB, "max-server-rss", defaultMaxRSS()>>20, "kill the server (and fail the workload) when its resident memory exceeds this many MiB; 0: no cap")
	fs.StringVar(&bf.clientCPU, "cpuprofile", "", "write a CPU profile of this process (the client side) to this file")
	fs.StringVar(&bf.trace, "trace", "", "write an execution trace of this process (the client side) to this file (go tool trace; -server-arg=--trace=FILE for the server's)")
	fs.IntVar(&bf.onDisk, "on-disk-chains", 0, "manychains: chains created on disk for the open-on-demand phase (default 100000; smoke 2000)")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, usage)
		fs.PrintDefaults()
	}
	names, err := o.Parse(fs, args)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, err)
			fs.Usage()
		}
		return 2
	}
	if maxRSSMiB < 0 {
		fmt.Fprintf(os.Stderr, "-max-server-rss %d out of range\n", maxRSSMiB)
		return 2
	}
	bf.maxRSS = maxRSSMiB << 20
	if o.Sync != "always" && o.Sync != "interval" {
		fmt.Fprintf(os.Stderr, "-sync %q: want always or interval\n", o.Sync)
		return 2
	}
	items, err := plan(&o, &bf, names)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if bf.nofile > 0 {
		if err := raiseNoFile(bf.nofile); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, prof := range []struct {
		path  string
		start func(io.Writer) error
		stop  func()
	}{
		{bf.clientCPU, pprof.StartCPUProfile, pprof.StopCPUProfile},
		{bf.trace, trace.Start, trace.Stop},
	} {
		if prof.path == "" {
			continue
		}
		f, err := os.Create(prof.path)
		if err == nil {
			err = prof.start(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() {
			prof.stop()
			f.Close()
		}()
	}
	out, err := harness.NewOutput(os.Stdout, o.JSONPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := execute(ctx, &o, &bf, items, names, out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		out.Close()
		return 1
	}
	return out.Finish(ctx)
}

// plan expands the workload names into runs with their parameters.
func plan(o *harness.Options, bf *benchFlags, names []string) ([]item, error) {
	var items []item
	add := func(name string, enc int, fromAll bool) error {
		d, ok := harness.Defaults[name]
		if !ok {
			d, ok = atedbDefaults[name]
		}
		if !ok {
			return fmt.Errorf("unknown workload %q; run with -h for the list", name)
		}
		p := o.Apply(name, d)
		if fromAll {
			p.WireEncryption = enc
			if name == "handshake" {
				p.WireEncryption = d.WireEncryption
			}
		}
		if o.Smoke {
			p = smokeSize(name, p)
		}
		if name == "manychains" && bf.chains > 0 {
			p.Chains = bf.chains
		}
		if name == "handshake" && p.WireEncryption == 0 {
			return fmt.Errorf("handshake measures encrypted connection setups: -wire-encryption must be 128, 192 or 256")
		}
		items = append(items, item{name, p})
		return nil
	}
	skip := make(map[string]bool)
	for _, n := range strings.Split(bf.except, ",") {
		if n = strings.TrimSpace(n); n != "" {
			if _, ok := harness.Defaults[n]; !ok {
				if _, ok := atedbDefaults[n]; !ok {
					return nil, fmt.Errorf("-except: unknown workload %q", n)
				}
			}
			skip[n] = true
		}
	}
	for _, n := range names {
		switch n {
		case "limits":
			if len(names) > 1 {
				return nil, fmt.Errorf("limits runs alone")
			}
			if o.LimitTime <= 0 {
				return nil, fmt.Errorf("limits with -limits 0 has nothing to measure")
			}
			return nil, nil
		case "all":
			if o.IsSet("wire-encryption") {
				return nil, fmt.Errorf("all runs every workload plain and with -wire-encryption 128; name the workloads to choose another size")
			}
			var all []item
			for _, enc := range []int{0, 128} {
				for _, g := range genericNames {
					all = append(all, item{g, harness.Params{WireEncryption: enc}})
				}
			}
			for _, g := range []string{"handshake", "manychains", "reopen"} {
				all = append(all, item{name: g})
			}
			for _, a := range all {
				if skip[a.name] {
					continue
				}
				if err := add(a.name, a.p.WireEncryption, true); err != nil {
					return nil, err
				}
			}
		default:
			if err := add(n, o.WireEncryption, false); err != nil {
				return nil, err
			}
		}
	}
	if bf.pprofDir != "" && (o.URL != "" || bf.atedbBin != "") {
		return nil, fmt.Errorf("-pprof builds its own atedb: it cannot be combined with -url or -atedb")
	}
	if len(skip) > 0 && !slices.Contains(names, "all") {
		return nil, fmt.Errorf("-except applies to all only")
	}
	if bf.onDisk < 0 {
		return nil, fmt.Errorf("-on-disk-chains %d out of range", bf.onDisk)
	}
	if bf.chains < 0 || bf.chains > 1_000_000 {
		return nil, fmt.Errorf("-chains %d out of range", bf.chains)
	}
	for _, f := range []struct {
		set  bool
		name string
	}{{bf.chains > 0, "-chains"}, {bf.onDisk > 0, "-on-disk-chains"}} {
		if f.set && !slices.ContainsFunc(items, func(it item) bool { return it.name == "manychains" }) {
			return nil, fmt.Errorf("%s applies to manychains only", f.name)
		}
	}
	if o.URL != "" {
		for _, it := range items {
			if it.name == "reopen" {
				return nil, fmt.Errorf("reopen restarts and kills its server: it cannot use -url")
			}
		}
	}
	return items, nil
}

// smokeSize shrinks the atedb-only workloads for a smoke run (the generic
// ones are shrunk by Options.Apply).
func smokeSize(name string, p harness.Params) harness.Params {
	switch name {
	case "manychains":
		p.Chains = min(p.Chains, 500)
	case "reopen":
		p.Count = min(p.Count, 20_000)
	}
	return p
}

// execute measures the limits (unless -limits 0) and runs every item
// against a fresh server.
func execute(ctx context.Context, o *harness.Options, bf *benchFlags, items []item, names []string, out *harness.Output) error {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return fmt.Errorf("-dir: %w", err)
	}
	work, err := os.MkdirTemp(o.Dir, "atedb-bench-*")
	if err != nil {
		return fmt.Errorf("-dir: %w", err)
	}
	if o.Keep {
		fmt.Fprintf(os.Stderr, "data and server logs kept in %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	var lim *harness.Limits
	if o.LimitTime > 0 {
		lim, err = harness.MeasureLimits(ctx, work, o.LimitTime)
		if err != nil {
			return err
		}
		harness.WriteLimits(os.Stdout, lim)
		if err := out.Emit(harness.LimitsResult("atedb", lim)); err != nil {
			return err
		}
	}
	if len(items) == 0 {
		return nil
	}
	bin := bf.atedbBin
	if bin == "" && o.URL == "" {
		t0 := time.Now()
		if bin, err = buildAtedb(ctx, work, bf.pprofDir != ""); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "built atedb in %.1fs\n", time.Since(t0).Seconds())
	}
	for i, it := range items {
		if ctx.Err() != nil {
			break
		}
		r := runItem(ctx, o, bf, lim, bin, filepath.Join(work, fmt.Sprintf("%02d-%s", i, it.name)), it)
		if err := out.Emit(r); err != nil {
			return err
		}
	}
	return nil
}

// runItem runs one workload against its own fresh server (or -url).
func runItem(ctx context.Context, o *harness.Options, bf *benchFlags, lim *harness.Limits, bin, dir string, it item) harness.Result {
	env := &harness.Env{System: "atedb", Limits: lim, Progress: harness.ProgressWriter(o.Progress)}
	fail := func(err error) harness.Result {
		return harness.Result{System: "atedb", Workload: it.name, Params: it.p, Error: err.Error()}
	}
	rc := &runCtx{o: o, bf: bf, env: env, it: it}
	if o.URL != "" {
		env.Driver = newDriver(o.URL, it.p.WireEncryption, it.p.Window)
		rc.url = o.URL
		return rc.run(ctx)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	cfg := serverConfig{
		bin:            bin,
		dataDir:        filepath.Join(dir, "data"),
		logPath:        filepath.Join(dir, "server.log"),
		sync:           it.p.Sync,
		wireEncryption: it.p.WireEncryption,
		extra:          bf.serverArg,
		pprof:          bf.pprofDir != "",
	}
	srv, err := startServer(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rc.cancel, rc.done = cancel, ctx.Done()
	rc.setServer(srv)
	env.Driver = newDriver(rc.url, it.p.WireEncryption, it.p.Window)
	profDone := rc.startProfiles(ctx, filepath.Base(dir))
	r := rc.run(ctx)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		r.Error = cause.Error()
	} else if err := rc.srv.proc.Alive(); err != nil && !rc.srv.stopped.Load() {
		r.Error = fmt.Sprintf("server died during the run: %v (%s)", err, r.Error)
	}
	if err := profDone(); err != nil && r.Error == "" {
		r.Note = strings.TrimPrefix(r.Note+"; profiles: "+err.Error(), "; ")
	}
	// reopen may have replaced the server.
	if err := rc.srv.stop(); err != nil && r.Error == "" {
		r.Error = fmt.Sprintf("server stop: %v", err)
	}
	if o.Keep {
		r.Note = "data in " + dir
	}
	return r
}

// runCtx is what an atedb workload needs: the options, the server (nil
// with -url) and the environment of the generic workloads.
type runCtx struct {
	o   *harness.Options
	bf  *benchFlags
	env *harness.Env
	it  item
	srv *atedbServer
	url string // tcp://host:port of the server
	// cancel ends the run when its server dies unasked; done is closed
	// when the run ends.
	cancel context.CancelCauseFunc
	done   <-chan struct{}
}

func (rc *runCtx) run(ctx context.Context) harness.Result {
	if r, ok := harness.RunGeneric(ctx, rc.env, rc.it.name, rc.it.p); ok {
		return r
	}
	switch rc.it.name {
	case "handshake":
		return runHandshake(ctx, rc)
	case "manychains":
		return runManyChains(ctx, rc)
	case "reopen":
		return runReopen(ctx, rc)
	}
	return harness.Result{System: "atedb", Workload: rc.it.name, Params: rc.it.p, Error: "unknown workload"}
}

// runCompare prints the comparison of the JSON result files.
func runCompare(paths []string) error {
	if len(paths) == 0 {
		return fmt.Errorf("compare: name at least one JSON result file")
	}
	var all []harness.Result
	for _, p := range paths {
		rs, err := harness.ReadResultsFile(p)
		if err != nil {
			return err
		}
		all = append(all, rs...)
	}
	return writeComparison(os.Stdout, all)
}

// startProfiles starts a CPU profile of the server for the workload's
// duration (10 s for count-bound workloads) when -pprof is set; the
// returned function waits for it and saves the heap, allocation, block
// and mutex profiles. Workloads that replace their server are profiled on
// the first one only (CPU) and on the last one (the others): they are
// fetched before the last server stops.
func (rc *runCtx) startProfiles(ctx context.Context, name string) func() error {
	if rc.bf.pprofDir == "" {
		return func() error { return nil }
	}
	if err := os.MkdirAll(rc.bf.pprofDir, 0o755); err != nil {
		return func() error { return err }
	}
	srv := rc.srv
	secs := int(rc.it.p.DurationS)
	if secs <= 0 {
		secs = 10
	}
	base := filepath.Join(rc.bf.pprofDir, name)
	cpuErr := make(chan error, 1)
	go func() {
		cpuErr <- srv.fetchProfile(ctx, "profile", fmt.Sprintf("seconds=%d", secs), base+"-cpu.pb.gz")
	}()
	return func() error {
		err := <-cpuErr
		// The other profiles come from the server running now (reopen and
		// manychains replace theirs).
		for _, p := range []string{"heap", "allocs", "block", "mutex"} {
			if perr := rc.srv.fetchProfile(ctx, p, "", base+"-"+p+".pb.gz"); perr != nil && err == nil {
				err = perr
			}
		}
		return err
	}
}

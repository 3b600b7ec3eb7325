package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/atedb/atedb/bench/internal/harness"
)

const usage = `natsbench: the atedb benchmark workloads against NATS JetStream.

Usage:
  go run . <workload>... [flags]     workloads: sync1 closed64 pipelined64 replay fanout, or all
  go run . serve -store DIR -port P -sync always|default

Each run starts an embedded nats-server (JetStream, file storage) as a
child process on a temporary directory, unless -url names a running one.

Flags:
`

var generic = []string{harness.Sync1, harness.Closed64, harness.Pipelined64, harness.Replay, harness.Fanout}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := serve(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var o harness.Options
	fs := harness.NewFlagSet("natsbench", &o, "always",
		"JetStream sync_interval: always (fsync before every acknowledgement: durable like atedb) or default (fsync every 2 minutes)")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, usage)
		fs.PrintDefaults()
	}
	names, err := o.Parse(fs, args)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, err)
		}
		return 2
	}
	if o.Sync != "always" && o.Sync != "default" {
		fmt.Fprintf(os.Stderr, "-sync %q: want always or default\n", o.Sync)
		return 2
	}
	if o.WireEncryption != 0 {
		fmt.Fprintln(os.Stderr, "-wire-encryption: the NATS peer runs without TLS; there is no encrypted NATS variant")
		return 2
	}
	var todo []string
	for _, n := range names {
		if n == "all" {
			todo = append(todo, generic...)
			continue
		}
		if _, ok := harness.Defaults[n]; !ok {
			fmt.Fprintf(os.Stderr, "unknown workload %q (NATS runs: %v, all)\n", n, generic)
			return 2
		}
		todo = append(todo, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	out, err := harness.NewOutput(os.Stdout, o.JSONPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	system := "nats-" + o.Sync
	var lim *harness.Limits
	if o.LimitTime > 0 {
		lim, err = harness.MeasureLimits(ctx, o.Dir, o.LimitTime)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		harness.WriteLimits(os.Stdout, lim)
		if err := out.Emit(harness.LimitsResult(system, lim)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	for _, name := range todo {
		if ctx.Err() != nil {
			break
		}
		p := o.Apply(name, harness.Defaults[name])
		r := runOne(ctx, &o, system, lim, name, p)
		if err := out.Emit(r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return out.Finish(ctx)
}

// runOne starts a fresh server (unless -url) and runs one workload.
func runOne(ctx context.Context, o *harness.Options, system string, lim *harness.Limits, name string, p harness.Params) harness.Result {
	env := &harness.Env{System: system, Limits: lim, Progress: harness.ProgressWriter(o.Progress)}
	fail := func(err error) harness.Result {
		return harness.Result{System: system, Workload: name, Params: p, Error: err.Error()}
	}
	if o.URL != "" {
		env.Driver = newDriver(o.URL)
		r, _ := harness.RunGeneric(ctx, env, name, p)
		return r
	}
	dir, err := os.MkdirTemp(o.Dir, "natsbench-"+name+"-*")
	if err != nil {
		return fail(err)
	}
	if !o.Keep {
		defer os.RemoveAll(dir)
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	port, err := harness.FreePort()
	if err != nil {
		return fail(err)
	}
	proc, err := harness.StartProcess("nats-server", exe,
		[]string{"serve", "-store", filepath.Join(dir, "jetstream"), "-port", fmt.Sprint(port), "-sync", o.Sync},
		filepath.Join(dir, "server.log"), nil)
	if err != nil {
		return fail(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = proc.WaitListening(wctx, fmt.Sprintf("127.0.0.1:%d", port))
	cancel()
	if err != nil {
		proc.Kill()
		return fail(err)
	}
	env.Server = proc
	env.Driver = newDriver(fmt.Sprintf("nats://127.0.0.1:%d", port))
	r, _ := harness.RunGeneric(ctx, env, name, p)
	if err := proc.Stop(10 * time.Second); err != nil && r.Error == "" {
		r.Error = fmt.Sprintf("server stop: %v", err)
	}
	if o.Keep {
		r.Note = "data kept in " + dir
	}
	return r
}

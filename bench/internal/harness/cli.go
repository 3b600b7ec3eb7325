package harness

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Generic workload names, run by both atedb and its peers.
const (
	Sync1       = "sync1"
	Closed64    = "closed64"
	Pipelined64 = "pipelined64"
	Replay      = "replay"
	Fanout      = "fanout"
)

// Defaults are the full-size parameters of each generic workload, as the
// issue defines them (1 KiB events).
var Defaults = map[string]Params{
	Sync1:       {EventSize: 1024, Producers: 1, Window: 1, DurationS: 10},
	Closed64:    {EventSize: 1024, Producers: 64, Window: 1, DurationS: 10},
	Pipelined64: {EventSize: 1024, Producers: 64, Window: 256, DurationS: 10},
	Replay:      {EventSize: 1024, Producers: 8, Window: 256, Count: 1_000_000},
	Fanout:      {EventSize: 1024, Producers: 1, Window: 4096, Subscribers: 16, Rate: 10_000, DurationS: 10},
}

// Smoke shrinks p to a run of about a second (used by bench/smoke.sh).
func Smoke(workload string, p Params) Params {
	if p.DurationS > 1 {
		p.DurationS = 1
	}
	if workload == Replay && p.Count > 20_000 {
		p.Count = 20_000
	}
	return p
}

// ErrUsage reports a bad command line.
var ErrUsage = errors.New("usage")

// Options are the command-line settings shared by bench and its peers.
// Workload parameters given on the command line override the defaults of
// every workload they apply to.
type Options struct {
	Size           int
	Producers      int
	Window         int
	Subscribers    int
	Rate           int
	Count          int64
	Duration       time.Duration
	Sync           string
	WireEncryption int
	URL            string
	Dir            string
	JSONPath       string
	Progress       string
	LimitTime      time.Duration
	Smoke          bool
	Keep           bool

	set map[string]bool
}

// NewFlagSet returns a flag set bound to o. syncHelp documents the sync
// modes of the system (atedb and NATS name them differently).
func NewFlagSet(name string, o *Options, syncDefault, syncHelp string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.IntVar(&o.Size, "size", 0, "event size in bytes (default 1024)")
	fs.IntVar(&o.Producers, "producers", 0, "producers, each on its own connection (default: the workload's)")
	fs.IntVar(&o.Window, "window", 0, "appends in flight per producer; 1 = wait for each confirmation (default: the workload's)")
	fs.IntVar(&o.Subscribers, "subscribers", 0, "live subscribers for fanout (default 16)")
	fs.IntVar(&o.Rate, "rate", 0, "events/s offered by the fanout producer (default 10000)")
	fs.Int64Var(&o.Count, "count", 0, "events to append (replay: the history to fill and read; default: the workload's)")
	fs.DurationVar(&o.Duration, "duration", 0, "how long to append (default: the workload's, 10s); replay: how long to read, the history (-count, default 1,000,000 events) filled once and read from offset 0 again after each full pass")
	fs.StringVar(&o.Sync, "sync", syncDefault, syncHelp)
	fs.IntVar(&o.WireEncryption, "wire-encryption", 0, "wire encryption key size: 0 (none), 128, 192 or 256")
	fs.StringVar(&o.URL, "url", "", "use the running server at this URL instead of starting one (server CPU is then not reported)")
	fs.StringVar(&o.Dir, "dir", os.TempDir(), "parent directory of the data directories and of the disk-limit scratch files")
	fs.StringVar(&o.JSONPath, "json", "", "also append every JSON result line to this file")
	fs.StringVar(&o.Progress, "progress", "auto", "progress line on stderr: auto (when stderr is a terminal), on, off")
	fs.DurationVar(&o.LimitTime, "limits", time.Second, "time spent measuring each machine limit; 0 skips the limits and the ratios")
	fs.BoolVar(&o.Smoke, "smoke", false, "smoke-size runs (about a second each), for CI")
	fs.BoolVar(&o.Keep, "keep", false, "keep the data directories and server logs")
	return fs
}

// Parse parses args (flags after the workload names, or mixed) and
// returns the workload names. It checks the generic values; the caller
// checks Sync and WireEncryption against what its system supports.
func (o *Options) Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var names []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		args = fs.Args()
		for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			names = append(names, args[0])
			args = args[1:]
		}
	}
	o.set = make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: name at least one workload", ErrUsage)
	}
	checks := []struct {
		flag string
		bad  bool
	}{
		{"size", o.Size < MinEventSize || o.Size > 64<<20},
		{"producers", o.Producers < 1 || o.Producers > 10_000},
		{"window", o.Window < 1 || o.Window > 1<<20},
		{"subscribers", o.Subscribers < 1 || o.Subscribers > 10_000},
		{"rate", o.Rate < 1},
		{"count", o.Count < 1},
		{"duration", o.Duration <= 0},
		{"wire-encryption", o.WireEncryption != 0 && o.WireEncryption != 128 && o.WireEncryption != 192 && o.WireEncryption != 256},
		{"limits", o.LimitTime < 0},
	}
	for _, c := range checks {
		if o.set[c.flag] && c.bad {
			f := fs.Lookup(c.flag)
			return nil, fmt.Errorf("%w: -%s %s out of range", ErrUsage, c.flag, f.Value)
		}
	}
	switch o.Progress {
	case "auto", "on", "off":
	default:
		return nil, fmt.Errorf("%w: -progress %q: want auto, on or off", ErrUsage, o.Progress)
	}
	return names, nil
}

// IsSet reports whether flag name was given on the command line.
func (o *Options) IsSet(name string) bool { return o.set[name] }

// Apply returns p with the command-line overrides and the smoke size applied.
func (o *Options) Apply(workload string, p Params) Params {
	if o.Smoke {
		p = Smoke(workload, p)
	}
	if o.set["size"] {
		p.EventSize = o.Size
	}
	if o.set["producers"] {
		p.Producers = o.Producers
	}
	if o.set["window"] {
		p.Window = o.Window
	}
	if o.set["subscribers"] {
		p.Subscribers = o.Subscribers
	}
	if o.set["rate"] {
		p.Rate = o.Rate
	}
	if o.set["count"] {
		p.Count = o.Count
		if !o.set["duration"] {
			p.DurationS = 0
		}
	}
	if o.set["duration"] {
		p.DurationS = o.Duration.Seconds()
		if !o.set["count"] && workload != Replay {
			// replay keeps its count: the size of the history it reads
			// again and again for the duration.
			p.Count = 0
		}
	}
	p.Sync = o.Sync
	if o.set["wire-encryption"] {
		p.WireEncryption = o.WireEncryption
	}
	return p
}

// Output prints results as they come (one JSON line each, on stdout and
// in the optional JSON file) and the table at the end.
type Output struct {
	w       io.Writer
	jf      *os.File
	results []Result
}

// NewOutput writes to w and, if jsonPath is not empty, appends the JSON
// lines to that file.
func NewOutput(w io.Writer, jsonPath string) (*Output, error) {
	o := &Output{w: w}
	if jsonPath != "" {
		f, err := os.OpenFile(jsonPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open -json file: %w", err)
		}
		o.jf = f
	}
	return o, nil
}

// Emit prints r as a JSON line and keeps it for the table.
func (o *Output) Emit(r Result) error {
	o.results = append(o.results, r)
	if err := r.WriteJSON(o.w); err != nil {
		return err
	}
	if o.jf != nil {
		return r.WriteJSON(o.jf)
	}
	return nil
}

// Failed returns the number of results that carry an error.
func (o *Output) Failed() int {
	n := 0
	for _, r := range o.results {
		if r.Error != "" {
			n++
		}
	}
	return n
}

// Close prints the table and closes the JSON file.
func (o *Output) Close() error {
	var err error
	if len(o.results) > 0 {
		fmt.Fprintln(o.w)
		err = WriteTable(o.w, o.results)
	}
	if o.jf != nil {
		if cerr := o.jf.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// RunGeneric runs one of the generic workloads; ok is false if workload
// is not one of them.
func RunGeneric(ctx context.Context, env *Env, workload string, p Params) (r Result, ok bool) {
	switch workload {
	case Sync1, Closed64, Pipelined64:
		return RunProducers(ctx, env, workload, p), true
	case Replay:
		return RunReplay(ctx, env, p), true
	case Fanout:
		return RunFanout(ctx, env, p), true
	}
	return Result{}, false
}

// Finish closes o (printing the table) and returns the process exit code
// of a run: 1 if closing failed or any workload failed (saying how many on
// stderr), 130 if ctx was cancelled (interrupted), else 0.
func (o *Output) Finish(ctx context.Context) int {
	if err := o.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if ctx.Err() != nil {
		return 130
	}
	if n := o.Failed(); n > 0 {
		fmt.Fprintf(os.Stderr, "%d workload(s) failed\n", n)
		return 1
	}
	return 0
}

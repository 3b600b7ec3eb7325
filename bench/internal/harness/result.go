package harness

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Params are the knobs of one workload run; they are printed with every
// result so a figure is never separated from its conditions.
type Params struct {
	EventSize      int     `json:"event_size"`
	Producers      int     `json:"producers,omitempty"`
	Window         int     `json:"window,omitempty"`
	Subscribers    int     `json:"subscribers,omitempty"`
	Rate           int     `json:"rate,omitempty"` // events/s offered, 0 = as fast as possible
	Count          int64   `json:"count,omitempty"`
	DurationS      float64 `json:"duration_s,omitempty"`
	Sync           string  `json:"sync"`
	WireEncryption int     `json:"wire_encryption"`
	Chains         int     `json:"chains,omitempty"`
}

// Duration returns DurationS as a time.Duration.
func (p Params) Duration() time.Duration { return time.Duration(p.DurationS * float64(time.Second)) }

// Latency is a latency summary in microseconds.
type Latency struct {
	Count uint64  `json:"n"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

// LimitRatio relates a result to one machine limit measured in the same run.
type LimitRatio struct {
	Name  string  `json:"name"`  // e.g. "fsync4k"
	Value float64 `json:"value"` // the limit, in Unit
	Unit  string  `json:"unit"`  // e.g. "ops/s", "GB/s"
	Ratio float64 `json:"ratio"` // result / limit, in the same unit
}

// Result is one line of output: one workload run against one system.
// Units: MB = 1e6 bytes, GB = 1e9 bytes, latencies in microseconds.
type Result struct {
	System       string             `json:"system"` // "atedb", "nats-always", "nats-default"
	Workload     string             `json:"workload"`
	Params       Params             `json:"params"`
	Events       int64              `json:"events"`
	Bytes        int64              `json:"bytes"`
	Seconds      float64            `json:"seconds"`
	EventsPerSec float64            `json:"events_per_s"`
	MBPerSec     float64            `json:"mb_per_s"`
	Latency      *Latency           `json:"latency_us,omitempty"`
	CPUClientS   float64            `json:"cpu_client_s"`
	CPUServerS   *float64           `json:"cpu_server_s,omitempty"` // nil when the server is not ours to watch
	Limits       []LimitRatio       `json:"limits,omitempty"`
	Extra        map[string]float64 `json:"extra,omitempty"`
	Note         string             `json:"note,omitempty"`
	Error        string             `json:"error,omitempty"`
}

// SetRates fills EventsPerSec and MBPerSec from Events, Bytes and Seconds.
func (r *Result) SetRates() {
	if r.Seconds <= 0 {
		return
	}
	r.EventsPerSec = round3(float64(r.Events) / r.Seconds)
	r.MBPerSec = round3(float64(r.Bytes) / r.Seconds / 1e6)
}

// AddLimit appends a ratio of value to limit (skipped when limit is not positive).
func (r *Result) AddLimit(name, unit string, value, limit float64) {
	if limit <= 0 || math.IsNaN(limit) || math.IsInf(limit, 0) {
		return
	}
	r.Limits = append(r.Limits, LimitRatio{Name: name, Unit: unit, Value: round3(limit), Ratio: round4(value / limit)})
}

// SetExtra records an additional named figure.
func (r *Result) SetExtra(name string, v float64) {
	if r.Extra == nil {
		r.Extra = make(map[string]float64)
	}
	r.Extra[name] = round3(v)
}

func round3(v float64) float64 { return math.Round(v*1e3) / 1e3 }
func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// WriteJSON writes r as one JSON line.
func (r *Result) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// maxJSONLine bounds one result line read back by [ReadResults].
const maxJSONLine = 1 << 20

// ErrBadResult reports a line of a results file that is not a result.
var ErrBadResult = errors.New("harness: bad result line")

// ReadResults reads the result lines of r: every line that starts with '{'
// must be a JSON [Result]; other lines (tables, logs) are skipped. name is
// used in errors, which carry the line number.
func ReadResults(r io.Reader, name string) ([]Result, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxJSONLine)
	var out []Result
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(b) == 0 || b[0] != '{' {
			continue
		}
		var res Result
		if err := json.Unmarshal(b, &res); err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v", ErrBadResult, name, line, err)
		}
		if res.System == "" || res.Workload == "" {
			return nil, fmt.Errorf("%w: %s:%d: missing system or workload", ErrBadResult, name, line)
		}
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// ReadResultsFile reads the results in the file at path (see [ReadResults]).
func ReadResultsFile(path string) ([]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadResults(f, path)
}

// Label returns the workload name with the parameters that tell variants apart
// ("pipelined64 enc=128"), used to match results across systems.
func (r *Result) Label() string {
	l := r.Workload
	if r.Params.WireEncryption > 0 && r.Workload != "handshake" {
		l += fmt.Sprintf(" enc=%d", r.Params.WireEncryption)
	}
	return l
}

// FormatRate formats an events/s figure with thousands separators.
func FormatRate(v float64) string {
	if v >= 100 {
		return groupThousands(int64(math.Round(v)))
	}
	return fmt.Sprintf("%.1f", v)
}

func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtUS(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1fms", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.2fms", v/1000)
	default:
		return fmt.Sprintf("%.0fµs", v)
	}
}

func fmtLimit(l LimitRatio) string {
	if l.Ratio >= 10 {
		return fmt.Sprintf("%.0fx %s", l.Ratio, l.Name)
	}
	if l.Ratio >= 0.995 {
		return fmt.Sprintf("%.2fx %s", l.Ratio, l.Name)
	}
	return fmt.Sprintf("%.1f%% %s", l.Ratio*100, l.Name)
}

// WriteTable prints results as an aligned, human-readable table. Limits
// lines (workload "limits") are left out: [WriteLimits] prints them.
func WriteTable(w io.Writer, results []Result) error {
	results = slices.DeleteFunc(slices.Clone(results), func(r Result) bool { return r.Workload == LimitsWorkload })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tworkload\tsize\tprod\twin\tsync\tevents/s\tMB/s\tp50\tp99\tp99.9\tcpu cli\tcpu srv\tvs limit\t")
	for _, r := range results {
		p50, p99, p999 := "-", "-", "-"
		if r.Latency != nil {
			p50, p99, p999 = fmtUS(r.Latency.P50), fmtUS(r.Latency.P99), fmtUS(r.Latency.P999)
		}
		srv := "-"
		if r.CPUServerS != nil && r.Seconds > 0 {
			srv = fmt.Sprintf("%.0f%%", *r.CPUServerS/r.Seconds*100)
		}
		cli := "-"
		if r.Seconds > 0 {
			cli = fmt.Sprintf("%.0f%%", r.CPUClientS/r.Seconds*100)
		}
		lim := "-"
		if len(r.Limits) > 0 {
			parts := make([]string, 0, len(r.Limits))
			for _, l := range r.Limits {
				parts = append(parts, fmtLimit(l))
			}
			lim = strings.Join(parts, ", ")
		}
		rate, mb := FormatRate(r.EventsPerSec), fmt.Sprintf("%.1f", r.MBPerSec)
		if r.Seconds == 0 {
			rate, mb = "-", "-"
		}
		if r.Error != "" {
			rate, mb, lim = "ERROR", "-", r.Error
			if len(lim) > 100 {
				lim = lim[:100] + "..."
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.System, r.Label(), r.Params.EventSize, r.Params.Producers, r.Params.Window, r.Params.Sync,
			rate, mb, p50, p99, p999, cli, srv, lim)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Extras and notes below the table, so the table stays narrow.
	for _, r := range results {
		if len(r.Extra) == 0 && r.Note == "" {
			continue
		}
		keys := make([]string, 0, len(r.Extra))
		for k := range r.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%s", k, fmtExtra(r.Extra[k]))
		}
		if r.Note != "" {
			fmt.Fprintf(&b, " (%s)", r.Note)
		}
		fmt.Fprintf(w, "  %s %s:%s\n", r.System, r.Label(), b.String())
	}
	return nil
}

// fmtExtra prints v without exponent and without needless decimals.
func fmtExtra(v float64) string {
	if math.Abs(v) >= 1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

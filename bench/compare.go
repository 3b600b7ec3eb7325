package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/atedb/atedb/bench/internal/harness"
)

// stats holds the repeated runs of one (system, workload label).
type stats struct {
	system, label string
	runs          []harness.Result
	failed        []string
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// med returns the median of f over the successful runs.
func (s *stats) med(f func(r *harness.Result) (float64, bool)) float64 {
	var v []float64
	for i := range s.runs {
		if x, ok := f(&s.runs[i]); ok {
			v = append(v, x)
		}
	}
	return median(v)
}

func (s *stats) rate() float64 {
	return s.med(func(r *harness.Result) (float64, bool) { return r.EventsPerSec, true })
}
func (s *stats) mbps() float64 {
	return s.med(func(r *harness.Result) (float64, bool) { return r.MBPerSec, true })
}
func (s *stats) lat(q string) float64 {
	return s.med(func(r *harness.Result) (float64, bool) {
		if r.Latency == nil {
			return 0, false
		}
		switch q {
		case "p50":
			return r.Latency.P50, true
		case "p99":
			return r.Latency.P99, true
		default:
			return r.Latency.P999, true
		}
	})
}
func (s *stats) extra(name string) float64 {
	return s.med(func(r *harness.Result) (float64, bool) {
		v, ok := r.Extra[name]
		return v, ok
	})
}

// workloadOrder sorts labels the way the issue lists the workloads.
var workloadOrder = []string{"sync1", "closed64", "pipelined64", "replay", "fanout", "handshake", "manychains", "reopen"}

func labelRank(label string) (int, string) {
	w, _, _ := strings.Cut(label, " ")
	for i, n := range workloadOrder {
		if n == w {
			return i, label
		}
	}
	return len(workloadOrder), label
}

func systemRank(sys string) string {
	switch {
	case sys == "atedb":
		return "0"
	case strings.HasPrefix(sys, "atedb"):
		return "1" + sys
	}
	return "2" + sys
}

// groupResults groups results by system and label, keeping failures apart.
func groupResults(results []harness.Result) (map[string]map[string]*stats, []*stats) {
	by := make(map[string]map[string]*stats)
	var all []*stats
	for _, r := range results {
		if r.Workload == harness.LimitsWorkload {
			continue
		}
		m := by[r.System]
		if m == nil {
			m = make(map[string]*stats)
			by[r.System] = m
		}
		s := m[r.Label()]
		if s == nil {
			s = &stats{system: r.System, label: r.Label()}
			m[r.Label()] = s
			all = append(all, s)
		}
		if r.Error != "" {
			s.failed = append(s.failed, r.Error)
			continue
		}
		s.runs = append(s.runs, r)
	}
	sort.Slice(all, func(i, j int) bool {
		ri, li := labelRank(all[i].label)
		rj, lj := labelRank(all[j].label)
		if ri != rj {
			return ri < rj
		}
		if li != lj {
			return li < lj
		}
		return systemRank(all[i].system) < systemRank(all[j].system)
	})
	return by, all
}

func fmtLat(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	if v >= 1000 {
		return fmt.Sprintf("%.2fms", v/1000)
	}
	return fmt.Sprintf("%.0fµs", v)
}

func fmtRatio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "-"
	}
	r := a / b
	if r >= 10 {
		return fmt.Sprintf("%.0fx", r)
	}
	return fmt.Sprintf("%.2fx", r)
}

// writeComparison prints the medians of every (workload, system) with the
// ratio atedb / that system, then the limits, then the targets.
func writeComparison(w io.Writer, results []harness.Result) error {
	by, all := groupResults(results)
	fmt.Fprintln(w, "Medians per workload and system; atedb/x = atedb's median events/s over x's (same runs).")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tsystem\truns\tevents/s\tMB/s\tp50\tp99\tp99.9\tcpu srv\tatedb/x\t")
	for _, s := range all {
		if len(s.runs) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t0\tFAILED\t\t\t\t\t\t\t\n", s.label, s.system)
			continue
		}
		vs := "-"
		if a := by["atedb"][s.label]; a != nil && s.system != "atedb" && len(a.runs) > 0 {
			vs = fmtRatio(a.rate(), s.rate())
		}
		srv := s.med(func(r *harness.Result) (float64, bool) {
			if r.CPUServerS == nil || r.Seconds <= 0 {
				return 0, false
			}
			return *r.CPUServerS / r.Seconds * 100, true
		})
		srvS := "-"
		if !math.IsNaN(srv) {
			srvS = fmt.Sprintf("%.0f%%", srv)
		}
		rate, mb := harness.FormatRate(s.rate()), fmt.Sprintf("%.1f", s.mbps())
		if s.rate() == 0 {
			rate, mb = "-", "-"
		}
		runs := fmt.Sprint(len(s.runs))
		if len(s.failed) > 0 {
			runs += fmt.Sprintf(" (+%d failed)", len(s.failed))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.label, s.system, runs,
			rate, mb, fmtLat(s.lat("p50")), fmtLat(s.lat("p99")), fmtLat(s.lat("p999")), srvS, vs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	writeLimitMedians(w, results)
	fmt.Fprintln(w)
	return writeTargets(w, by)
}

func writeLimitMedians(w io.Writer, results []harness.Result) {
	vals := make(map[string][]float64)
	for _, r := range results {
		if r.Workload != harness.LimitsWorkload {
			continue
		}
		for k, v := range r.Extra {
			vals[k] = append(vals[k], v)
		}
	}
	if len(vals) == 0 {
		return
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "\nMachine limits, median of %d measurements:", len(vals[keys[0]]))
	for _, k := range keys {
		fmt.Fprintf(w, " %s=%s", k, strings.TrimSuffix(fmt.Sprintf("%.3f", median(vals[k])), ".000"))
	}
	fmt.Fprintln(w)
}

// target is one line of the target table.
type target struct {
	name string
	// eval returns the figure measured for system sys ("" if missing) and
	// whether it meets the target.
	eval func(by map[string]*stats) (string, bool, bool)
}

func rateOf(by map[string]*stats, label string) (*stats, bool) {
	s := by[label]
	return s, s != nil && len(s.runs) > 0
}

var targets = []target{
	{"sync1 ≥ 4,000/s, p50 ≤ 300 µs", func(by map[string]*stats) (string, bool, bool) {
		s, ok := rateOf(by, "sync1")
		if !ok {
			return "", false, false
		}
		return fmt.Sprintf("%s/s, p50 %s", harness.FormatRate(s.rate()), fmtLat(s.lat("p50"))), s.rate() >= 4000 && s.lat("p50") <= 300, true
	}},
	{"closed64 ≥ 60,000/s", func(by map[string]*stats) (string, bool, bool) {
		s, ok := rateOf(by, "closed64")
		if !ok {
			return "", false, false
		}
		return harness.FormatRate(s.rate()) + "/s", s.rate() >= 60000, true
	}},
	{"pipelined64 ≥ 200,000/s", func(by map[string]*stats) (string, bool, bool) {
		s, ok := rateOf(by, "pipelined64")
		if !ok {
			return "", false, false
		}
		return harness.FormatRate(s.rate()) + "/s", s.rate() >= 200000, true
	}},
	{"replay ≥ 1 GB/s", func(by map[string]*stats) (string, bool, bool) {
		s, ok := rateOf(by, "replay")
		if !ok {
			return "", false, false
		}
		return fmt.Sprintf("%.0f MB/s", s.mbps()), s.mbps() >= 1000, true
	}},
	{"fanout p99 ≤ 5 ms, p50 ≤ 1 ms after confirmation, at 10,000/s", func(by map[string]*stats) (string, bool, bool) {
		s, ok := rateOf(by, "fanout")
		if !ok {
			return "", false, false
		}
		prod := s.extra("produced_per_s")
		return fmt.Sprintf("p50 %s, p99 %s at %s/s produced", fmtLat(s.lat("p50")), fmtLat(s.lat("p99")), harness.FormatRate(prod)),
			s.lat("p99") <= 5000 && s.lat("p50") <= 1000 && prod >= 0.95*10000, true
	}},
	{"manychains: no cliff 1 → 10,000 chains; open-on-demand p99 ≤ 5 ms", func(by map[string]*stats) (string, bool, bool) {
		s, ok := rateOf(by, "manychains")
		if !ok {
			return "", false, false
		}
		ratio, open := s.extra("rate_ratio_many_over_one"), s.extra("open_p99_us")
		return fmt.Sprintf("rate many/1 chains %.2f, open p99 %s, %.0f B/idle chain", ratio, fmtLat(open), s.extra("bytes_per_idle_chain")),
			ratio >= 0.8 && open <= 5000, true
	}},
	{"encrypted (128) ≥ 80% of plain", func(by map[string]*stats) (string, bool, bool) {
		var parts []string
		met, any := true, false
		for _, w := range []string{"sync1", "closed64", "pipelined64", "replay", "fanout"} {
			plain, ok1 := rateOf(by, w)
			enc, ok2 := rateOf(by, w+" enc=128")
			if !ok1 || !ok2 {
				continue
			}
			any = true
			r := enc.rate() / plain.rate()
			parts = append(parts, fmt.Sprintf("%s %.0f%%", w, r*100))
			met = met && r >= 0.8
		}
		return strings.Join(parts, ", "), met, any
	}},
	{"handshake (768) ≥ 4,000/s", func(by map[string]*stats) (string, bool, bool) {
		s, ok := rateOf(by, "handshake")
		if !ok {
			return "", false, false
		}
		return harness.FormatRate(s.rate()) + "/s", s.rate() >= 4000, true
	}},
	{"reopen 1 GiB ≤ 100 ms; kill -9 recovery ≤ 1 s", func(by map[string]*stats) (string, bool, bool) {
		s, ok := rateOf(by, "reopen")
		if !ok {
			return "", false, false
		}
		re, rec := s.extra("reopen_ms"), s.extra("recovery_ms")
		return fmt.Sprintf("reopen %.0f ms, recovery %.0f ms", re, rec), re <= 100 && rec <= 1000, true
	}},
}

func writeTargets(w io.Writer, by map[string]map[string]*stats) error {
	var peers []string
	for sys := range by {
		if sys != "atedb" {
			peers = append(peers, sys)
		}
	}
	sort.Strings(peers)
	fmt.Fprintln(w, "Targets (issue 6), atedb medians with the peers' medians from the same runs:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "target\tatedb\tmet")
	for _, p := range peers {
		fmt.Fprintf(tw, "\t%s", p)
	}
	fmt.Fprintln(tw, "\t")
	for _, t := range targets {
		fig, met, ok := t.eval(by["atedb"])
		m := "yes"
		switch {
		case !ok:
			fig, m = "not run", "-"
		case !met:
			m = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s", t.name, fig, m)
		for _, p := range peers {
			pf, _, pok := t.eval(by[p])
			if !pok {
				pf = "-"
			}
			fmt.Fprintf(tw, "\t%s", pf)
		}
		fmt.Fprintln(tw, "\t")
	}
	return tw.Flush()
}

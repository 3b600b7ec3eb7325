package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/atedb/atedb/bench/internal/harness"
)

func res(sys, workload string, enc int, rate, p50 float64, extra map[string]float64) harness.Result {
	r := harness.Result{System: sys, Workload: workload, EventsPerSec: rate, MBPerSec: rate / 1000,
		Params: harness.Params{EventSize: 1000, WireEncryption: enc}, Extra: extra,
		Latency: &harness.Latency{P50: p50, P99: 2 * p50, P999: 3 * p50}}
	return r
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestComparison(t *testing.T) {
	var rs []harness.Result
	// Three atedb runs and three NATS runs of sync1: medians 5,000 and 2,000.
	for _, v := range []float64{4000, 5000, 9000} {
		rs = append(rs, res("atedb", "sync1", 0, v, 200, nil))
	}
	for _, v := range []float64{1000, 2000, 2500} {
		rs = append(rs, res("nats-always", "sync1", 0, v, 400, nil))
	}
	rs = append(rs, res("atedb", "sync1", 128, 4500, 210, nil))
	rs = append(rs, res("atedb", "closed64", 0, 50000, 900, nil))
	failed := res("atedb", "closed64", 0, 0, 0, nil)
	failed.Error = "boom"
	rs = append(rs, failed)
	rs = append(rs, res("atedb", "reopen", 0, 0, 0, map[string]float64{"reopen_ms": 40, "recovery_ms": 300}))
	var b bytes.Buffer
	if err := writeComparison(&b, rs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"2.50x",              // atedb/nats-always on sync1: 5,000 / 2,000
		"5,000/s, p50 200µs", // sync1 target figure
		"1 (+1 failed)",      // closed64 runs
		"sync1 90%",          // encrypted 4,500 of plain 5,000
		"reopen 40 ms, recovery 300 ms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}
	// closed64 (50,000/s) misses its 60,000/s target.
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "closed64 ≥") && !strings.Contains(line, "NO") {
			t.Errorf("closed64 target line does not say NO: %q", line)
		}
		if strings.HasPrefix(line, "sync1 ≥") && !strings.Contains(line, "yes") {
			t.Errorf("sync1 target line does not say yes: %q", line)
		}
	}
}

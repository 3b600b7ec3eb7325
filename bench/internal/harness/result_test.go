package harness

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestResultRoundTrip(t *testing.T) {
	srv := 1.5
	in := Result{System: "atedb", Workload: "sync1", Params: Params{EventSize: 1024, Producers: 1, Window: 1, DurationS: 2, Sync: "always"},
		Events: 8000, Bytes: 8000 * 1024, Seconds: 2, CPUClientS: 0.5, CPUServerS: &srv}
	in.SetRates()
	in.AddLimit(LimitFsync4K, "ops/s", in.EventsPerSec, 2000)
	var buf bytes.Buffer
	buf.WriteString("a table line\n")
	if err := in.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	out, err := ReadResults(&buf, "mem")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].EventsPerSec != 4000 || out[0].Limits[0].Ratio != 2 || *out[0].CPUServerS != 1.5 {
		t.Errorf("read back %+v", out)
	}
	var tab bytes.Buffer
	if err := WriteTable(&tab, out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sync1", "4,000", "2.00x fsync4k", "75%"} {
		if !strings.Contains(tab.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tab.String())
		}
	}
}

func TestReadResultsErrors(t *testing.T) {
	for name, in := range map[string]string{
		"not json":   "{oops\n",
		"no system":  `{"workload":"x"}` + "\n",
		"wrong type": `{"system":"a","workload":"b","events":"many"}` + "\n",
	} {
		_, err := ReadResults(strings.NewReader(in), "f")
		if !errors.Is(err, ErrBadResult) || !strings.Contains(err.Error(), "f:1") {
			t.Errorf("%s: error %v, want ErrBadResult at f:1", name, err)
		}
	}
}

func TestProcessCPU(t *testing.T) {
	start := time.Now()
	x := 0
	for time.Since(start) < 50*time.Millisecond {
		x++
	}
	c, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if c < 20*time.Millisecond || SelfCPU() < 20*time.Millisecond {
		t.Errorf("CPU after 50 ms of spinning: /proc %v, getrusage %v", c, SelfCPU())
	}
	rss, err := ProcessRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Errorf("RSS %d, %v", rss, err)
	}
	if _, err := ProcessCPU(1 << 30); err == nil {
		t.Errorf("no error for a process that does not exist")
	}
}

func TestMeasureLimits(t *testing.T) {
	l, err := MeasureLimits(context.Background(), t.TempDir(), 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if l.Fsync4KPerSec <= 0 || l.Fsync4KP50US <= 0 || l.Write1MGBps <= 0 || l.LoopbackGBps <= 0 || l.AESGCMGBps <= 0 || l.KEM768PerSec <= 0 {
		t.Errorf("a limit is not positive: %+v", l)
	}
	var b bytes.Buffer
	WriteLimits(&b, l)
	if !strings.Contains(b.String(), "fdatasync") {
		t.Errorf("limits block: %s", b.String())
	}
}

package harness

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func testEnv(d Driver) *Env {
	return &Env{System: "fake", Driver: d, StallTimeout: 300 * time.Millisecond, Limits: &Limits{Fsync4KPerSec: 1000, Fsync4KP50US: 900, Write1MGBps: 1, LoopbackGBps: 2, AESGCMGBps: 1}}
}

func TestRunProducers(t *testing.T) {
	tests := map[string]Params{
		"sync1":     {EventSize: 64, Producers: 1, Window: 1, Count: 500},
		"closed8":   {EventSize: 64, Producers: 8, Window: 1, Count: 800},
		"pipelined": {EventSize: 100, Producers: 4, Window: 16, Count: 1000},
		"encrypted": {EventSize: 64, Producers: 2, Window: 8, Count: 300, WireEncryption: 128},
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			d := &fakeDriver{}
			r := RunProducers(context.Background(), testEnv(d), name, p)
			if r.Error != "" {
				t.Fatalf("error: %s", r.Error)
			}
			if r.Events != p.Count || r.Bytes != p.Count*int64(p.EventSize) {
				t.Errorf("events %d bytes %d, want %d and %d", r.Events, r.Bytes, p.Count, p.Count*int64(p.EventSize))
			}
			if r.Latency == nil || r.Latency.Count != uint64(p.Count) {
				t.Errorf("latency %+v, want %d samples", r.Latency, p.Count)
			}
			if r.EventsPerSec <= 0 || r.Seconds <= 0 {
				t.Errorf("rate %v over %v s", r.EventsPerSec, r.Seconds)
			}
			wantLimits := 2
			if p.WireEncryption > 0 {
				wantLimits = 3
			}
			if len(r.Limits) != wantLimits {
				t.Errorf("limits %+v, want %d", r.Limits, wantLimits)
			}
			// Every sequence number was appended exactly once, plus 2 warm-up events per producer.
			var s *fakeStream
			for _, v := range d.streams {
				s = v
			}
			seen := make(map[int64]bool)
			warm := 0
			for _, ev := range s.events {
				seq, prod, ok := header(ev)
				if !ok || len(ev) != p.EventSize {
					t.Fatalf("malformed event of %d bytes", len(ev))
				}
				if prod == warmupProducer {
					warm++
					continue
				}
				if seen[seq] || seq >= p.Count {
					t.Fatalf("sequence %d appended twice or out of range", seq)
				}
				seen[seq] = true
			}
			if len(seen) != int(p.Count) || warm != 2*p.Producers {
				t.Errorf("stream holds %d timed and %d warm-up events, want %d and %d", len(seen), warm, p.Count, 2*p.Producers)
			}
		})
	}
}

func TestRunProducersDuration(t *testing.T) {
	p := Params{EventSize: 32, Producers: 2, Window: 4, DurationS: 0.2}
	start := time.Now()
	r := RunProducers(context.Background(), testEnv(&fakeDriver{delay: 100 * time.Microsecond}), "timed", p)
	if r.Error != "" {
		t.Fatalf("error: %s", r.Error)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("a 0.2 s run took %v", el)
	}
	if r.Seconds < 0.2 || r.Events == 0 {
		t.Errorf("ran %v s for %d events, want >= 0.2 s and some events", r.Seconds, r.Events)
	}
}

func TestRunProducersFailure(t *testing.T) {
	for _, window := range []int{1, 8} {
		p := Params{EventSize: 32, Producers: 3, Window: window, Count: 1000}
		r := RunProducers(context.Background(), testEnv(&fakeDriver{failAfter: 20}), "fail", p)
		if !strings.Contains(r.Error, errFake.Error()) {
			t.Errorf("window %d: error %q, want it to mention %q", window, r.Error, errFake)
		}
	}
}

func TestBadParams(t *testing.T) {
	tests := map[string]Params{
		"tiny events":  {EventSize: 8, Producers: 1, Count: 10},
		"no producers": {EventSize: 64, Producers: 0, Count: 10},
		"no bound":     {EventSize: 64, Producers: 1},
	}
	for name, p := range tests {
		r := RunProducers(context.Background(), testEnv(&fakeDriver{}), name, p)
		if !strings.Contains(r.Error, ErrBadParams.Error()) {
			t.Errorf("%s: error %q, want %q", name, r.Error, ErrBadParams)
		}
	}
}

func TestRunReplay(t *testing.T) {
	p := Params{EventSize: 128, Producers: 3, Window: 32, Count: 5000}
	r := RunReplay(context.Background(), testEnv(&fakeDriver{}), p)
	if r.Error != "" {
		t.Fatalf("error: %s", r.Error)
	}
	if r.Events != p.Count || r.Bytes != p.Count*128 {
		t.Errorf("read %d events, %d bytes; want %d, %d", r.Events, r.Bytes, p.Count, p.Count*128)
	}
	if len(r.Limits) != 1 || r.Limits[0].Name != LimitLoopback {
		t.Errorf("limits %+v, want loopback", r.Limits)
	}
}

func TestRunReplayDuration(t *testing.T) {
	// 2,000 events read again and again for 300 ms: several passes, each
	// on a new subscription, and the run ends at the duration.
	p := Params{EventSize: 64, Producers: 2, Window: 16, Count: 2000, DurationS: 0.3}
	r := RunReplay(context.Background(), testEnv(&fakeDriver{}), p)
	if r.Error != "" {
		t.Fatalf("error: %s", r.Error)
	}
	passes := r.Extra["passes"]
	if passes < 2 {
		t.Errorf("passes %v, want at least 2 over 2,000 events in 300 ms", passes)
	}
	if r.Events <= p.Count || r.Events > int64(passes)*p.Count || r.Bytes != r.Events*64 {
		t.Errorf("read %d events (%d bytes) in %v passes of %d", r.Events, r.Bytes, passes, p.Count)
	}
	if r.Seconds < 0.29 || r.Seconds > 5 {
		t.Errorf("ran %v s, want about the 0.3 s duration", r.Seconds)
	}
}

func TestOptionsReplayDuration(t *testing.T) {
	var o Options
	fs := NewFlagSet("t", &o, "always", "sync mode")
	if _, err := o.Parse(fs, []string{"replay", "sync1", "-duration", "5s"}); err != nil {
		t.Fatal(err)
	}
	if p := o.Apply(Replay, Defaults[Replay]); p.Count != Defaults[Replay].Count || p.DurationS != 5 {
		t.Errorf("replay -duration 5s: count %d duration %v s, want count %d (the history) and 5 s", p.Count, p.DurationS, Defaults[Replay].Count)
	}
	if p := o.Apply(Sync1, Defaults[Sync1]); p.Count != 0 || p.DurationS != 5 {
		t.Errorf("sync1 -duration 5s: count %d duration %v s, want 0 and 5 s", p.Count, p.DurationS)
	}
}

func TestRunReplayDetectsDisorder(t *testing.T) {
	p := Params{EventSize: 64, Producers: 1, Window: 1, Count: 100}
	r := RunReplay(context.Background(), testEnv(&fakeDriver{reorder: true}), p)
	if !strings.Contains(r.Error, "out of order") {
		t.Errorf("error %q, want out-of-order report", r.Error)
	}
}

func TestRunFanout(t *testing.T) {
	p := Params{EventSize: 64, Producers: 1, Window: 64, Subscribers: 4, Rate: 20000, Count: 2000}
	r := RunFanout(context.Background(), testEnv(&fakeDriver{}), p)
	if r.Error != "" {
		t.Fatalf("error: %s", r.Error)
	}
	if r.Events != 4*2000 {
		t.Errorf("delivered %d, want %d", r.Events, 4*2000)
	}
	if r.Latency == nil || r.Latency.Count != 8000 {
		t.Errorf("latency %+v, want 8000 samples", r.Latency)
	}
	// 2000 events at 20,000/s take at least 0.1 s: the producer is paced.
	if r.Seconds < 0.09 {
		t.Errorf("fanout took %v s, want the producer paced to >= 0.1 s", r.Seconds)
	}
	if _, ok := r.Extra["e2e_p99_us"]; !ok {
		t.Errorf("extra %v lacks e2e_p99_us", r.Extra)
	}
}

func TestRunFanoutDetectsDisorder(t *testing.T) {
	p := Params{EventSize: 64, Producers: 1, Window: 64, Subscribers: 2, Rate: 50000, Count: 500}
	r := RunFanout(context.Background(), testEnv(&fakeDriver{reorder: true}), p)
	if r.Error == "" {
		t.Errorf("reordered delivery was not reported")
	}
}

func TestOptions(t *testing.T) {
	var o Options
	fs := NewFlagSet("t", &o, "always", "sync mode")
	names, err := o.Parse(fs, []string{"sync1", "-count", "500", "replay", "-smoke", "-size", "64"})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] != "sync1" || names[1] != "replay" {
		t.Fatalf("names %v", names)
	}
	p := o.Apply(Sync1, Defaults[Sync1])
	if p.Count != 500 || p.DurationS != 0 || p.EventSize != 64 || p.Producers != 1 || p.Sync != "always" {
		t.Errorf("sync1 params %+v", p)
	}
	var o2 Options
	fs = NewFlagSet("t", &o2, "always", "sync mode")
	if _, err := o2.Parse(fs, []string{"sync1", "-size", "4"}); !errors.Is(err, ErrUsage) {
		t.Errorf("size 4: error %v, want ErrUsage", err)
	}
	var o3 Options
	fs = NewFlagSet("t", &o3, "always", "sync mode")
	fs.SetOutput(io.Discard)
	if _, err := o3.Parse(fs, []string{"-smoke"}); !errors.Is(err, ErrUsage) {
		t.Errorf("no workload: error %v, want ErrUsage", err)
	}
	var o4 Options
	fs = NewFlagSet("t", &o4, "always", "sync mode")
	if _, err := o4.Parse(fs, []string{"fanout", "-smoke"}); err != nil {
		t.Fatal(err)
	}
	if p := o4.Apply(Fanout, Defaults[Fanout]); p.DurationS != 1 || p.Rate != 10000 || p.Subscribers != 16 {
		t.Errorf("smoke fanout params %+v", p)
	}
}

package client

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// The benchmarks run against the in-memory fake server over loopback: they
// measure the client's own cost (encoding, queueing, matching replies,
// buffering subscriptions) and the wire, not durability.

func benchEvents(n, size int) []proto.Event {
	evs := make([]proto.Event, n)
	for i := range evs {
		evs[i] = proto.Event{Data: make([]byte, size)}
	}
	return evs
}

// stamp makes every event of the benchmark distinct (the fake server
// recognises identical events as retries).
func stamp(evs []proto.Event, seq *int64) {
	for i := range evs {
		*seq++
		evs[i].Timestamp = *seq
	}
}

func BenchmarkAppendSync(b *testing.B) {
	for _, enc := range []kex.KeySize{kex.KeySizeNone, kex.KeySize128} {
		b.Run(fmt.Sprintf("enc=%v/events=1/size=100B", enc), func(b *testing.B) {
			fs := newFakeServer(b)
			c, err := Dial(context.Background(), fs.url("bench"), WithWireEncryption(enc))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			evs := benchEvents(1, 100)
			var seq int64
			ctx := context.Background()
			b.SetBytes(100)
			b.ReportAllocs()
			for b.Loop() {
				stamp(evs, &seq)
				if _, err := c.Append(ctx, evs...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendPipelined(b *testing.B) {
	for _, window := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("window=%d/events=16/size=100B", window), func(b *testing.B) {
			fs := newFakeServer(b)
			c, err := Dial(context.Background(), fs.url("bench"), WithWindow(window), WithWireEncryption(kex.KeySizeNone))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			var seq int64
			futs := make(chan *Future, window)
			done := make(chan error, 1)
			go func() {
				var first error
				for f := range futs {
					if _, err := f.Wait(ctx); err != nil && first == nil {
						first = err
					}
				}
				done <- first
			}()
			b.SetBytes(16 * 100)
			b.ReportAllocs()
			for b.Loop() {
				evs := benchEvents(16, 100)
				stamp(evs, &seq)
				f, err := c.AppendAsync(ctx, Batch{Events: evs})
				if err != nil {
					b.Fatal(err)
				}
				futs <- f
			}
			close(futs)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkSubscribeReplay replays a chain's history through a
// subscription (fake server, loopback, no encryption) and reports the
// client's cost per event: time, and heap bytes allocated (B/event counts
// the whole process, the fake server included, which reuses its buffers).
func BenchmarkSubscribeReplay(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("size=%dB", size), func(b *testing.B) {
			fs := newFakeServer(b)
			fs.eventsPerMsg = 256
			const n = 20000
			raws := make([][]byte, n)
			for i := range raws {
				e := proto.Event{Timestamp: int64(i + 1), Data: make([]byte, size)}
				raws[i], _ = e.AppendBinary(nil)
			}
			fs.appendRaw("replay", raws...)
			c, err := Dial(context.Background(), fs.url("replay"), WithWireEncryption(kex.KeySizeNone))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			b.SetBytes(int64(n * size))
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				s, err := c.Subscribe(ctx, SubscribeOptions{History: true})
				if err != nil {
					b.Fatal(err)
				}
				got := 0
				for _, err := range s.Events(ctx) {
					if err != nil {
						b.Fatal(err)
					}
					got++
				}
				s.Close()
				if got != n {
					b.Fatalf("replayed %d events, want %d", got, n)
				}
			}
			runtime.ReadMemStats(&after)
			events := float64(b.N) * n
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/events, "B/event")
		})
	}
}

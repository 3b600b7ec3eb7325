package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"testing"

	"github.com/atedb/atedb/client"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

var perfServerArg = flag.String("perf.server-arg", "", "BenchmarkE2E1KiB: one extra flag for the server's solo, e.g. --trace=FILE")

// BenchmarkE2E1KiB is the regression benchmark of the paths bench/ measures
// (sync1, pipelined, replay), on 1 KiB events, --sync always, through the Go
// client to a real server process, plain and with 128-bit wire encryption.
// It reports events/s; compare runs with benchstat. -perf.server-arg passes
// one flag to the server's solo, e.g. a trace of the server beside the
// client's:
//
//	go test ./cmd/atedb -run '^$' -bench 'E2E1KiB/enc=none/sync1' -benchtime 3s \
//		-trace /tmp/client.trace -perf.server-arg=--trace=/tmp/server.trace
func BenchmarkE2E1KiB(b *testing.B) {
	for _, enc := range []kex.KeySize{kex.KeySizeNone, kex.KeySize128} {
		b.Run(fmt.Sprintf("enc=%v", enc), func(b *testing.B) {
			global := []string{"--no-wire-encryption"}
			if enc != kex.KeySizeNone {
				global = []string{"--wire-encryption", fmt.Sprint(int(enc))}
			}
			var soloFlags []string
			if *perfServerArg != "" {
				soloFlags = []string{*perfServerArg}
			}
			srv := startSoloArgs(b, "127.0.0.1", 0, b.TempDir(), global, soloFlags)
			opts := []client.Option{client.WithWireEncryption(enc), client.WithWindow(256)}
			ctx := context.Background()
			var seq uint64
			event := func() proto.Event {
				seq++
				data := make([]byte, 1024)
				binary.LittleEndian.PutUint64(data, seq) // distinct: not a retry
				return proto.Event{Data: data}
			}
			b.Run("sync1", func(b *testing.B) {
				c, err := client.Dial(ctx, srv.url("bench/sync1"), opts...)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				ev := event()
				b.SetBytes(1024)
				b.ReportAllocs()
				for b.Loop() {
					seq++
					binary.LittleEndian.PutUint64(ev.Data, seq)
					if _, err := c.Append(ctx, ev); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
			b.Run("pipelined/window=256", func(b *testing.B) {
				c, err := client.Dial(ctx, srv.url("bench/pipelined"), opts...)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				futs, done := waitFutures(ctx, 256)
				ev := event()
				b.SetBytes(1024)
				b.ReportAllocs()
				for b.Loop() {
					seq++
					binary.LittleEndian.PutUint64(ev.Data, seq)
					f, err := c.AppendAsync(ctx, client.Batch{Events: []proto.Event{ev}})
					if err != nil {
						b.Fatal(err)
					}
					futs <- f
				}
				close(futs)
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
			b.Run("replay", func(b *testing.B) {
				// Fill once (untimed), then read the whole chain per op,
				// with the default buffers and with ReuseBuffers.
				const n = 100_000
				c, err := client.Dial(ctx, srv.url("bench/replay"), opts...)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				batch := make([]proto.Event, 100)
				for i := 0; i < n; i += len(batch) {
					for j := range batch {
						batch[j] = event()
					}
					if _, err := c.Append(ctx, batch...); err != nil {
						b.Fatal(err)
					}
				}
				for _, reuse := range []bool{false, true} {
					b.Run(fmt.Sprintf("reuse=%v", reuse), func(b *testing.B) {
						b.SetBytes(n * 1024)
						b.ReportAllocs()
						for b.Loop() {
							sub, err := c.Subscribe(ctx, client.SubscribeOptions{History: true, ReuseBuffers: reuse})
							if err != nil {
								b.Fatal(err)
							}
							got := 0
							for _, err := range sub.Events(ctx) {
								if err != nil {
									b.Fatal(err)
								}
								got++
							}
							sub.Close()
							if got != n {
								b.Fatalf("replayed %d events, want %d", got, n)
							}
						}
						b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "events/s")
					})
				}
			})
		})
	}
}

// waitFutures returns a queue of pipelined appends and a channel that gets
// the first error among them (or nil) once the queue is closed and every
// future has completed: the benchmarks' pipelined producers keep a window
// of window batches in flight this way.
func waitFutures(ctx context.Context, window int) (chan<- *client.Future, <-chan error) {
	futs := make(chan *client.Future, window)
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
	return futs, done
}

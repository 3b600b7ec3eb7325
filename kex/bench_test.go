package kex

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/atedb/atedb/proto"
)

// BenchmarkHandshake measures complete handshakes (key generation,
// encapsulation, decapsulation, signatures, key schedule, both key
// confirmations) with both sides talking over net.Pipe through
// proto.Stream. handshakes/s is the mean over the run; median-handshakes/s
// is 1 / the median handshake time, which a loaded machine disturbs less.
// Run it with -cpu 1 to count both sides on one core:
//
//	go test ./kex -run '^$' -bench BenchmarkHandshake -cpu 1
func BenchmarkHandshake(b *testing.B) {
	cases := []struct {
		size KeySize
		alg  IdentityAlg
	}{
		{KeySize128, IdentityNone},
		{KeySize192, IdentityNone},
		{KeySize256, IdentityNone},
		{KeySize192, IdentityEd25519},
		{KeySize192, IdentityMLDSA65},
	}
	for _, tc := range cases {
		b.Run(fmt.Sprintf("size=%v/identity=%v", tc.size, tc.alg), func(b *testing.B) {
			hello, ack := hellos(tc.size)
			scfg := ServerConfig{Identity: testIdentity(b, tc.alg, "bench")}
			b.ReportAllocs()
			n := 0
			times := newSamples()
			for b.Loop() {
				t0 := time.Now()
				c1, c2 := net.Pipe()
				cs, ss := proto.NewStream(c1, 0), proto.NewStream(c2, 0)
				done := make(chan error, 1)
				go func() {
					s, err := ServerHandshake(ss, hello, ack, tc.size, scfg)
					if err == nil {
						s.Close()
					}
					done <- err
				}()
				s, err := ClientHandshake(cs, hello, ack, tc.size, ClientConfig{})
				if err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				s.Close()
				c1.Close()
				c2.Close()
				times.add(time.Since(t0))
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "handshakes/s")
			b.ReportMetric(1/times.median().Seconds(), "median-handshakes/s")
		})
	}
}

// discardRW is an io.ReadWriter that drops writes (write-only streams).
type discardRW struct{}

func (discardRW) Read([]byte) (int, error)    { return 0, io.EOF }
func (discardRW) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkFrame64KiB compares sealed 64 KiB frames with raw AES-GCM on a
// key of the same size, in the same run:
//
//	path=raw-seal          AES-GCM Seal into a reused buffer
//	path=sealed-write      Conn.WriteFrame + Flush through proto.Stream to a discarding writer
//	path=raw-roundtrip     Seal then Open in place
//	path=sealed-roundtrip  Conn.WriteFrame + Flush into a buffer, then the peer's Conn.ReadFrame
//
// The sealed/raw ratio of MB/s is the figure to quote.
func BenchmarkFrame64KiB(b *testing.B) {
	const frame = 64 << 10
	msg := bytes.Repeat([]byte{0x5a}, frame)
	for _, size := range allSizes {
		r := mustHandshake(b, hsOpts{size: size})
		key := make([]byte, size.aesKeyLen())
		block, err := aes.NewCipher(key)
		if err != nil {
			b.Fatal(err)
		}
		g, err := cipher.NewGCM(block)
		if err != nil {
			b.Fatal(err)
		}
		var nonce [NonceSize]byte
		buf := make([]byte, 0, frame+TagSize)
		b.Run(fmt.Sprintf("size=%v/path=raw-seal", size), func(b *testing.B) {
			b.SetBytes(frame)
			b.ReportAllocs()
			var ctr uint64
			for b.Loop() {
				binary.LittleEndian.PutUint64(nonce[4:], ctr)
				buf = g.Seal(buf[:0], nonce[:], msg, nil)
				ctr++
			}
		})
		b.Run(fmt.Sprintf("size=%v/path=sealed-write", size), func(b *testing.B) {
			c := r.cli.Conn(proto.NewStream(discardRW{}, 0))
			b.SetBytes(frame)
			b.ReportAllocs()
			for b.Loop() {
				if err := c.WriteFrame(msg); err != nil {
					b.Fatal(err)
				}
				if err := c.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("size=%v/path=raw-roundtrip", size), func(b *testing.B) {
			b.SetBytes(frame)
			b.ReportAllocs()
			var ctr uint64
			for b.Loop() {
				binary.LittleEndian.PutUint64(nonce[4:], ctr)
				buf = g.Seal(buf[:0], nonce[:], msg, nil)
				if _, err := g.Open(buf[:0], nonce[:], buf, nil); err != nil {
					b.Fatal(err)
				}
				ctr++
			}
		})
		b.Run(fmt.Sprintf("size=%v/path=sealed-roundtrip", size), func(b *testing.B) {
			rr := mustHandshake(b, hsOpts{size: size})
			var wire bytes.Buffer
			w := rr.cli.Conn(proto.NewStream(&wire, 0))
			rd := rr.srv.Conn(proto.NewStream(&wire, 0))
			b.SetBytes(frame)
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WriteFrame(msg); err != nil {
					b.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
				if _, err := rd.ReadFrame(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFrame64KiBInterleaved measures the sealed/raw ratio robustly on
// a loaded machine: every iteration times one raw AES-GCM operation and
// one sealed-frame operation on 64 KiB, back to back on the same key size,
// and the reported figures are the medians of the per-operation times
// (median MB/s of each, and sealed/raw as a fraction).
//
//	op=write      raw Seal           vs Conn.WriteFrame + Flush (to a discarding writer)
//	op=roundtrip  raw Seal + Open    vs WriteFrame + Flush + the peer's ReadFrame (through a buffer)
func BenchmarkFrame64KiBInterleaved(b *testing.B) {
	const frame = 64 << 10
	msg := bytes.Repeat([]byte{0x5a}, frame)
	for _, size := range allSizes {
		for _, op := range []string{"write", "roundtrip"} {
			b.Run(fmt.Sprintf("size=%v/op=%s", size, op), func(b *testing.B) {
				r := mustHandshake(b, hsOpts{size: size})
				block, err := aes.NewCipher(make([]byte, size.aesKeyLen()))
				if err != nil {
					b.Fatal(err)
				}
				g, err := cipher.NewGCM(block)
				if err != nil {
					b.Fatal(err)
				}
				var nonce [NonceSize]byte
				buf := make([]byte, 0, frame+TagSize)
				var wire bytes.Buffer
				var w, rd *Conn
				if op == "write" {
					w = r.cli.Conn(proto.NewStream(discardRW{}, 0))
				} else {
					w = r.cli.Conn(proto.NewStream(&wire, 0))
					rd = r.srv.Conn(proto.NewStream(&wire, 0))
				}
				raw, sealed := newSamples(), newSamples()
				var ctr uint64
				b.SetBytes(2 * frame)
				b.ReportAllocs()
				for b.Loop() {
					t0 := time.Now()
					binary.LittleEndian.PutUint64(nonce[4:], ctr)
					buf = g.Seal(buf[:0], nonce[:], msg, nil)
					if op == "roundtrip" {
						if _, err := g.Open(buf[:0], nonce[:], buf, nil); err != nil {
							b.Fatal(err)
						}
					}
					ctr++
					t1 := time.Now()
					if err := w.WriteFrame(msg); err != nil {
						b.Fatal(err)
					}
					if err := w.Flush(); err != nil {
						b.Fatal(err)
					}
					if rd != nil {
						if _, err := rd.ReadFrame(); err != nil {
							b.Fatal(err)
						}
					}
					t2 := time.Now()
					raw.add(t1.Sub(t0))
					sealed.add(t2.Sub(t1))
				}
				mr, ms := raw.median(), sealed.median()
				b.ReportMetric(float64(frame)/mr.Seconds()/1e6, "raw-MB/s")
				b.ReportMetric(float64(frame)/ms.Seconds()/1e6, "sealed-MB/s")
				b.ReportMetric(mr.Seconds()/ms.Seconds(), "sealed/raw")
			})
		}
	}
}

// samples keeps the last len(buf) durations in a preallocated ring, so
// timing adds no allocation to the measured loop.
type samples struct {
	buf []time.Duration
	n   int
}

func newSamples() *samples { return &samples{buf: make([]time.Duration, 1<<15)} }

func (s *samples) add(d time.Duration) {
	s.buf[s.n%len(s.buf)] = d
	s.n++
}

// median returns the median of the kept durations.
func (s *samples) median() time.Duration {
	k := slices.Clone(s.buf[:min(s.n, len(s.buf))])
	if len(k) == 0 {
		return 0
	}
	slices.Sort(k)
	return k[len(k)/2]
}

// BenchmarkBuildAndSeal measures what a server pays per byte of history it
// sends sealed: a 256 KiB frame built from 1 KiB records taken from a
// 64 MiB source (more than the caches, as a log's memory map), sealed and
// flushed to a discarding writer.
//
//	path=scratch   built in a scratch buffer, then Conn.WriteFrame (seal into the writer's buffer)
//	path=in-place  built in Conn.BeginFrame's buffer, sealed there by Conn.EndFrame
func BenchmarkBuildAndSeal(b *testing.B) {
	const (
		frame  = 256 << 10
		record = 1 << 10
		source = 64 << 20
	)
	src := make([]byte, source)
	for i := range src {
		src[i] = byte(i * 7)
	}
	r := mustHandshake(b, hsOpts{size: KeySize128})
	build := func(dst []byte, pos *int) []byte {
		for range frame / record {
			dst = append(dst, src[*pos:*pos+record]...)
			*pos = (*pos + record) % source
		}
		return dst
	}
	b.Run("path=scratch", func(b *testing.B) {
		c := r.cli.Conn(proto.NewStream(discardRW{}, 0))
		var scratch []byte
		pos := 0
		b.SetBytes(frame)
		b.ReportAllocs()
		for b.Loop() {
			scratch = build(scratch[:0], &pos)
			if err := c.WriteFrame(scratch); err != nil {
				b.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("path=in-place", func(b *testing.B) {
		c := r.cli.Conn(proto.NewStream(discardRW{}, 0))
		pos := 0
		b.SetBytes(frame)
		b.ReportAllocs()
		for b.Loop() {
			if err := c.EndFrame(build(c.BeginFrame(), &pos)); err != nil {
				b.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

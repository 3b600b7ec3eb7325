package sigbatch

import (
	"fmt"
	"testing"

	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/trust"
)

// Benchmark sizes: a lone event, and a full pipelined batch.
var benchHashes = []int{1, 64}

// BenchmarkSign is one core signing one batch message: the client's cost
// per batch and key. ns/op is the time per signature.
func BenchmarkSign(b *testing.B) {
	for _, typ := range trust.KeyTypes() {
		k := testKey(b, typ, "bench")
		for _, n := range benchHashes {
			h := hashes(n, 1)
			b.Run(fmt.Sprintf("type=%v/hashes=%d", typ, n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(trust.BatchMessageSize(len("bench/chain"), n)))
				// ML-DSA signing time depends on the message (rejection
				// sampling): vary it, as real batches do.
				i := 0
				for b.Loop() {
					i++
					h[0], h[1], h[2] = byte(i), byte(i>>8), byte(i>>16)
					if _, err := k.SignBatch("bench/chain", h); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
			})
		}
	}
}

// BenchmarkVerify is one core verifying one batch signature with a reused
// buffer: the server's cost per signature.
func BenchmarkVerify(b *testing.B) {
	for _, typ := range trust.KeyTypes() {
		k := testKey(b, typ, "bench")
		for _, n := range benchHashes {
			h := hashes(n, 1)
			s, err := k.SignBatch("bench/chain", h)
			if err != nil {
				b.Fatal(err)
			}
			pub := k.Public()
			b.Run(fmt.Sprintf("type=%v/hashes=%d", typ, n), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(trust.BatchMessageSize(len("bench/chain"), n)))
				var buf []byte
				for b.Loop() {
					if buf, err = pub.VerifyBatchBuffer(buf, "bench/chain", h, s.Signature); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
			})
		}
	}
}

// BenchmarkVerifier is the pool's throughput: concurrent callers (4 per
// GOMAXPROCS) each verifying batches of jobs signatures, every signature
// over 64 event hashes. Compare sigs/s with BenchmarkVerify's one-core
// rate times GOMAXPROCS, and cpu-ns/sig (CPU time of the whole process per
// signature, less disturbed by other load) with its ns/op: the difference
// is the pool's overhead.
func BenchmarkVerifier(b *testing.B) {
	for _, typ := range []proto.KeyType{proto.KeyEd25519, proto.KeyMLDSA44} {
		k := testKey(b, typ, "bench")
		for _, jobs := range []int{1, 8, 64} {
			batch := make([]Job, jobs)
			for i := range batch {
				s, err := k.SignBatch("bench/chain", hashes(64, byte(i)))
				if err != nil {
					b.Fatal(err)
				}
				batch[i] = JobFor(k.Public(), "bench/chain", s)
			}
			b.Run(fmt.Sprintf("type=%v/jobs=%d", typ, jobs), func(b *testing.B) {
				v := NewVerifier(0)
				defer v.Close()
				b.ReportAllocs()
				b.SetBytes(int64(jobs * trust.BatchMessageSize(len("bench/chain"), 64)))
				b.SetParallelism(4)
				cpu0 := processCPU()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := v.Verify(batch); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N*jobs)/b.Elapsed().Seconds(), "sigs/s")
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*jobs), "cpu-ns/sig")
			})
		}
	}
}

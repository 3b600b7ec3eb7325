package sigbatch

import (
	"bytes"
	"crypto/sha3"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/trust"
)

func testKey(tb testing.TB, typ proto.KeyType, label string) *trust.PrivateKey {
	tb.Helper()
	h := sha3.NewSHAKE128()
	h.Write([]byte(label))
	k, err := trust.GenerateKey(typ, h)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func hashes(n int, tag byte) proto.HashList {
	l := make(proto.HashList, 0, n*proto.HashSize)
	for i := range n {
		var h proto.Hash
		h[0], h[1], h[2] = tag, byte(i), byte(i>>8)
		l = append(l, h[:]...)
	}
	return l
}

// goodJobs returns n valid jobs over keys of every type.
func goodJobs(tb testing.TB, n int) []Job {
	var keys []*trust.PrivateKey
	for _, typ := range trust.KeyTypes() {
		keys = append(keys, testKey(tb, typ, "jobs"))
	}
	jobs := make([]Job, n)
	for i := range jobs {
		k := keys[i%len(keys)]
		s, err := k.SignBatch("c/k", hashes(1+i%5, byte(i)))
		if err != nil {
			tb.Fatal(err)
		}
		jobs[i] = JobFor(k.Public(), "c/k", s)
	}
	return jobs
}

func newVerifier(t *testing.T, workers int) *Verifier {
	v := NewVerifier(workers)
	t.Cleanup(v.Close)
	return v
}

func TestVerifyGood(t *testing.T) {
	v := newVerifier(t, 0)
	if v.Workers() != runtime.GOMAXPROCS(0) {
		t.Fatalf("Workers() = %d, want GOMAXPROCS %d", v.Workers(), runtime.GOMAXPROCS(0))
	}
	for _, n := range []int{1, 2, 7, 100} {
		if err := v.Verify(goodJobs(t, n)); err != nil {
			t.Fatalf("%d good jobs: %v", n, err)
		}
	}
}

func TestVerifyFailures(t *testing.T) {
	v := newVerifier(t, 3)
	bad := func(jobs []Job, i int) []Job {
		jobs[i].Signature = bytes.Clone(jobs[i].Signature)
		jobs[i].Signature[3] ^= 1
		return jobs
	}
	cases := map[string]struct {
		jobs  []Job
		index int
		want  error
	}{
		"first":            {bad(goodJobs(t, 20), 0), 0, trust.ErrBadSignature},
		"middle":           {bad(goodJobs(t, 20), 11), 11, trust.ErrBadSignature},
		"last":             {bad(goodJobs(t, 20), 19), 19, trust.ErrBadSignature},
		"lowest of many":   {bad(bad(bad(goodJobs(t, 40), 33), 9), 25), 9, trust.ErrBadSignature},
		"only one":         {bad(goodJobs(t, 1), 0), 0, trust.ErrBadSignature},
		"unknown key":      {func() []Job { j := goodJobs(t, 8); j[5].Key = nil; return j }(), 5, ErrUnknownKey},
		"key hash differs": {func() []Job { j := goodJobs(t, 8); j[6].KeyHash[0] ^= 1; return j }(), 6, trust.ErrBadSignature},
		"other key":        {func() []Job { j := goodJobs(t, 8); j[2].Key = j[3].Key; return j }(), 2, trust.ErrBadSignature},
		"other chain":      {func() []Job { j := goodJobs(t, 8); j[4].ChainKey = "c/x"; return j }(), 4, trust.ErrBadSignature},
		"hash dropped":     {func() []Job { j := goodJobs(t, 8); j[2].Hashes = j[2].Hashes[32:]; return j }(), 2, trust.ErrBadSignature},
		"no hashes":        {func() []Job { j := goodJobs(t, 8); j[0].Hashes = nil; return j }(), 0, trust.ErrEmptyBatch},
		"empty signature":  {func() []Job { j := goodJobs(t, 8); j[7].Signature = nil; return j }(), 7, trust.ErrBadSignature},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := v.Verify(tc.jobs)
			var ve *VerifyError
			if !errors.As(err, &ve) || !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want a *VerifyError matching %v", err, tc.want)
			}
			if ve.Index != tc.index || ve.KeyHash != tc.jobs[tc.index].KeyHash {
				t.Fatalf("reported job %d key %x, want job %d key %x", ve.Index, ve.KeyHash, tc.index, tc.jobs[tc.index].KeyHash)
			}
		})
	}
	if err := v.Verify(nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Verify(nil) = %v, want ErrEmpty", err)
	}
}

// TestVerifyMatchesSequential: the pool's answer for random batches with
// random damage equals checking the jobs one by one in order.
func TestVerifyMatchesSequential(t *testing.T) {
	v := newVerifier(t, 2)
	pool := goodJobs(t, 64)
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		jobs := make([]Job, 1+r.IntN(30))
		for i := range jobs {
			jobs[i] = pool[r.IntN(len(pool))]
			if r.IntN(25) == 0 {
				jobs[i].Signature = bytes.Clone(jobs[i].Signature)
				jobs[i].Signature[r.IntN(len(jobs[i].Signature))] ^= byte(1 + r.IntN(255))
			}
		}
		want := -1
		for i, j := range jobs {
			if j.Key.VerifySignature(j.ChainKey, proto.Signature{KeyHash: j.KeyHash, Hashes: j.Hashes, Signature: j.Signature}) != nil {
				want = i
				break
			}
		}
		err := v.Verify(jobs)
		got := -1
		var ve *VerifyError
		if errors.As(err, &ve) {
			got = ve.Index
		} else if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if got != want {
			t.Fatalf("round %d: pool says job %d failed, one by one says %d", round, got, want)
		}
	}
}

// TestVerifyConcurrent: many callers share a small pool (run with -race).
func TestVerifyConcurrent(t *testing.T) {
	v := newVerifier(t, 2)
	jobs := goodJobs(t, 32)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				mine := append([]Job(nil), jobs[g:g+1+g%16]...)
				badAt := -1
				if g%3 == 0 {
					badAt = len(mine) / 2
					mine[badAt].Signature = make([]byte, len(mine[badAt].Signature))
				}
				err := v.Verify(mine)
				var ve *VerifyError
				switch {
				case badAt < 0 && err != nil:
					errs <- fmt.Errorf("caller %d: %v", g, err)
				case badAt >= 0 && (!errors.As(err, &ve) || ve.Index != badAt):
					errs <- fmt.Errorf("caller %d: %v, want job %d reported", g, err, badAt)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestVerifierClose(t *testing.T) {
	before := runtime.NumGoroutine()
	v := NewVerifier(4)
	if err := v.Verify(goodJobs(t, 9)); err != nil {
		t.Fatal(err)
	}
	v.Close()
	v.Close()
	if err := v.Verify(goodJobs(t, 3)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Verify after Close = %v, want ErrClosed", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after Close, %d before", n, before)
	}
}

// TestCloseDuringVerify: Close while callers are verifying neither panics
// nor strands a caller.
func TestCloseDuringVerify(t *testing.T) {
	v := NewVerifier(2)
	jobs := goodJobs(t, 16)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := v.Verify(jobs); err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("Verify: %v", err)
				}
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	v.Close()
	wg.Wait()
}

func TestBatchSign(t *testing.T) {
	a := testKey(t, proto.KeyEd25519, "a")
	b := testKey(t, proto.KeyMLDSA44, "b")
	h := hashes(4, 9)
	batch := NewBatch("c/k")
	if _, err := batch.Sign(); !errors.Is(err, trust.ErrEmptyBatch) {
		t.Fatalf("Sign(empty) = %v", err)
	}
	for round := range 2 {
		batch.Add(h.At(0), a)
		batch.Add(h.At(1), b, a, b) // b twice: signed once
		batch.Add(h.At(2))          // needs no signature
		batch.Add(h.At(3), b)
		if batch.Keys() != 2 {
			t.Fatalf("round %d: Keys() = %d, want 2", round, batch.Keys())
		}
		sigs, err := batch.Sign()
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			key    *trust.PrivateKey
			hashes proto.HashList
		}{{a, proto.MakeHashList(h.At(0), h.At(1))}, {b, proto.MakeHashList(h.At(1), h.At(3))}}
		if len(sigs) != len(want) {
			t.Fatalf("round %d: %d signatures, want %d", round, len(sigs), len(want))
		}
		jobs := make([]Job, len(sigs))
		for i, w := range want {
			if sigs[i].KeyHash != w.key.Hash() || !bytes.Equal(sigs[i].Hashes, w.hashes) {
				t.Fatalf("round %d: signature %d by %x over %d hashes", round, i, sigs[i].KeyHash, sigs[i].Hashes.Len())
			}
			jobs[i] = JobFor(w.key.Public(), "c/k", sigs[i])
		}
		v := newVerifier(t, 1)
		if err := v.Verify(jobs); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		batch.Reset()
	}
	sigs, err := Sign("c/k", h, a, b)
	if err != nil || len(sigs) != 2 || sigs[1].KeyHash != b.Hash() {
		t.Fatalf("Sign = %d signatures, %v", len(sigs), err)
	}
	if _, err := Sign("c/k", h); !errors.Is(err, trust.ErrEmptyBatch) {
		t.Fatalf("Sign(no keys) = %v", err)
	}
	if _, err := Sign("c/k", nil, a); !errors.Is(err, trust.ErrEmptyBatch) {
		t.Fatalf("Sign(no hashes) = %v", err)
	}
}

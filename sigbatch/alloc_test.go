package sigbatch

import (
	"testing"

	"github.com/atedb/atedb/proto"
)

// TestVerifyAllocs: verifying a batch of valid Ed25519 signatures does not
// allocate in steady state (the call state and message buffers are
// reused).
func TestVerifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	k := testKey(t, proto.KeyEd25519, "allocs")
	jobs := make([]Job, 16)
	for i := range jobs {
		s, err := k.SignBatch("c/k", hashes(8, byte(i)))
		if err != nil {
			t.Fatal(err)
		}
		jobs[i] = JobFor(k.Public(), "c/k", s)
	}
	v := NewVerifier(2)
	defer v.Close()
	for _, n := range []int{1, len(jobs)} {
		if a := testing.AllocsPerRun(50, func() {
			if err := v.Verify(jobs[:n]); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("Verify of %d signatures: %v allocations, want 0", n, a)
		}
	}
	var buf []byte
	if a := testing.AllocsPerRun(50, func() {
		var err error
		if buf, err = k.Public().VerifyBatchBuffer(buf, "c/k", jobs[0].Hashes, jobs[0].Signature); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("VerifyBatchBuffer: %v allocations, want 0", a)
	}
}

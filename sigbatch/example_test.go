package sigbatch_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/sigbatch"
	"github.com/atedb/atedb/trust"
)

// A client signs a batch of three events with the keys each needs; the
// server verifies the signature records on its shared pool.
func Example() {
	alice, _ := trust.NewPrivateKey(proto.KeyEd25519, bytes.Repeat([]byte{1}, trust.SeedSize))
	bob, _ := trust.NewPrivateKey(proto.KeyMLDSA44, bytes.Repeat([]byte{2}, trust.SeedSize))
	h1, h2, h3 := proto.Hash{1}, proto.Hash{2}, proto.Hash{3} // event hashes (proto.EventHash)

	b := sigbatch.NewBatch("app/db")
	b.Add(h1, alice)
	b.Add(h2, alice, bob)
	b.Add(h3, bob)
	sigs, _ := b.Sign()
	fmt.Println(len(sigs), "signatures for 3 events")

	v := sigbatch.NewVerifier(0)
	defer v.Close()
	keys := map[proto.Hash]*trust.PublicKey{alice.Hash(): alice.Public(), bob.Hash(): bob.Public()}
	var jobs []sigbatch.Job
	for _, s := range sigs {
		jobs = append(jobs, sigbatch.JobFor(keys[s.KeyHash], "app/db", s))
	}
	fmt.Println(v.Verify(jobs))

	jobs[1].ChainKey = "app/other" // replayed on another chain
	var ve *sigbatch.VerifyError
	err := v.Verify(jobs)
	fmt.Println(errors.As(err, &ve), ve.Index, errors.Is(err, trust.ErrBadSignature))
	// Output:
	// 2 signatures for 3 events
	// <nil>
	// true 1 true
}

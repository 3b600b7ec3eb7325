package sigbatch

import (
	"bytes"
	"errors"
	"testing"

	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/trust"
)

// fuzzRegistry is the fixed set of keys FuzzVerifyEvent's chain knows.
var fuzzRegistry = func() map[proto.Hash]*trust.PrivateKey {
	m := map[proto.Hash]*trust.PrivateKey{}
	for _, typ := range trust.KeyTypes() {
		k, err := trust.NewPrivateKey(typ, bytes.Repeat([]byte{byte(typ) + 40}, trust.SeedSize))
		if err != nil {
			panic(err)
		}
		m[k.Hash()] = k
	}
	return m
}()

// FuzzVerifyEvent decodes an event (as the server receives it), turns its
// signature records into jobs with the chain's registered keys, and checks
// that the pool never panics and reports exactly what verifying the records
// one by one in order reports.
func FuzzVerifyEvent(f *testing.F) {
	v := NewVerifier(2)
	f.Cleanup(v.Close)
	h := proto.MakeHashList(proto.Hash{1}, proto.Hash{2}, proto.Hash{3})
	var keys []*trust.PrivateKey
	for _, k := range fuzzRegistry {
		keys = append(keys, k)
	}
	sigs, err := Sign("fuzz/chain", h, keys...)
	if err != nil {
		f.Fatal(err)
	}
	for i := range sigs {
		e := proto.Event{Signatures: sigs[i : i+1]}
		b, err := e.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b) // one valid record of each key type
	}
	all, _ := (&proto.Event{Signatures: sigs}).AppendBinary(nil)
	f.Add(all) // every type in one event
	f.Fuzz(func(t *testing.T, b []byte) {
		var e proto.Event
		if e.Decode(b) != nil || len(e.Signatures) == 0 {
			return
		}
		jobs := make([]Job, len(e.Signatures))
		want := -1
		for i, s := range e.Signatures {
			var pub *trust.PublicKey
			if k, ok := fuzzRegistry[s.KeyHash]; ok {
				pub = k.Public()
			}
			jobs[i] = JobFor(pub, "fuzz/chain", s)
			if want < 0 && (pub == nil || pub.VerifySignature("fuzz/chain", s) != nil) {
				want = i
			}
		}
		err := v.Verify(jobs)
		var ve *VerifyError
		switch {
		case want < 0 && err != nil:
			t.Fatalf("pool refused what verifies one by one: %v", err)
		case want >= 0 && (!errors.As(err, &ve) || ve.Index != want):
			t.Fatalf("pool says %v, one by one says record %d fails", err, want)
		}
	})
}

// Package sigbatch amortises asymmetric signatures over batches of events:
// the client side signs many event hashes with one signature per key, the
// server side verifies many signatures in parallel on a bounded pool of
// workers shared by every chain. It knows nothing about chains beyond the
// chain key that signatures are bound to; the signed bytes are package
// trust's batch layout (docs/TRUST.md).
//
// # Signing (client)
//
//	b := sigbatch.NewBatch("app/db")
//	for _, e := range events {           // encoded events of one Append
//		h, _ := proto.EventHash(e)
//		b.Add(h, keysFor(e)...)          // the keys this event needs
//	}
//	sigs, err := b.Sign()                // one proto.Signature per key
//	// put sigs (and any public keys the chain does not know yet) in a
//	// key-only event in front of the batch
//
// # Verifying (server)
//
// One [Verifier] per process; every chain's write path calls
// [Verifier.Verify] before it takes the chain's lock, so verification of
// one chain's batch never holds up another chain, and the lock covers only
// the authority decision and the append:
//
//	v := sigbatch.NewVerifier(0)         // GOMAXPROCS workers
//	defer v.Close()
//	jobs := make([]sigbatch.Job, 0, n)
//	for _, s := range signatureRecords {
//		key, _ := state.PublicKey(s.KeyHash) // nil if unregistered: reported as ErrUnknownKey
//		jobs = append(jobs, sigbatch.JobFor(key, chainKey, s))
//	}
//	if err := v.Verify(jobs); err != nil {
//		var ve *sigbatch.VerifyError   // ve.Index: the lowest failing job
//		...
//	}
//
// Verify never reports success for zero jobs ([ErrEmpty]) or for a
// signature over zero hashes. The caller works through its own jobs and
// idle workers join in (one helper token per worker, not one task per
// job), so a lone signature costs no hand-off and a large batch uses every
// core.
//
// Ed25519 verification is one signature at a time (crypto/ed25519): a
// batch-verification algorithm was measured and not adopted, because the
// well-kept implementations accept a different set of signatures
// (docs/TRUST.md §4).
package sigbatch

// Package trust decides who may write what in a chain: signing keys of the
// types proto names (Ed25519 and ML-DSA-44/65/87), the signed byte layouts
// of batch signatures and centralized-trust proofs, and the tree-authority
// rules with the state they keep. It does no I/O (package trust/keyfile
// reads and writes key files) and knows nothing about connections or logs.
// docs/TRUST.md is the specification, for client authors in any language.
//
// # Keys
//
// A [PrivateKey] is derived from a 32-byte seed; its [PublicKey] is named
// by its key hash, SHA-256(type byte || raw public key), the hash that write
// authorisations, signature records and sign-with hints carry. Keys have a
// text form that names their type (see [ParsePrivateKeyText]); the server
// identity keys of package kex are the same keys.
//
// # Signatures
//
// Nothing is ever signed without a context string in front, and no context
// string is a prefix of another:
//
//	batch signature   = "atedb batch v1" 00 || uvarint(len(chain key)) || chain key || uvarint(n) || n × event hash
//	centralized proof = "atedb prove v1" 00 || conversation nonce (32) || uvarint(len(chain key)) || chain key
//
// So a batch signature proves nothing on another chain, a proof proves
// nothing on another connection or chain, and neither can be replayed as
// the other or as a kex handshake signature.
//
//	k, _ := trust.GenerateKey(proto.KeyEd25519, nil)
//	sig, _ := k.SignBatch("app/db", proto.MakeHashList(h1, h2)) // a proto.Signature for an event
//	err := k.Public().VerifySignature("app/db", sig)             // nil
//
// # Tree authority
//
// A [State] holds a chain's root key hashes, every live object's stored
// write authorisation and parent, and the registered public keys. A batch is
// checked inside a [Tx], so a refused batch changes nothing:
//
//	tx := st.Begin()
//	defer tx.Abort()
//	for i := range events {
//		if err := tx.Apply(&events[i], signers[i]); err != nil {
//			return i, err // a *RefusalError naming the rule and the key hash
//		}
//	}
//	tx.Commit()
//
// [State.AppendBinary] and [DecodeState] checkpoint a State: versioned,
// checksummed, canonical.
package trust

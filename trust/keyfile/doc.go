// Package keyfile reads and writes trust's key files: the text formats of
// package trust (docs/TRUST.md §1), a private key file with mode 0600 and
// its public key beside it with the suffix ".pub". It is package trust's
// only I/O, kept apart so trust itself stays pure.
//
// Loading a private key file that the group or others may access (any of
// the mode bits 0077 set) is refused with a [*ModeError], before anything
// is read from it. Writing never replaces an existing file.
//
//	k, err := trust.GenerateKey(proto.KeyEd25519, nil)
//	if err != nil { ... }
//	if err := keyfile.WritePrivateKey("atedb_ed25519", k); err != nil { ... }
//	if err := keyfile.WritePublicKey(keyfile.PublicPath("atedb_ed25519"), k.Public()); err != nil { ... }
//	k, err = keyfile.LoadPrivateKey("atedb_ed25519")      // mode 0600 required
//	pub, err := keyfile.LoadPublicKey("atedb_ed25519.pub") // any mode
package keyfile

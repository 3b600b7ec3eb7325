// Package kex is atedb's wire encryption: a post-quantum key exchange run
// right after the plain hello / hello-ack, and AES-GCM sealed frames after
// it.
//
// # Handshake
//
// The key size negotiated in the hello-ack ([Negotiate]: the larger of what
// the client wants and the server's floor) selects ML-KEM-512, -768 or
// -1024 (FIPS 203, github.com/cloudflare/circl) and AES-128, -192 or
// -256-GCM. The server makes a fresh ML-KEM key pair for every connection,
// so nothing stored can decrypt a recorded session (forward secrecy).
//
//	client                                             server
//	Hello            ---- plain (proto) ---->
//	                 <--- plain (proto) -----          HelloAck (size, nonce)
//	                 <---------------------------      KexServerHello: ML-KEM public key,
//	                                                   [identity key, signature of transcript]
//	KexClientFinish  ---------------------------->     (ML-KEM ciphertext)
//	confirm (sealed, c2s frame 0) -------------->
//	                 <-----------------------------    confirm (sealed, s2c frame 0)
//	data (sealed, c2s frames 1...) <---------------->  data (sealed, s2c frames 1...)
//
// Both sides hash the whole transcript (hello, hello-ack, both kex
// messages) and derive one traffic secret per direction with HKDF-SHA256
// over the ML-KEM shared secret, salted with that hash: a man in the middle
// who changes any byte (for instance the key size the client asked for)
// makes the key confirmation fail, and with a server identity the client
// catches it at the signature already. The key confirmation frames make a
// tampered handshake fail inside [ServerHandshake] / [ClientHandshake]
// rather than at the first data frame.
//
// A server may hold a long-term [Identity] (Ed25519 or ML-DSA) that signs
// the transcript; clients can pin its [Fingerprint] and then refuse any
// other server ([ClientConfig.PinnedFingerprint]).
//
// # Sealed frames
//
// Each sealed frame is one proto frame whose body is the AES-GCM
// ciphertext of the plaintext body followed by the 16-byte tag:
//
//	+----------------+---------------------------+-----------------+
//	| length u32 LE  | ciphertext (len(plain) B) | tag (16 B)      |
//	+----------------+---------------------------+-----------------+
//	nonce (implicit, never sent) = 00 00 00 00 || frame counter u64 LE
//
// The counter starts at 0 in each direction (frame 0 is the key
// confirmation) and is never sent: TCP delivers frames in order, so a
// replayed, reordered, dropped, truncated or reflected frame fails to
// open, and the first failure kills the session. Each direction's key is
// ratcheted with HKDF after [RekeyAfterFrames] frames or [RekeyAfterBytes]
// bytes, at the same frame on both ends, and a direction refuses to go on
// at [RejectAfterFrames]. The byte-exact description is in
// docs/PROTOCOL.md §11.
//
// [Conn.ReadFrame] reads and opens the next frame. A receiver that reads
// raw frames itself (for instance on one goroutine, handing them to
// another that decrypts them, so both run on their own core) opens each
// with [Conn.OpenFrame], in the order they arrived: the same counters,
// ratchets and sticky failure apply.
//
// # Usage
//
// The server, after writing its HelloAck:
//
//	size := kex.Negotiate(kex.KeySize(hello.KeySize), floor) // already in the HelloAck
//	if size != kex.KeySizeNone {
//		s, err := kex.ServerHandshake(fc, helloBody, helloAckBody, size, kex.ServerConfig{Identity: id})
//		if err != nil {
//			return err // close the connection
//		}
//		defer s.Close()
//		fc = s.Conn(fc) // every frame from now on is sealed
//	}
//
// The client, after reading the HelloAck:
//
//	if err := kex.CheckNegotiated(wanted, kex.KeySize(ack.KeySize)); err != nil {
//		return err // the server refused the encryption asked for
//	}
//	if size := kex.KeySize(ack.KeySize); size != kex.KeySizeNone {
//		s, err := kex.ClientHandshake(fc, helloBody, helloAckBody, size, kex.ClientConfig{PinnedFingerprint: pin})
//		if err != nil {
//			return err
//		}
//		defer s.Close()
//		fc = s.Conn(fc)
//	}
//
// Bound the handshake with a deadline on the network connection: kex does
// no timing of its own.
package kex

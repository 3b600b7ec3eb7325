package proto

import (
	"bytes"
	"testing"
)

func hashOf(b byte) Hash {
	var h Hash
	for i := range h {
		h[i] = b
	}
	return h
}

func ed25519Key(b byte) PublicKey {
	return PublicKey{Type: KeyEd25519, Key: bytes.Repeat([]byte{b}, 32)}
}

// fullEvent returns an event with every field set.
func fullEvent() *Event {
	return &Event{
		DataKey:         0x1122334455667788,
		Tombstone:       true,
		Timestamp:       1_700_000_000_123_456_789,
		Parent:          42,
		WriteAuth:       WriteAuth{Mode: AuthAnyOf, Keys: MakeHashList(hashOf(1), hashOf(2))},
		PublicKeys:      []PublicKey{ed25519Key(7), ed25519Key(8)},
		Signatures:      []Signature{{KeyHash: hashOf(3), Hashes: MakeHashList(hashOf(4), hashOf(5)), Signature: bytes.Repeat([]byte{6}, 64)}},
		SignWith:        MakeHashList(hashOf(8)),
		TypeName:        []byte("app.Todo"),
		Confidentiality: []byte{0xde, 0xad},
		IV:              bytes.Repeat([]byte{0x11}, 16),
		Author:          []byte("joe@example.com"),
		Data:            []byte(`{"title":"buy milk"}`),
	}
}

// dataEvent returns a typical data event with a payload of n bytes.
func dataEvent(key uint64, n int) *Event {
	return &Event{
		DataKey:   key,
		Timestamp: 1_700_000_000_000_000_000 + int64(key),
		Parent:    7,
		WriteAuth: WriteAuth{Mode: AuthEveryone},
		SignWith:  MakeHashList(hashOf(8)),
		TypeName:  []byte("app.Item"),
		Data:      bytes.Repeat([]byte{'x'}, n),
	}
}

func mustEncodeEvent(t testing.TB, e *Event) []byte {
	t.Helper()
	b, err := e.AppendBinary(nil)
	if err != nil {
		t.Fatalf("encode event: %v", err)
	}
	return b
}

// sampleMessages returns at least one message of every type, with fields
// set to non-default values where the type allows it.
func sampleMessages(t testing.TB) []Message {
	ev1 := mustEncodeEvent(t, dataEvent(1, 10))
	ev2 := mustEncodeEvent(t, fullEvent())
	events := AppendEventsItem(nil, 100, 1_700_000_000_000_000_001, ev1)
	events = AppendEventsItem(events, 101, 1_700_000_000_000_000_002, ev2)
	var nonce [NonceSize]byte
	for i := range nonce {
		nonce[i] = byte(i)
	}
	return []Message{
		&Hello{Version: ProtocolVersion, Features: FeatureServerIdentity, KeySize: 256, Route: "/db", ChainKey: "example.com/joe/mydb"},
		&Hello{Version: ProtocolVersion, Route: "/db"},
		&HelloAck{Version: ProtocolVersion, KeySize: 128, Features: FeatureServerIdentity, Nonce: nonce},
		&HelloAck{Version: ProtocolVersion, Code: CodeTooManyConnections, Reason: "limit 1000"},
		&Ping{ID: 1 << 40},
		&Pong{ID: 1 << 40},
		&Fatal{Code: CodeMalformed, Reason: "bad frame"},
		&Error{Channel: 3, Request: TypeSubscribe, Code: CodeAlreadySubscribed, Reason: "twice"},
		&Open{Channel: 1, ChainKey: "example.com/joe/other"},
		&Opened{Channel: 1},
		&Close{Channel: 300},
		&Closed{Channel: 300},
		&Subscribe{Channel: 0, History: true, Live: true, From: 12345},
		&Subscribe{Channel: 2, History: true, FromTime: true, From: 1_700_000_000_000_000_000},
		&Subscribe{Channel: 2, Live: true},
		&StartOfHistory{Channel: 1, Integrity: IntegrityDistributed, Head: 1000, Count: 900, RootKeys: []PublicKey{ed25519Key(1), ed25519Key(2)}},
		&StartOfHistory{Channel: 1, Integrity: IntegrityCentralized, RootKeys: []PublicKey{}},
		&Events{Channel: 5, Items: events},
		&EndOfHistory{Channel: 5, Next: 102},
		&Unsubscribe{Channel: 5},
		&Unsubscribed{Channel: 5, Code: CodeLagging, Next: 77, Reason: "slow"},
		&Unsubscribed{Channel: 5, Next: 80},
		&Append{Channel: 1, CommitID: 9, HasCondition: true, ExpectedNext: 102, Events: [][]byte{ev1, ev2}},
		&Append{Channel: 1, CommitID: 10, Events: [][]byte{}},
		&Append{Channel: 1, CommitID: 11, Restart: true, Events: [][]byte{ev1}},
		&Append{Channel: 1, CommitID: 12, Restart: true, HasCondition: true, ExpectedNext: 104, Events: [][]byte{ev2}},
		&Confirmed{Channel: 1, CommitID: 9, Offsets: []uint64{102, 103, 104, 50, 105, 1<<64 - 1, 0}},
		&Confirmed{Channel: 1, CommitID: 10, Offsets: []uint64{}},
		&CommitError{Channel: 1, CommitID: 9, Code: CodeConflict, Index: -1, Head: 110, Reason: "expected 102"},
		&CommitError{Channel: 1, CommitID: 9, Code: CodeValidationFailed, Index: 1, Head: 110, Reason: "bad signature"},
		&CommitError{Channel: 1, CommitID: 10, Code: CodeAborted, Index: -1, Head: 110, Reason: "an earlier batch (9) of this writer failed"},
		&Prove{Channel: 0, ID: 4, Key: ed25519Key(5), Signature: bytes.Repeat([]byte{1}, 64)},
		&ProveResult{Channel: 0, ID: 4},
		&ProveResult{Channel: 0, ID: 5, Code: CodeDenied, Reason: "bad signature"},
		&Lock{Channel: 1, ID: 6, Key: 0xfeedface},
		&Unlock{Channel: 1, ID: 7, Key: 0xfeedface},
		&LockResult{Channel: 1, ID: 6, Key: 0xfeedface},
		&LockResult{Channel: 1, ID: 7, Key: 0xfeedface, Code: CodeNotLockOwner, Reason: "held by another connection"},
	}
}

package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
)

// allocatedBy returns the bytes allocated while f runs.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDecodeAllocationBounded feeds the decoders the inputs that allocate
// the most per input byte (many minimal elements) and checks that what they
// allocate stays within the input size plus a fixed 2 MiB, whatever the
// counts claim.
func TestDecodeAllocationBounded(t *testing.T) {
	const budget = 2 << 20
	manyEvents := cat([]byte{byte(TypeAppend), 0, 1, 0}, binary.AppendUvarint(nil, MaxBatchEvents), make([]byte, MaxBatchEvents))
	manyOffsets := cat([]byte{byte(TypeConfirmed), 0, 1}, binary.AppendUvarint(nil, MaxBatchEvents), make([]byte, MaxBatchEvents))
	const nKeys = 30000
	rootKeys := cat([]byte{byte(TypeStartHistory), 0, 1, 0, 0}, binary.AppendUvarint(nil, nKeys),
		bytes.Repeat(cat([]byte{byte(KeyEd25519), 32}, make([]byte, 32)), nKeys))
	items := AppendEventsHeader(nil, 0)
	for i := range 50000 {
		items = AppendEventsItem(items, uint64(i), 0, nil)
	}
	const nSigs = 15000
	sig := cat(bytes.Repeat([]byte{1}, 32), []byte{1}, bytes.Repeat([]byte{2}, 32), []byte{1, 9})
	sigEvent := rawEvent(1, nil, cat([]byte{tagSignatures}, binary.AppendUvarint(nil, nSigs), bytes.Repeat(sig, nSigs)))
	pkEvent := rawEvent(1, nil, cat([]byte{tagPublicKeys}, binary.AppendUvarint(nil, nKeys),
		bytes.Repeat(cat([]byte{byte(KeyEd25519), 32}, make([]byte, 32)), nKeys)))

	msgs := map[string][]byte{
		"Append with 65536 empty events":    manyEvents,
		"Confirmed with 65536 offsets":      manyOffsets,
		"StartOfHistory with 30000 keys":    rootKeys,
		"Events with 50000 empty items":     items,
		"Append claiming 2^40 events":       cat([]byte{byte(TypeAppend), 0, 1, 0}, binary.AppendUvarint(nil, 1<<40), make([]byte, 100)),
		"Append with MaxBatchEvents+1":      cat([]byte{byte(TypeAppend), 0, 1, 0}, binary.AppendUvarint(nil, MaxBatchEvents+1), make([]byte, MaxBatchEvents+1)),
		"Confirmed with MaxBatchEvents+1":   cat([]byte{byte(TypeConfirmed), 0, 1}, binary.AppendUvarint(nil, MaxBatchEvents+1), make([]byte, MaxBatchEvents+1)),
		"StartOfHistory claiming 2^50 keys": cat([]byte{byte(TypeStartHistory), 0, 1, 0, 0}, binary.AppendUvarint(nil, 1<<50)),
	}
	for name, body := range msgs {
		t.Run(name, func(t *testing.T) {
			var err error
			got := allocatedBy(func() { _, err = DecodeMessage(body) })
			if got > uint64(len(body))+budget {
				t.Fatalf("decoding %d bytes allocated %d bytes (err %v)", len(body), got, err)
			}
			var de *DecodeError
			if err != nil && !errors.As(err, &de) {
				t.Fatalf("untyped error %v", err)
			}
		})
	}
	for name, enc := range map[string][]byte{"15000 signatures": sigEvent, "30000 public keys": pkEvent} {
		t.Run("event with "+name, func(t *testing.T) {
			var e Event
			var err error
			got := allocatedBy(func() { err = e.Decode(enc) })
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got > uint64(len(enc))+budget {
				t.Fatalf("decoding %d bytes allocated %d bytes", len(enc), got)
			}
		})
	}
	// The limits are enforced, with typed errors.
	if _, err := DecodeMessage(msgs["Append with MaxBatchEvents+1"]); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized Append: got %v, want ErrInvalid", err)
	}
	if _, err := (&Append{Events: make([][]byte, MaxBatchEvents+1)}).AppendBinary(nil); err == nil {
		t.Error("encoding an Append above MaxBatchEvents succeeded")
	}
}

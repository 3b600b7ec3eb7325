package sigbatch

import (
	"fmt"

	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/trust"
)

// Batch gathers the event hashes of one batch and the keys each must be
// signed with, and signs them with one signature per key ([Batch.Sign]).
// The zero value is not usable; use [NewBatch]. Not safe for concurrent
// use.
type Batch struct {
	chainKey string
	keys     []*trust.PrivateKey // in order of first use
	hashes   []proto.HashList    // hashes[i]: what keys[i] signs, in order added
}

// NewBatch returns an empty batch for the chain chainKey.
func NewBatch(chainKey string) *Batch { return &Batch{chainKey: chainKey} }

// Add records that the event whose hash is h must be signed by each of
// keys (an event with no keys needs no signature and is not recorded). A
// key given twice for one event signs it once.
func (b *Batch) Add(h proto.Hash, keys ...*trust.PrivateKey) {
	for i, k := range keys {
		dup := false
		for _, prev := range keys[:i] {
			dup = dup || prev.Hash() == k.Hash()
		}
		if dup {
			continue
		}
		j := b.index(k)
		b.hashes[j] = append(b.hashes[j], h[:]...)
	}
}

// index returns the slot of k, adding it.
func (b *Batch) index(k *trust.PrivateKey) int {
	for i, have := range b.keys {
		if have.Hash() == k.Hash() {
			return i
		}
	}
	b.keys = append(b.keys, k)
	if len(b.hashes) < cap(b.hashes) { // reuse a slot's capacity after Reset
		b.hashes = b.hashes[:len(b.hashes)+1]
		b.hashes[len(b.hashes)-1] = b.hashes[len(b.hashes)-1][:0]
	} else {
		b.hashes = append(b.hashes, nil)
	}
	return len(b.keys) - 1
}

// Keys returns how many distinct keys the batch will sign with: the number
// of signatures [Batch.Sign] makes.
func (b *Batch) Keys() int { return len(b.keys) }

// Sign returns one signature record per key, in the order the keys were
// first added, each over the hashes added for it in the order they were
// added (the trust batch layout, bound to the chain key). The records go
// into an event placed before the events they cover. An empty batch
// returns an error matching trust.ErrEmptyBatch. The batch can be reused
// after [Batch.Reset].
func (b *Batch) Sign() ([]proto.Signature, error) {
	if len(b.keys) == 0 {
		return nil, fmt.Errorf("sigbatch: sign: %w", trust.ErrEmptyBatch)
	}
	out := make([]proto.Signature, len(b.keys))
	for i, k := range b.keys {
		s, err := k.SignBatch(b.chainKey, b.hashes[i])
		if err != nil {
			return nil, fmt.Errorf("sigbatch: sign with %s: %w", trust.FormatKeyHash(k.Hash()), err)
		}
		out[i] = s
	}
	return out, nil
}

// Reset empties the batch, keeping its chain key and capacity.
func (b *Batch) Reset() {
	clear(b.keys)
	b.keys, b.hashes = b.keys[:0], b.hashes[:0]
}

// Sign signs the same event hashes with each key: one signature record per
// key (see [Batch.Sign]).
func Sign(chainKey string, hashes proto.HashList, keys ...*trust.PrivateKey) ([]proto.Signature, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("sigbatch: sign: no keys: %w", trust.ErrEmptyBatch)
	}
	out := make([]proto.Signature, 0, len(keys))
	for _, k := range keys {
		s, err := k.SignBatch(chainKey, hashes)
		if err != nil {
			return nil, fmt.Errorf("sigbatch: sign with %s: %w", trust.FormatKeyHash(k.Hash()), err)
		}
		out = append(out, s)
	}
	return out, nil
}

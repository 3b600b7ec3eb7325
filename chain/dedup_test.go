package chain

import (
	"math/rand/v2"
	"testing"
)

func dedupHash(i int) Hash {
	var h Hash
	h[0], h[1], h[2] = byte(i), byte(i>>8), byte(i>>16)
	return h
}

// count returns the hashes the window's table holds.
func (d *dedupWindow) count() int {
	n := 0
	for _, v := range d.slots {
		if v.idx != 0 {
			n++
		}
	}
	return n
}

func TestDedupWindowForgetsOldestAndGrowsLazily(t *testing.T) {
	var d dedupWindow
	d.init(4)
	if cap(d.ring) != 0 || len(d.slots) != 0 {
		t.Fatalf("a new window reserved %d entries and %d slots, want 0 (it grows with use)", cap(d.ring), len(d.slots))
	}
	for i := range 10 {
		d.add(dedupHash(i), uint64(100+i))
		if got, want := d.count(), min(i+1, 4); got != want {
			t.Fatalf("after %d adds the window holds %d hashes, want %d", i+1, got, want)
		}
	}
	for i := range 10 {
		off, ok := d.lookup(dedupHash(i))
		if want := i >= 6; ok != want || (ok && off != uint64(100+i)) {
			t.Errorf("lookup(%d) = %d, %v; want found=%v at %d", i, off, ok, want, 100+i)
		}
	}
}

func TestDedupWindowDisabled(t *testing.T) {
	var d dedupWindow
	d.init(0)
	d.add(dedupHash(1), 1)
	if _, ok := d.lookup(dedupHash(1)); ok {
		t.Fatal("a window of size 0 remembered a hash")
	}
}

// refWindow is the reference: a map and a ring, the newest offset of a
// repeated hash winning, a hash forgotten when its newest entry leaves.
type refWindow struct {
	n    int
	m    map[Hash]int // hash -> ring index of its newest entry
	ring []dedupEntry
	pos  int
}

func (r *refWindow) add(h Hash, off uint64) {
	idx := r.pos
	if len(r.ring) < r.n {
		idx = len(r.ring)
		r.ring = append(r.ring, dedupEntry{})
	} else {
		if old := r.ring[idx].h; r.m[old] == idx {
			delete(r.m, old)
		}
		r.pos = (r.pos + 1) % r.n
	}
	r.ring[idx] = dedupEntry{h, off}
	r.m[h] = idx
}

func (r *refWindow) lookup(h Hash) (uint64, bool) {
	idx, ok := r.m[h]
	if !ok {
		return 0, false
	}
	return r.ring[idx].off, true
}

// TestDedupWindowMatchesReference cross-checks the open-addressing table
// (growth, eviction by backward shift in probe runs, repeated hashes)
// against a map, over random operations on small and larger windows.
func TestDedupWindowMatchesReference(t *testing.T) {
	for _, n := range []int{1, 3, 20, 100, 1000} {
		rng := rand.New(rand.NewPCG(uint64(n), 7))
		var d dedupWindow
		d.init(n)
		ref := refWindow{n: n, m: map[Hash]int{}}
		universe := 3 * n // hashes repeat, so some are re-added while still in the window
		for op := range 40 * n {
			h := dedupHash(rng.IntN(universe))
			if rng.IntN(3) > 0 {
				off := uint64(op)
				d.add(h, off)
				ref.add(h, off)
			}
			got, gok := d.lookup(h)
			want, wok := ref.lookup(h)
			if got != want || gok != wok {
				t.Fatalf("n=%d op %d: lookup = %d, %v; want %d, %v", n, op, got, gok, want, wok)
			}
			if d.count() != len(ref.m) {
				t.Fatalf("n=%d op %d: table holds %d hashes, want %d", n, op, d.count(), len(ref.m))
			}
		}
		for i := range universe {
			h := dedupHash(i)
			got, gok := d.lookup(h)
			want, wok := ref.lookup(h)
			if got != want || gok != wok {
				t.Fatalf("n=%d final lookup(%d) = %d, %v; want %d, %v", n, i, got, gok, want, wok)
			}
		}
	}
}

// BenchmarkDedupWindow is the steady state of a full default window: one
// lookup and one add (evicting the oldest) per appended event.
func BenchmarkDedupWindow(b *testing.B) {
	const n = 1 << 16
	var d dedupWindow
	d.init(n)
	rng := rand.New(rand.NewPCG(1, 2))
	hash := func() Hash {
		var h Hash
		for i := 0; i < len(h); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				h[i+j] = byte(v >> (8 * j))
			}
		}
		return h
	}
	for i := range n {
		d.add(hash(), uint64(i))
	}
	hs := make([]Hash, 4096)
	for i := range hs {
		hs[i] = hash()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h := hs[i%len(hs)]
		h[31] = byte(i >> 12) // new hashes every round
		h[30] = byte(i >> 20)
		if _, ok := d.lookup(h); !ok {
			d.add(h, uint64(i))
		}
		i++
	}
}

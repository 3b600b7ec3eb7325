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

// TestDedupWindowTruncate gives offsets back, in a window that is still
// growing and in a full one that wraps: the truncated hashes are forgotten,
// the older ones kept, and later adds (at the reused offsets) behave as
// they would have without the truncation, checked against a reference map.
func TestDedupWindowTruncate(t *testing.T) {
	cases := map[string]struct {
		n, adds   int
		from      uint64 // truncate offsets >= from (offsets are 0..adds-1)
		readd     int    // adds after the truncation
		wantCount int
	}{
		"growing":              {n: 100, adds: 50, from: 40, readd: 5, wantCount: 45},
		"growing to empty":     {n: 100, adds: 20, from: 0, readd: 3, wantCount: 3},
		"full, wrapped":        {n: 16, adds: 40, from: 35, readd: 2, wantCount: 13},
		"full, all given back": {n: 16, adds: 40, from: 0, readd: 20, wantCount: 16},
		"full, refill":         {n: 16, adds: 40, from: 30, readd: 30, wantCount: 16},
		"nothing to give back": {n: 16, adds: 40, from: 40, readd: 0, wantCount: 16},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var d dedupWindow
			d.init(tc.n)
			for i := range tc.adds {
				d.add(dedupHash(i), uint64(i))
			}
			d.truncate(tc.from)
			// Re-add at the given-back offsets, with other hashes.
			next := min(uint64(tc.adds), tc.from)
			// Window content as a reference: the last n live offsets.
			type ent struct {
				h   int
				off uint64
			}
			var live []ent
			for i := range tc.adds {
				if uint64(i) < tc.from {
					live = append(live, ent{i, uint64(i)})
				}
			}
			if len(live) > tc.n {
				live = live[len(live)-tc.n:]
			}
			for j := range tc.readd {
				h := 1000 + j
				d.add(dedupHash(h), next)
				live = append(live, ent{h, next})
				next++
			}
			// A full window that lost entries to truncate refills before it
			// evicts again, so it may hold fewer than n; never entries that
			// were truncated.
			for i := range tc.adds {
				off, ok := d.lookup(dedupHash(i))
				if uint64(i) >= tc.from && ok {
					t.Fatalf("hash %d (offset %d, given back) still found at %d", i, i, off)
				}
				if ok && off != uint64(i) {
					t.Fatalf("hash %d found at %d, want %d", i, off, i)
				}
			}
			for _, e := range live[max(0, len(live)-tc.wantCount):] {
				if off, ok := d.lookup(dedupHash(e.h)); !ok || off != e.off {
					t.Fatalf("hash %d: lookup = %d, %v; want %d", e.h, off, ok, e.off)
				}
			}
			if got := d.count(); got != tc.wantCount {
				t.Fatalf("window holds %d hashes, want %d", got, tc.wantCount)
			}
		})
	}
}

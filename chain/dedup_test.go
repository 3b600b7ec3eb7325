package chain

import "testing"

func dedupHash(i int) Hash {
	var h Hash
	h[0], h[1], h[2] = byte(i), byte(i>>8), byte(i>>16)
	return h
}

func TestDedupWindowForgetsOldestAndGrowsLazily(t *testing.T) {
	var d dedupWindow
	d.init(4)
	if cap(d.ring) != 0 {
		t.Fatalf("a new window reserved %d entries, want 0 (it grows with use)", cap(d.ring))
	}
	for i := range 10 {
		d.add(dedupHash(i), uint64(100+i))
		if got, want := len(d.m), min(i+1, 4); got != want {
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

package chain

// dedupWindow remembers the offsets of the last n appended events by hash.
// It grows with use up to n entries instead of reserving them at open, so
// an idle chain with a short history costs little memory (a registry may
// hold thousands of open chains). It is not safe for concurrent use
// (Chain.mu guards it).
type dedupWindow struct {
	n    int // capacity: hashes remembered at most
	m    map[Hash]uint64
	ring []Hash // grows to n, then is overwritten in place from pos
	pos  int
}

func (d *dedupWindow) init(n int) {
	d.n = n
	d.m = make(map[Hash]uint64)
}

func (d *dedupWindow) lookup(h Hash) (uint64, bool) {
	off, ok := d.m[h]
	return off, ok
}

// add records h at off, forgetting the oldest hash once the window is full.
func (d *dedupWindow) add(h Hash, off uint64) {
	if d.n <= 0 {
		return
	}
	if len(d.ring) < d.n {
		d.ring = append(d.ring, h)
		d.m[h] = off
		return
	}
	delete(d.m, d.ring[d.pos])
	d.ring[d.pos] = h
	d.m[h] = off
	d.pos++
	if d.pos == d.n {
		d.pos = 0
	}
}

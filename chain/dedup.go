package chain

// dedupWindow remembers the offsets of the last n appended events by hash.
// It is not safe for concurrent use (Chain.mu guards it).
type dedupWindow struct {
	m    map[Hash]uint64
	ring []Hash
	pos  int
	full bool
}

func (d *dedupWindow) init(n int) {
	d.m = make(map[Hash]uint64, n)
	d.ring = make([]Hash, n)
}

func (d *dedupWindow) lookup(h Hash) (uint64, bool) {
	off, ok := d.m[h]
	return off, ok
}

// add records h at off, forgetting the oldest hash once the window is full.
func (d *dedupWindow) add(h Hash, off uint64) {
	if len(d.ring) == 0 {
		return
	}
	if d.full {
		delete(d.m, d.ring[d.pos])
	}
	d.ring[d.pos] = h
	d.m[h] = off
	d.pos++
	if d.pos == len(d.ring) {
		d.pos = 0
		d.full = true
	}
}

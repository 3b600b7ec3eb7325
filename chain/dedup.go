package chain

import (
	"hash/maphash"
	"math"
)

// dedupWindow remembers the offsets of the last n appended events by hash.
// It grows with use up to n entries instead of reserving them at open, so
// an idle chain with a short history costs little memory (a registry may
// hold thousands of open chains). It is not safe for concurrent use
// (Chain.mu guards it).
//
// It is an open-addressing hash table (linear probing, deletion by
// backward shift, so no tombstones) over a ring of entries in append
// order: a built-in map under this insert-one, delete-oldest load piles up
// deleted slots and its lookups probed far (15% of the server's CPU for
// pipelined 1 KiB appends). Slots are chosen by a hash seeded at random
// per window, so clients cannot grind event hashes that collide.
type dedupWindow struct {
	n     int          // capacity: hashes remembered at most
	ring  []dedupEntry // grows to n, then is overwritten in place from pos
	pos   int
	slots []dedupSlot // len is a power of two > 2*len(ring)
	seed  maphash.Seed
	// stale counts the full ring's entries that truncate removed: the
	// slots from pos on, overwritten by the next adds.
	stale int
}

// dedupSlot is one table slot: idx is a ring index + 1 (0: empty), tag the
// low 32 bits of its hash. The tag is compared before the ring entry is
// read, and it holds the home slot (tag & mask: tables have at most 2^32
// slots), so that deletion's backward shift reads neither the ring nor the
// hash of the entries it moves: cache misses on the ring were most of the
// window's cost under pipelined appends.
type dedupSlot struct {
	idx int32
	tag uint32
}

type dedupEntry struct {
	h   Hash
	off uint64
}

// dedupMinSlots is the table's first size.
const dedupMinSlots = 64

func (d *dedupWindow) init(n int) {
	d.n = min(n, math.MaxInt32-1)
	d.seed = maphash.MakeSeed()
}

// hash returns h's home slot and its tag.
func (d *dedupWindow) hash(h *Hash) (int, uint32) {
	tag := uint32(maphash.Bytes(d.seed, h[:]))
	return d.home(tag), tag
}

// home returns the home slot of an entry whose tag is tag.
func (d *dedupWindow) home(tag uint32) int { return int(tag) & (len(d.slots) - 1) }

// find returns the slot holding h, or the empty slot where the search
// ended and false; and h's tag.
func (d *dedupWindow) find(h *Hash) (int, uint32, bool) {
	mask := len(d.slots) - 1
	i, tag := d.hash(h)
	for ; ; i = (i + 1) & mask {
		s := d.slots[i]
		if s.idx == 0 {
			return i, tag, false
		}
		if s.tag == tag && d.ring[s.idx-1].h == *h {
			return i, tag, true
		}
	}
}

func (d *dedupWindow) lookup(h Hash) (uint64, bool) {
	if len(d.slots) == 0 {
		return 0, false
	}
	i, _, ok := d.find(&h)
	if !ok {
		return 0, false
	}
	return d.ring[d.slots[i].idx-1].off, true
}

// add records h at off, forgetting the oldest hash once the window is full.
// A hash added again points to its newest offset.
func (d *dedupWindow) add(h Hash, off uint64) {
	if d.n <= 0 {
		return
	}
	idx := d.pos
	if len(d.ring) < d.n {
		if 2*(len(d.ring)+1) >= len(d.slots) {
			d.grow()
		}
		idx = len(d.ring)
		d.ring = append(d.ring, dedupEntry{})
	} else {
		d.evict(idx) // a no-op for a stale entry: truncate evicted it
		if d.stale > 0 {
			d.stale--
		}
		d.pos++
		if d.pos == d.n {
			d.pos = 0
		}
	}
	d.ring[idx] = dedupEntry{h: h, off: off}
	i, tag, _ := d.find(&h)
	d.slots[i] = dedupSlot{idx: int32(idx + 1), tag: tag} // a repeated hash now names its newest entry
}

// truncate forgets the entries of offsets at or after from, which are the
// newest ones (offsets grow along the ring): their events were not stored
// after all, and the offsets will be assigned again.
func (d *dedupWindow) truncate(from uint64) {
	for {
		if len(d.ring) < d.n {
			last := len(d.ring) - 1
			if last < 0 || d.ring[last].off < from {
				return
			}
			d.evict(last)
			d.ring = d.ring[:last]
			continue
		}
		if d.stale >= d.n {
			return
		}
		idx := d.pos - 1
		if idx < 0 {
			idx = d.n - 1
		}
		if d.ring[idx].off < from {
			return
		}
		d.evict(idx)
		d.pos = idx
		d.stale++
	}
}

// evict removes ring entry idx from the table, unless a newer entry of
// the same hash has taken its slot.
func (d *dedupWindow) evict(idx int) {
	i, _, ok := d.find(&d.ring[idx].h)
	if !ok || int(d.slots[i].idx) != idx+1 {
		return
	}
	// Backward-shift deletion: move later entries of the probe run into
	// the hole when their home slot does not lie after the hole.
	mask := len(d.slots) - 1
	hole := i
	for j := (i + 1) & mask; d.slots[j].idx != 0; j = (j + 1) & mask {
		home := d.home(d.slots[j].tag)
		// j's entry may move to hole if home is cyclically outside (hole, j].
		if (j-home)&mask >= (j-hole)&mask {
			d.slots[hole] = d.slots[j]
			hole = j
		}
	}
	d.slots[hole] = dedupSlot{}
}

// grow doubles the table (or creates it) and reinserts the ring, which is
// still growing: a later index is a newer entry.
func (d *dedupWindow) grow() {
	n := max(2*len(d.slots), dedupMinSlots)
	for n <= 2*(len(d.ring)+1) {
		n *= 2
	}
	d.slots = make([]dedupSlot, n)
	for idx := range d.ring {
		i, tag, _ := d.find(&d.ring[idx].h)
		d.slots[i] = dedupSlot{idx: int32(idx + 1), tag: tag}
	}
}

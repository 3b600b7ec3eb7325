package netio

import (
	"testing"

	"github.com/atedb/atedb/proto"
)

// TestReplyConfirmedAllocs: answering an append encodes its Confirmed
// straight into the connection's reply buffer, without allocating once
// the buffers have grown; the writer's swap gives the bodies back intact.
func TestReplyConfirmedAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	c := &conn{wake: make(chan struct{}, 1), slots: make(chan struct{}, 16)}
	var id uint64
	round := func() {
		for range 8 {
			id++
			c.replyConfirmed(3, id, 100*id, 1+int(id%4))
		}
		// What the writer does, without a socket.
		c.outMu.Lock()
		c.out, c.spareOut = c.spareOut[:0], c.out
		c.items, c.spareItems = c.spareItems[:0], c.items
		c.outMu.Unlock()
	}
	round()
	start := 0
	first := id - 7
	for i, it := range c.spareItems {
		end := it.end
		var m proto.Confirmed
		if err := m.Decode(c.spareOut[start:end]); err != nil {
			t.Fatalf("reply %d does not decode: %v", i, err)
		}
		want := first + uint64(i)
		if m.Channel != 3 || m.CommitID != want || len(m.Offsets) != 1+int(want%4) || m.Offsets[0] != 100*want {
			t.Fatalf("reply %d = %+v, want commit %d at offset %d", i, m, want, 100*want)
		}
		start = end
	}
	if got := testing.AllocsPerRun(100, round); got != 0 {
		t.Fatalf("%.1f allocations per 8 Confirmed replies, want 0", got)
	}
}

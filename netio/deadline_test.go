package netio

import (
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// TestStuckSubscriberDroppedWhenWriterIsSlow is the cause of a flake of
// TestSlowSubscriberBoundedAndHarmless under load: when the writer timed
// out, it woke the reader (past read deadline) before marking the
// connection dead; a reader that ran in between took the timeout for
// silence, moved its deadline IdleTimeout/2 ahead and waited for a client
// that was not reading, so the stuck connection outlived the write
// timeout by up to a minute. The hook holds the writer right after the
// wake-up to make that interleaving certain.
func TestStuckSubscriberDroppedWhenWriterIsSlow(t *testing.T) {
	testHookWriteFailed = func() { time.Sleep(50 * time.Millisecond) }
	t.Cleanup(func() { testHookWriteFailed = nil }) // after the server's own cleanup (LIFO)
	ts := startServer(t, Config{WriteTimeout: 300 * time.Millisecond, IdleTimeout: time.Hour}, chain.Config{}, storeOpts{})
	addr := ts.addrs["v4"]
	w := dial(t, addr, "stuck/chain", kex.KeySizeNone)
	expect[*proto.Opened](w)
	stuck := dial(t, addr, "stuck/chain", kex.KeySizeNone)
	expect[*proto.Opened](stuck)
	stuck.send(&proto.Subscribe{Channel: 0, Live: true})
	// Write until the stuck subscriber's socket is full and its write
	// times out (a few MiB on loopback), then wait.
	payload := make([]byte, 64<<10)
	const maxEvents = 512 // 32 MiB
	deadline := time.Now().Add(20 * time.Second)
	for b := uint64(0); ts.Stats().Connections > 1; b++ {
		if time.Now().After(deadline) {
			t.Fatalf("stuck subscriber still connected %v after it stopped reading: %d connections", 20*time.Second, ts.Stats().Connections)
		}
		if b >= maxEvents {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		ev, _ := (&proto.Event{DataKey: b + 1, Data: payload}).AppendBinary(nil)
		if _, ok := w.appendSync(0, b, [][]byte{ev}).(*proto.Confirmed); !ok {
			t.Fatalf("append %d not confirmed", b)
		}
	}
}

// TestIdleSubscriberSurvivesBurst: a live subscriber idle for longer than
// the write timeout, then sent a burst whose Events frame fills the
// writer's buffer (which flushes it inside the round), must get every
// event: the writes of a round run under a fresh deadline, not under the
// one left by the last round before the idle spell.
func TestIdleSubscriberSurvivesBurst(t *testing.T) {
	ts := startServer(t, Config{WriteTimeout: 200 * time.Millisecond}, chain.Config{}, storeOpts{})
	addr := ts.addrs["v4"]
	sub := dial(t, addr, "idle/burst", kex.KeySizeNone)
	expect[*proto.Opened](sub)
	sub.send(&proto.Subscribe{Channel: 0, Live: true})
	expect[*proto.StartOfHistory](sub)
	expect[*proto.EndOfHistory](sub)
	time.Sleep(600 * time.Millisecond) // idle: three write timeouts

	w := dial(t, addr, "idle/burst", kex.KeySizeNone)
	expect[*proto.Opened](w)
	// One event larger than the writer's flush threshold (256 KiB): its
	// Events frame makes the writer flush inside the round.
	big, _ := (&proto.Event{DataKey: 1, Data: make([]byte, 300<<10)}).AppendBinary(nil)
	if _, ok := w.appendSync(0, 1, [][]byte{big}).(*proto.Confirmed); !ok {
		t.Fatal("burst not confirmed")
	}
	m, err := sub.tryRecv(5 * time.Second)
	if err != nil {
		t.Fatalf("no event: %v (disconnected by a stale write deadline?)", err)
	}
	ev, ok := m.(*proto.Events)
	if !ok {
		t.Fatalf("got %s %+v, want Events", m.Type(), m)
	}
	if items := eventItems(t, ev); len(items) != 1 || len(items[0].Event) != 300<<10 {
		t.Fatalf("got %d events, want the 300 KiB one", len(items))
	}
}

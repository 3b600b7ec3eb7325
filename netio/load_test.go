package netio

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/chain/memlog"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// TestManyChainsWritersAndSubscribers runs several chains, each with
// concurrent pipelining writers and subscribers that join at different
// moments (some during the history replay while appends continue), and
// checks that every subscriber sees exactly the confirmed sequence of its
// chain, in order, with no gap and no duplicate.
func TestManyChainsWritersAndSubscribers(t *testing.T) {
	t.Run("memlog", func(t *testing.T) {
		testManyChains(t, storeOpts{Options: memlog.Options{Delay: 2 * time.Millisecond}})
	})
	t.Run("mmaplog", func(t *testing.T) { testManyChains(t, storeOpts{Real: true}) })
}

func testManyChains(t *testing.T, store storeOpts) {
	ts := startServer(t, Config{}, chain.Config{BatchEvents: 16}, store)
	const (
		chains     = 6
		writers    = 2
		subs       = 3
		batches    = 40
		batchSize  = 5
		perChain   = writers * batches * batchSize
		windowSize = 4
	)
	fams := ts.families()
	type confirmed struct {
		mu   sync.Mutex
		data map[uint64]string
	}
	conf := make([]confirmed, chains)
	for i := range conf {
		conf[i].data = map[uint64]string{}
	}
	got := make([][][]proto.EventItem, chains)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ci := range chains {
		key := fmt.Sprintf("load/chain%d", ci)
		got[ci] = make([][]proto.EventItem, subs)
		for wi := range writers {
			wg.Go(func() {
				c := dial(t, ts.addrs[fams[(ci+wi)%len(fams)]], key, kex.KeySizeNone)
				if m := c.recv(); m.Type() != proto.TypeOpened {
					t.Errorf("writer %d/%d: %+v, want Opened", ci, wi, m)
					return
				}
				// Pipeline: keep windowSize appends in flight.
				sent, recvd := 0, 0
				names := map[uint64][]string{}
				for recvd < batches {
					for sent < batches && sent-recvd < windowSize {
						evs := make([][]byte, batchSize)
						for k := range evs {
							name := fmt.Sprintf("c%d-w%d-b%d-e%d", ci, wi, sent, k)
							evs[k] = testEvent(name)
							names[uint64(sent)] = append(names[uint64(sent)], name)
						}
						c.send(&proto.Append{Channel: 0, CommitID: uint64(sent), Events: evs})
						sent++
					}
					m, err := c.tryRecv(30 * time.Second)
					if err != nil {
						t.Errorf("writer %d/%d: %v", ci, wi, err)
						return
					}
					cm, ok := m.(*proto.Confirmed)
					if !ok || cm.CommitID != uint64(recvd) {
						t.Errorf("writer %d/%d: got %s %+v, want Confirmed %d (in order)", ci, wi, m.Type(), m, recvd)
						return
					}
					conf[ci].mu.Lock()
					for k, off := range cm.Offsets {
						conf[ci].data[off] = names[cm.CommitID][k]
					}
					conf[ci].mu.Unlock()
					recvd++
				}
			})
		}
		for si := range subs {
			wg.Go(func() {
				// Stagger: subscriber si joins after si*20ms, while writing goes on.
				time.Sleep(time.Duration(si) * 20 * time.Millisecond)
				c := dial(t, ts.addrs[fams[si%len(fams)]], key, kex.KeySizeNone)
				if m := c.recv(); m.Type() != proto.TypeOpened {
					t.Errorf("sub %d/%d: %+v, want Opened", ci, si, m)
					return
				}
				c.send(&proto.Subscribe{Channel: 0, History: true, Live: true})
				var items []proto.EventItem
				for len(items) < perChain && ctx.Err() == nil {
					m, err := c.tryRecv(30 * time.Second)
					if err != nil {
						t.Errorf("sub %d/%d after %d events: %v", ci, si, len(items), err)
						return
					}
					if ev, ok := m.(*proto.Events); ok {
						items = append(items, eventItems(t, ev)...)
					}
				}
				got[ci][si] = items
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for ci := range chains {
		if len(conf[ci].data) != perChain {
			t.Fatalf("chain %d: %d confirmed events, want %d", ci, len(conf[ci].data), perChain)
		}
		for si, items := range got[ci] {
			if len(items) != perChain {
				t.Fatalf("chain %d sub %d: %d events, want %d", ci, si, len(items), perChain)
			}
			for i, it := range items {
				if it.Offset != uint64(i) {
					t.Fatalf("chain %d sub %d: event %d has offset %d (gap or duplicate)", ci, si, i, it.Offset)
				}
				if want := conf[ci].data[it.Offset]; string(it.Event) != want {
					t.Fatalf("chain %d sub %d: offset %d holds %q, confirmed %q", ci, si, it.Offset, it.Event, want)
				}
			}
		}
	}
}

// TestSlowSubscriberBoundedAndHarmless: a subscriber that never reads
// costs the server a bounded amount of memory, does not slow the writers,
// and is disconnected after the write timeout.
func TestSlowSubscriberBoundedAndHarmless(t *testing.T) {
	t.Run("memlog", func(t *testing.T) { testSlowSubscriber(t, storeOpts{}) })
	t.Run("mmaplog", func(t *testing.T) { testSlowSubscriber(t, storeOpts{Real: true}) })
}

func testSlowSubscriber(t *testing.T, store storeOpts) {
	ts := startServer(t, Config{WriteTimeout: 2 * time.Second}, chain.Config{}, store)
	addr := ts.addrs["v4"]
	payload := make([]byte, 4096)
	const batches, perBatch = 200, 16 // 12.8 MiB of events
	writeAll := func(key string) time.Duration {
		c := dial(t, addr, key, kex.KeySizeNone)
		expect[*proto.Opened](c)
		start := time.Now()
		for b := range batches {
			evs := make([][]byte, perBatch)
			for k := range evs {
				ev := proto.Event{DataKey: uint64(b*perBatch + k + 1), Data: payload}
				evs[k], _ = ev.AppendBinary(nil)
			}
			if _, ok := c.appendSync(0, uint64(b), evs).(*proto.Confirmed); !ok {
				t.Fatalf("append %d not confirmed", b)
			}
		}
		return time.Since(start)
	}
	base := writeAll("slow/baseline")

	// The stuck subscriber: subscribes live, then never reads its socket.
	stuck := dial(t, addr, "slow/chain", kex.KeySizeNone)
	expect[*proto.Opened](stuck)
	stuck.send(&proto.Subscribe{Channel: 0, Live: true, History: true})
	time.Sleep(50 * time.Millisecond)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	withStuck := writeAll("slow/chain")
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)

	stored := uint64(batches * perBatch * (len(payload) + 16))
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	// The in-memory log itself keeps one copy of every event (the real log
	// keeps none in the heap); beyond that the stuck subscriber may hold a
	// frame and a write buffer or so.
	limit := int64(stored) + 8<<20
	if store.Real {
		limit = 8 << 20
	}
	if growth > limit {
		t.Errorf("heap grew by %d MiB for %d MiB stored: the stuck subscriber is buffering", growth>>20, stored>>20)
	}
	t.Logf("writers: %v alone, %v beside a stuck subscriber; heap growth %d MiB for %d MiB stored",
		base, withStuck, growth>>20, stored>>20)
	if withStuck > 4*base+2*time.Second {
		t.Errorf("writers slowed from %v to %v by a stuck subscriber", base, withStuck)
	}
	// The stuck subscriber is dropped after the write timeout.
	deadline := time.Now().Add(15 * time.Second)
	for ts.Stats().Connections > 2 { // the two writers' connections stay
		if time.Now().After(deadline) {
			t.Fatalf("stuck subscriber still connected: %d connections", ts.Stats().Connections)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

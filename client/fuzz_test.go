package client

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/atedb/atedb/proto"
)

// FuzzParseURL: no URL makes ParseURL panic, and an accepted URL prints
// (Target.String) to one that parses to the same target.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"tcp://127.0.0.1:5000/db/a",     // the common form
		"tcp://[::1]/db/a/b",            // IPv6, default port
		"tcp://h:65535/db/%2e%2e/x",     // escapes
		"tcp://h:0/db/x",                // port out of range
		"tcp://u@h/db/x?q#f",            // refused parts
		"tcp://[fe80::1%25eth0]:1/db/z", // zone
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseURL(s)
		if err != nil {
			return
		}
		again, err := ParseURL(tg.String())
		if err != nil {
			t.Fatalf("ParseURL(%q) = %+v, whose String %q does not parse: %v", s, tg, tg.String(), err)
		}
		if again != tg {
			t.Fatalf("ParseURL(%q) = %+v, String round trip gives %+v", s, tg, again)
		}
	})
}

// FuzzDispatch feeds arbitrary frames, as a hostile server would send
// them, to the client's dispatcher while it has requests of every kind
// pending: nothing may panic, whatever the dispatcher decides.
func FuzzDispatch(f *testing.F) {
	add := func(m proto.Message) {
		b, err := m.AppendBinary(nil)
		if err != nil {
			f.Fatalf("seed %s: %v", m.Type(), err)
		}
		f.Add(b)
	}
	events := proto.AppendEventsHeader(nil, 3)
	e := proto.Event{Data: []byte("x")}
	raw, _ := e.AppendBinary(nil)
	events = proto.AppendEventsItem(events, 0, 1, raw)
	events = proto.AppendEventsItem(events, 1, 2, []byte{0xff}) // undecodable event
	f.Add(events)
	running := proto.AppendEventsHeader(nil, 5) // to the running subscription, decoded by Next
	running = proto.AppendEventsItem(running, 7, 1, raw)
	running = proto.AppendEventsItem(running, 8, 2, []byte{0xff})
	f.Add(running)
	add(&proto.StartOfHistory{Channel: 3, Integrity: proto.IntegrityCentralized, Head: 5, Count: 5})
	add(&proto.EndOfHistory{Channel: 3, Next: 5})
	add(&proto.Unsubscribed{Channel: 3, Code: proto.CodeLagging, Next: 2, Reason: "slow"})
	add(&proto.Confirmed{Channel: 0, CommitID: 1, Offsets: []uint64{7}})
	add(&proto.CommitError{Channel: 0, CommitID: 1, Code: proto.CodeConflict, Index: -1, Head: 9, Reason: "r"})
	add(&proto.LockResult{Channel: 0, ID: 2, Key: 4, Code: proto.CodeLockHeld, Reason: "held"})
	add(&proto.Error{Channel: 3, Request: proto.TypeSubscribe, Code: proto.CodeConflict, Reason: "beyond"})
	add(&proto.Opened{Channel: 4})
	add(&proto.Closed{Channel: 3})
	add(&proto.Pong{ID: 3})
	add(&proto.Ping{ID: 3})
	add(&proto.Fatal{Code: proto.CodeInternal, Reason: "x"})
	f.Fuzz(func(t *testing.T, body []byte) {
		c, cn, stop := fuzzClient()
		defer stop()
		d := &dispatcher{cn: cn}
		_ = d.dispatch(body)
		_ = d.dispatch(body) // and again, on whatever state the first left
		// Read what the subscriptions buffered (Next decodes the events);
		// with a cancelled context Next does not wait.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, num := range []uint32{3, 5} {
			c.mu.Lock()
			s := c.chans[num].sub
			c.mu.Unlock()
			for range 1000 {
				if _, err := s.Next(ctx); err != nil {
					break
				}
			}
		}
	})
}

// fuzzClient builds a Client in the connected state, without goroutines,
// with a subscription starting on channel 3 and one running on channel 5
// (live, from offset 5), an OpenChain pending on channel 4, an
// append (id 1) on channel 0, a lock (id 2) and a ping (id 3).
func fuzzClient() (*Client, *conn, func()) {
	a, b := net.Pipe()
	o := defaultOptions()
	c := &Client{
		o:         o,
		target:    Target{Addr: "fuzz:1", Route: RouteDB, ChainKey: "k"},
		done:      make(chan struct{}),
		dead:      make(chan struct{}),
		connected: make(chan struct{}),
		chans:     map[uint32]*channel{},
		chains:    map[*Chain]struct{}{},
		appends:   map[uint64]*Future{},
		reqs:      map[uint64]*request{},
		nextChan:  10,
		nextID:    10,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.def = c.newChain("k", 0)
	c.chans[0] = &channel{kind: chanBase, chain: c.def}
	cn := &conn{c: c, nc: a, dead: make(chan struct{}), out: newOutQueue(), maxBody: 1 << 20}
	c.cur, c.gen = cn, 1
	close(c.connected)
	s := &Subscription{c: c, chain: c.def, num: 3, opts: SubscribeOptions{History: true, Live: true}, limit: 64,
		started: make(chan struct{}), historyDone: make(chan struct{}), notify: make(chan struct{}, 1), state: subStarting}
	c.chans[3] = &channel{kind: chanSub, chain: c.def, sub: s}
	live := &Subscription{c: c, chain: c.def, num: 5, opts: SubscribeOptions{Live: true}, limit: 1 << 20,
		started: make(chan struct{}), historyDone: make(chan struct{}), notify: make(chan struct{}, 1),
		state: subRunning, next: 5, haveNext: true, head: 5}
	c.chans[5] = &channel{kind: chanSub, chain: c.def, sub: live}
	other := c.newChain("other", 4)
	other.opening = &request{kind: reqOpen, chain: other, done: make(chan error, 1)}
	c.chains[other] = struct{}{}
	c.chans[4] = &channel{kind: chanBase, chain: other}
	c.def.window <- struct{}{}
	c.appends[1] = &Future{done: make(chan struct{}), chain: c.def, id: 1, events: [][]byte{{1}}, gen: 1}
	c.reqs[2] = &request{kind: reqLock, chain: c.def, key: 4, done: make(chan error, 1)}
	c.reqs[3] = &request{kind: reqPing, sent: time.Now(), done: make(chan error, 1)}
	return c, cn, func() {
		a.Close()
		b.Close()
		c.cancel()
	}
}

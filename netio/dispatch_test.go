package netio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/chain/memlog"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

func TestLocksOverTheWire(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{})
	a := dial(t, ts.addrs["v4"], "locks", kex.KeySizeNone)
	expect[*proto.Opened](a)
	b := dial(t, ts.addrs["v4"], "locks", kex.KeySizeNone)
	expect[*proto.Opened](b)
	lock := func(c *tclient, typ proto.MsgType, id, key uint64) *proto.LockResult {
		t.Helper()
		if typ == proto.TypeLock {
			c.send(&proto.Lock{Channel: 0, ID: id, Key: key})
		} else {
			c.send(&proto.Unlock{Channel: 0, ID: id, Key: key})
		}
		r := expect[*proto.LockResult](c)
		if r.ID != id || r.Key != key {
			t.Fatalf("LockResult %+v for request %d key %d", r, id, key)
		}
		return r
	}
	if r := lock(a, proto.TypeLock, 1, 10); r.Code != proto.CodeOK {
		t.Fatalf("a lock: %+v", r)
	}
	if r := lock(b, proto.TypeLock, 2, 10); r.Code != proto.CodeLockHeld {
		t.Fatalf("b lock of a's key: %+v", r)
	}
	if r := lock(b, proto.TypeUnlock, 3, 10); r.Code != proto.CodeNotLockOwner {
		t.Fatalf("b unlock of a's key: %+v", r)
	}
	if r := lock(b, proto.TypeUnlock, 4, 11); r.Code != proto.CodeNotLockOwner || !contains(r.Reason, "not locked") {
		t.Fatalf("unlock of a free key: %+v", r)
	}
	// a disconnects: its lock goes with it.
	a.nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := lock(b, proto.TypeLock, 5, 10)
		if r.Code == proto.CodeOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a's lock survived its disconnect: %+v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := lock(b, proto.TypeUnlock, 6, 10); r.Code != proto.CodeOK {
		t.Fatalf("b unlock: %+v", r)
	}
}

func TestPipelinedAppendsKeepOrder(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{Options: memlog.Options{Delay: time.Millisecond}})
	c := dial(t, ts.addrs["v4"], "pipe", kex.KeySizeNone)
	expect[*proto.Opened](c)
	// Sent without waiting: ok, bad condition, ok, ok.
	c.send(&proto.Append{Channel: 0, CommitID: 1, Events: testEvents("p1", 2)})
	c.send(&proto.Append{Channel: 0, CommitID: 2, Events: testEvents("p2", 2), HasCondition: true, ExpectedNext: 77})
	c.send(&proto.Append{Channel: 0, CommitID: 3, Events: testEvents("p3", 2)})
	c.send(&proto.Append{Channel: 0, CommitID: 4, Events: testEvents("p4", 2)})
	if m := expect[*proto.Confirmed](c); m.CommitID != 1 {
		t.Fatalf("first reply %+v", m)
	}
	if m := expect[*proto.CommitError](c); m.CommitID != 2 || m.Code != proto.CodeConflict || m.Head != 2 {
		t.Fatalf("second reply %+v", m)
	}
	for id := uint64(3); id <= 4; id++ {
		m := expect[*proto.CommitError](c)
		if m.CommitID != id || m.Code != proto.CodeAborted || m.Head != 2 || !contains(m.Reason, "earlier batch (2)") {
			t.Fatalf("reply %d: %+v, want aborted after batch 2", id, m)
		}
	}
	// A condition alone, even a true one, does not end the abort.
	c.send(&proto.Append{Channel: 0, CommitID: 5, Events: testEvents("p3", 2), HasCondition: true, ExpectedNext: 2})
	if m := expect[*proto.CommitError](c); m.CommitID != 5 || m.Code != proto.CodeAborted {
		t.Fatalf("conditional append after a failure: %+v, want aborted", m)
	}
	// The restart flag does.
	c.send(&proto.Append{Channel: 0, CommitID: 5, Restart: true, Events: testEvents("p3", 2), HasCondition: true, ExpectedNext: 2})
	if m := expect[*proto.Confirmed](c); m.CommitID != 5 || m.Offsets[0] != 2 {
		t.Fatalf("restart reply %+v", m)
	}
	// A retry of a confirmed batch gets its original offsets.
	c.send(&proto.Append{Channel: 0, CommitID: 6, Events: testEvents("p1", 2)})
	if m := expect[*proto.Confirmed](c); m.CommitID != 6 || m.Offsets[0] != 0 || m.Offsets[1] != 1 {
		t.Fatalf("retry reply %+v", m)
	}
	// An empty append is a barrier.
	c.send(&proto.Append{Channel: 0, CommitID: 7})
	if m := expect[*proto.Confirmed](c); m.CommitID != 7 || len(m.Offsets) != 0 {
		t.Fatalf("barrier reply %+v", m)
	}
}

func TestChannels(t *testing.T) {
	ts := startServer(t, Config{MaxChannels: 3}, chain.Config{}, storeOpts{})
	c := dial(t, ts.addrs["v4"], "", kex.KeySizeNone)
	w := dial(t, ts.addrs["v4"], "", kex.KeySizeNone)
	for ch, key := range map[uint32]string{1: "multi/a", 2: "multi/b", 3: "multi/c"} {
		c.send(&proto.Open{Channel: ch, ChainKey: key})
		if m := expect[*proto.Opened](c); m.Channel != ch {
			t.Fatalf("Opened %+v", m)
		}
		w.send(&proto.Open{Channel: ch, ChainKey: key})
		expect[*proto.Opened](w)
	}
	c.send(&proto.Open{Channel: 4, ChainKey: "multi/d"})
	if e := expect[*proto.Error](c); e.Code != proto.CodeTooManyChannels {
		t.Fatalf("fourth channel: %+v", e)
	}
	c.send(&proto.Open{Channel: 1, ChainKey: "multi/x"})
	if e := expect[*proto.Error](c); e.Code != proto.CodeChannelInUse {
		t.Fatalf("reopen: %+v", e)
	}
	c.send(&proto.Subscribe{Channel: 1, Live: true})
	expect[*proto.StartOfHistory](c)
	expect[*proto.EndOfHistory](c)
	c.send(&proto.Subscribe{Channel: 2, Live: true})
	expect[*proto.StartOfHistory](c)
	expect[*proto.EndOfHistory](c)
	c.send(&proto.Subscribe{Channel: 2, Live: true})
	if e := expect[*proto.Error](c); e.Code != proto.CodeAlreadySubscribed {
		t.Fatalf("second subscribe: %+v", e)
	}
	// Closing channel 1 leaves channel 2's subscription alone.
	c.send(&proto.Close{Channel: 1})
	if m := expect[*proto.Closed](c); m.Channel != 1 {
		t.Fatalf("Closed %+v", m)
	}
	expect[*proto.Confirmed](w.appendCheck(1, 1, testEvents("to-a", 1)))
	expect[*proto.Confirmed](w.appendCheck(2, 2, testEvents("to-b", 1)))
	ev := expect[*proto.Events](c)
	items := eventItems(t, ev)
	if ev.Channel != 2 || len(items) != 1 || string(items[0].Event) != "to-b-0" {
		t.Fatalf("Events %+v %+v", ev, items)
	}
	// History-only subscription ends by itself; a new one is allowed.
	c.send(&proto.Subscribe{Channel: 3, History: true})
	expect[*proto.StartOfHistory](c)
	expect[*proto.EndOfHistory](c)
	c.send(&proto.Subscribe{Channel: 3, History: true, From: 5})
	if e := expect[*proto.Error](c); e.Code != proto.CodeConflict || !contains(e.Reason, "beyond head") {
		t.Fatalf("subscribe beyond head: %+v", e)
	}
	c.send(&proto.Unsubscribe{Channel: 3})
	if e := expect[*proto.Error](c); e.Code != proto.CodeNotSubscribed {
		t.Fatalf("unsubscribe ended subscription: %+v", e)
	}
}

func TestMaxConnections(t *testing.T) {
	ts := startServer(t, Config{MaxConnections: 2}, chain.Config{}, storeOpts{})
	a := dial(t, ts.addrs["v4"], "", kex.KeySizeNone)
	_ = dial(t, ts.addrs["v4"], "", kex.KeySizeNone)
	_, err := tryDial(t, ts.addrs["v4"], "", kex.KeySizeNone)
	var ce *proto.CodeError
	if !errors.As(err, &ce) || ce.Code != proto.CodeTooManyConnections || !contains(ce.Reason, "limit of 2") {
		t.Fatalf("third connection: %v", err)
	}
	// A slot frees when a client leaves.
	a.nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for ts.Stats().Connections >= 2 {
		if time.Now().After(deadline) {
			t.Fatal("closed connection still counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	dial(t, ts.addrs["v4"], "", kex.KeySizeNone)
	if s := ts.Stats(); s.Refused != 1 {
		t.Fatalf("Stats %+v, want 1 refused", s)
	}
}

func TestIdleTimeoutPings(t *testing.T) {
	ts := startServer(t, Config{IdleTimeout: 400 * time.Millisecond}, chain.Config{}, storeOpts{})
	// A client that answers pings (tryRecv does) stays connected.
	live := dial(t, ts.addrs["v4"], "idle", kex.KeySizeNone)
	expect[*proto.Opened](live)
	// For three idle timeouts: only Pings arrive, each answered.
	pings := 0
	_ = live.nc.SetReadDeadline(time.Now().Add(1200 * time.Millisecond))
	for {
		body, err := live.fc.ReadFrame()
		if err != nil {
			break
		}
		m, _ := proto.DecodeMessage(body)
		p, ok := m.(*proto.Ping)
		if !ok {
			t.Fatalf("got %+v while idle, want only Pings", m)
		}
		pings++
		pong, _ := (&proto.Pong{ID: p.ID}).AppendBinary(nil)
		_ = live.fc.WriteFrame(pong)
		_ = live.fc.Flush()
	}
	if pings < 2 {
		t.Fatalf("%d pings in three idle timeouts", pings)
	}
	if conf := expect[*proto.Confirmed](live.appendCheck(0, 1, testEvents("alive", 1))); len(conf.Offsets) != 1 {
		t.Fatalf("Confirmed %+v", conf)
	}
	// A client that never answers is closed with a Timeout.
	dead := dial(t, ts.addrs["v4"], "", kex.KeySizeNone)
	_ = dead.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var sawPing bool
	for {
		body, err := dead.fc.ReadFrame()
		if err != nil {
			t.Fatalf("read: %v (saw ping %v)", err, sawPing)
		}
		m, _ := proto.DecodeMessage(body)
		if _, ok := m.(*proto.Ping); ok {
			sawPing = true
			continue
		}
		f, ok := m.(*proto.Fatal)
		if !ok || f.Code != proto.CodeTimeout || !sawPing {
			t.Fatalf("got %+v (saw ping %v), want Fatal timeout after a Ping", m, sawPing)
		}
		break
	}
}

func TestShutdownFinishesInFlightAppends(t *testing.T) {
	logs := &logStore{opts: memlog.Options{Delay: 200 * time.Millisecond}}
	reg, err := chain.NewRegistry(chain.Config{Store: logs, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Registry: reg, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	c := dial(t, l.Addr().String(), "bye", kex.KeySizeNone)
	expect[*proto.Opened](c)
	c.send(&proto.Append{Channel: 0, CommitID: 1, Events: testEvents("last", 3)})
	time.Sleep(20 * time.Millisecond) // the append is in the log, not yet durable
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if m := expect[*proto.Confirmed](c); m.CommitID != 1 || len(m.Offsets) != 3 {
		t.Fatalf("in-flight append: %+v", m)
	}
	if f := c.expectClosed(); f == nil || f.Code != proto.CodeShuttingDown {
		t.Fatalf("Fatal %+v, want shutting down", f)
	}
	if err := reg.Close(); err != nil {
		t.Fatalf("registry Close: %v", err)
	}
	if nc, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		nc.Close()
		t.Fatal("still accepting after Shutdown")
	}
}

// panicky panics in the validation hook for events whose data is "boom".
type panicky struct{}

func (panicky) Validate(_ chain.Key, _ *chain.Writer, events []chain.Event) error {
	for _, e := range events {
		if string(e.Meta.Data) == "boom" {
			panic("validator exploded")
		}
	}
	return nil
}

func TestPanicClosesOnlyItsConnection(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{Validator: panicky{}}, storeOpts{})
	other := dial(t, ts.addrs["v4"], "panic", kex.KeySizeNone)
	expect[*proto.Opened](other)
	bad := dial(t, ts.addrs["v4"], "panic", kex.KeySizeNone)
	expect[*proto.Opened](bad)
	bad.send(&proto.Append{Channel: 0, CommitID: 1, Events: [][]byte{testEvent("boom")}})
	bad.expectClosed()
	if ts.Stats().Panics != 1 {
		t.Fatalf("Stats %+v, want 1 panic", ts.Stats())
	}
	// The chain and the other connection are fine.
	if m := expect[*proto.Confirmed](other.appendCheck(0, 1, testEvents("fine", 1))); len(m.Offsets) != 1 {
		t.Fatalf("other connection: %+v", m)
	}
}

// TestCloseDoesNotStallOtherChannels: closing a channel whose appends are
// still in flight (the log holds them) answers the requests of other
// channels at once; the channel's number stays taken until Closed, which
// comes after the channel's last reply.
func TestCloseDoesNotStallOtherChannels(t *testing.T) {
	// The log of "close/slow" holds its appends until released.
	held := memlog.New(memlog.Options{Hold: true})
	t.Cleanup(func() { held.Release(-1) })
	logs := &logStore{}
	open := storeFunc(func(key chain.Key) (chain.Log, error) {
		if strings.Contains(key.String(), "slow") {
			return held, nil
		}
		return logs.Open(key)
	})
	ts := startServer(t, Config{}, chain.Config{Store: open}, storeOpts{})
	c := dial(t, ts.addrs["v4"], "", kex.KeySizeNone)
	c.send(&proto.Open{Channel: 1, ChainKey: "close/slow"})
	expect[*proto.Opened](c)
	c.send(&proto.Open{Channel: 2, ChainKey: "close/other"})
	expect[*proto.Opened](c)
	c.send(&proto.Subscribe{Channel: 1, Live: true})
	expect[*proto.StartOfHistory](c)
	expect[*proto.EndOfHistory](c)
	c.send(&proto.Append{Channel: 1, CommitID: 1, Events: testEvents("held", 2)})
	c.send(&proto.Close{Channel: 1})
	// Requests behind the Close, on other channels and on the closing one,
	// are answered while the append is held.
	c.send(&proto.Ping{ID: 7})
	c.send(&proto.Lock{Channel: 2, ID: 8, Key: 3})
	c.send(&proto.Append{Channel: 1, CommitID: 9, Events: testEvents("late", 1)})
	c.send(&proto.Open{Channel: 1, ChainKey: "close/again"})
	if m := expect[*proto.Pong](c); m.ID != 7 {
		t.Fatalf("Pong %+v", m)
	}
	if m := expect[*proto.LockResult](c); m.ID != 8 || m.Code != proto.CodeOK {
		t.Fatalf("LockResult %+v", m)
	}
	if m := expect[*proto.CommitError](c); m.CommitID != 9 || m.Code != proto.CodeUnknownChannel {
		t.Fatalf("append on the closing channel: %+v", m)
	}
	if m := expect[*proto.Error](c); m.Channel != 1 || m.Request != proto.TypeOpen || m.Code != proto.CodeChannelInUse {
		t.Fatalf("Open of the closing channel: %+v", m)
	}
	if m, err := c.tryRecv(100 * time.Millisecond); err == nil {
		t.Fatalf("received %s %+v while the append is held", m.Type(), m)
	}
	held.Release(-1)
	if m := expect[*proto.Confirmed](c); m.CommitID != 1 || len(m.Offsets) != 2 {
		t.Fatalf("held append: %+v", m)
	}
	if m := expect[*proto.Closed](c); m.Channel != 1 {
		t.Fatalf("Closed %+v", m)
	}
	// The number is free again; the other channel was never disturbed.
	c.send(&proto.Open{Channel: 1, ChainKey: "close/again"})
	expect[*proto.Opened](c)
	expect[*proto.Confirmed](c.appendCheck(2, 10, testEvents("other", 1)))
}

// TestExistingOnly: a connection whose Hello asks for
// proto.FeatureExistingOnly (a read-only client) creates no chain: channel
// 0 and Opens of chains that do not exist are refused with
// CodeNoSuchChain and leave nothing on disk; existing chains open as
// usual. Without the feature, chains are created on first use.
func TestExistingOnly(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{})
	hello := proto.Hello{Version: proto.ProtocolVersion, Route: Route, ChainKey: "ro/missing", Features: proto.FeatureExistingOnly}
	c, err := tryDialHello(t, ts.addrs["v4"], hello)
	if err != nil {
		t.Fatal(err)
	}
	if c.ack.Features&proto.FeatureExistingOnly == 0 {
		t.Fatalf("HelloAck features %b: existing-only not granted", c.ack.Features)
	}
	if e := expect[*proto.Error](c); e.Channel != 0 || e.Request != proto.TypeOpen || e.Code != proto.CodeNoSuchChain || !contains(e.Reason, "ro/missing") {
		t.Fatalf("channel 0 of a missing chain: %+v", e)
	}
	c.send(&proto.Open{Channel: 1, ChainKey: "ro/other"})
	if e := expect[*proto.Error](c); e.Channel != 1 || e.Code != proto.CodeNoSuchChain {
		t.Fatalf("Open of a missing chain: %+v", e)
	}
	if n := len(ts.logs.logs); n != 0 {
		t.Fatalf("a read-only connection created %d chains", n)
	}
	// Another connection creates a chain by writing to it; the read-only
	// one can then open it.
	w := dial(t, ts.addrs["v4"], "ro/present", kex.KeySizeNone)
	expect[*proto.Opened](w)
	expect[*proto.Confirmed](w.appendCheck(0, 1, testEvents("x", 1)))
	c.send(&proto.Open{Channel: 2, ChainKey: "ro/present"})
	expect[*proto.Opened](c)
	c.send(&proto.Subscribe{Channel: 2, History: true})
	if s := expect[*proto.StartOfHistory](c); s.Count != 1 {
		t.Fatalf("StartOfHistory %+v", s)
	}
}

// TestInlineAppendBesideSubscription appends one batch at a time on a
// connection whose other channel receives a live subscription fed by a
// second connection: the appends commit inline on the reader (the real
// log, one appender) and their Confirmed replies are written by the
// reader itself, or by the writer when a subscription frame holds the
// socket. Every reply must arrive, in order, between the Events frames.
func TestInlineAppendBesideSubscription(t *testing.T) {
	for _, size := range []kex.KeySize{kex.KeySizeNone, kex.KeySize128} {
		t.Run(size.String(), func(t *testing.T) { testInlineAppendBesideSubscription(t, size) })
	}
}

func testInlineAppendBesideSubscription(t *testing.T, size kex.KeySize) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{Real: true})
	c := dial(t, ts.addrs["v4"], "mix", size)
	expect[*proto.Opened](c)
	c.send(&proto.Subscribe{Channel: 0, Live: true})
	feeder := dial(t, ts.addrs["v4"], "mix", size)
	expect[*proto.Opened](feeder)
	stop := make(chan struct{})
	fed := make(chan int)
	go func() {
		n := 0
		defer func() { fed <- n }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			feeder.send(&proto.Append{Channel: 0, CommitID: uint64(i + 1), Events: testEvents(fmt.Sprintf("feed%d", i), 4)})
			if m, err := feeder.tryRecv(10 * time.Second); err != nil {
				return
			} else if _, ok := m.(*proto.Confirmed); !ok {
				return
			}
			n++
		}
	}()
	const appends = 150
	events := 0
	for id := uint64(1); id <= appends; id++ {
		c.send(&proto.Append{Channel: 0, CommitID: id, Events: testEvents(fmt.Sprintf("own%d", id), 1)})
		for {
			m := c.recv()
			switch m := m.(type) {
			case *proto.Events:
				events += len(eventItems(t, m))
				continue
			case *proto.StartOfHistory, *proto.EndOfHistory:
				continue
			}
			if conf, ok := m.(*proto.Confirmed); !ok || conf.CommitID != id || len(conf.Offsets) != 1 {
				t.Fatalf("append %d: reply %#v", id, m)
			}
			break
		}
	}
	close(stop)
	if n := <-fed; n == 0 || events == 0 {
		t.Fatalf("feeder confirmed %d batches, subscription delivered %d events: the test exercised nothing", n, events)
	}
}

// TestResubscribeAfterEndOfHistory: a history-only subscription has ended
// once its EndOfHistory is out, so a Subscribe sent as soon as the client
// reads EndOfHistory starts a new one (§6.8), every time. The subscription
// used to mark itself ended only after it had handed EndOfHistory over,
// so a quick client could get "already subscribed".
func TestResubscribeAfterEndOfHistory(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{})
	c := dial(t, ts.addrs["v4"], "resubscribe", kex.KeySizeNone)
	expect[*proto.Opened](c)
	expect[*proto.Confirmed](c.appendCheck(0, 1, testEvents("h", 2)))
	rounds := 3000
	if testing.Short() {
		rounds = 300
	}
	for i := range rounds {
		c.send(&proto.Subscribe{Channel: 0, History: true})
		m := c.recv()
		if _, ok := m.(*proto.StartOfHistory); !ok {
			t.Fatalf("round %d: got %s %+v, want StartOfHistory", i, m.Type(), m)
		}
		for {
			m := c.recv()
			if _, ok := m.(*proto.Events); ok {
				continue
			}
			if e, ok := m.(*proto.EndOfHistory); !ok || e.Next != 2 {
				t.Fatalf("round %d: got %s %+v, want EndOfHistory{next 2}", i, m.Type(), m)
			}
			break
		}
	}
	// And Unsubscribe right after EndOfHistory finds nothing to end.
	c.send(&proto.Subscribe{Channel: 0, History: true})
	expect[*proto.StartOfHistory](c)
	expect[*proto.Events](c)
	expect[*proto.EndOfHistory](c)
	c.send(&proto.Unsubscribe{Channel: 0})
	if e := expect[*proto.Error](c); e.Code != proto.CodeNotSubscribed {
		t.Fatalf("Unsubscribe after EndOfHistory: %+v, want not subscribed", e)
	}
}

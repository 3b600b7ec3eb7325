package client

import (
	"crypto/sha256"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// fakeServer is a small in-memory atedb server speaking the real frames
// and messages, for fast deterministic client tests. Chains live as long
// as the fakeServer, across connections, so tests can cut connections and
// check that the client resumes. It implements what the client relies on:
// hello (with optional kex), channels, subscriptions with history and live
// events, appends with conditions, retry detection and failed pipelines,
// locks owned by connections, pings.
type fakeServer struct {
	t        testing.TB
	ln       net.Listener
	floor    kex.KeySize
	identity *kex.Identity

	mu     sync.Mutex
	chains map[string]*fakeChain
	conns  map[*fakeConn]struct{}
	hellos int
	// Hooks, set before the client connects; guarded by mu.
	refuseHello func(h *proto.Hello) (proto.ErrorCode, string)
	refuseOpen  func(key string) (proto.ErrorCode, string)
	onAppend    func(fc *fakeConn, m *proto.Append) (drop bool)
	// rawReply, when set and returning a body, replaces the answer to an
	// Append (protocol-violation tests).
	rawReply     func(m *proto.Append) []byte
	eventsPerMsg int // history batching (default 3, to exercise batching)
	noPong       bool
	ackKeySize   *proto.KeySize // overrides the negotiated size in the HelloAck (downgrade tests)
	unsubscribes int
	pongs        []uint64
	restarts     []uint64 // commit ids of the Appends that carried the restart flag

	wg sync.WaitGroup
}

type fakeStored struct {
	off  uint64
	time int64
	raw  []byte
}

type fakeChain struct {
	mu     sync.Mutex
	events []fakeStored
	hashes map[[32]byte]uint64
	locks  map[uint64]*fakeConn
	wake   chan struct{} // closed and replaced on every append
}

func newFakeServer(t testing.TB) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	fs := &fakeServer{t: t, ln: ln, chains: map[string]*fakeChain{}, conns: map[*fakeConn]struct{}{}, eventsPerMsg: 3}
	fs.wg.Add(1)
	go fs.accept()
	t.Cleanup(fs.close)
	return fs
}

func (fs *fakeServer) url(chain string) string {
	return "tcp://" + fs.ln.Addr().String() + "/db/" + chain
}

func (fs *fakeServer) accept() {
	defer fs.wg.Done()
	for {
		nc, err := fs.ln.Accept()
		if err != nil {
			return
		}
		fc := &fakeConn{fs: fs, nc: nc, chans: map[uint32]*fakeChan{}}
		fs.mu.Lock()
		fs.conns[fc] = struct{}{}
		fs.mu.Unlock()
		fs.wg.Add(1)
		go fc.serve()
	}
}

// dropAll cuts every connection, as a crashed server would.
func (fs *fakeServer) dropAll() {
	fs.mu.Lock()
	conns := make([]*fakeConn, 0, len(fs.conns))
	for fc := range fs.conns {
		conns = append(conns, fc)
	}
	fs.mu.Unlock()
	for _, fc := range conns {
		fc.nc.Close()
	}
}

// helloCount returns how many hellos the server has read (connections).
func (fs *fakeServer) helloCount() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.hellos
}

// pingAll sends a Ping with id to every connection.
func (fs *fakeServer) pingAll(id uint64) {
	fs.mu.Lock()
	conns := make([]*fakeConn, 0, len(fs.conns))
	for fc := range fs.conns {
		conns = append(conns, fc)
	}
	fs.mu.Unlock()
	body, _ := (&proto.Ping{ID: id}).AppendBinary(nil)
	for _, fc := range conns {
		fc.wmu.Lock()
		if fc.fc != nil && fc.fc.WriteFrame(body) == nil {
			fc.fc.Flush()
		}
		fc.wmu.Unlock()
	}
}

func (fs *fakeServer) close() {
	fs.ln.Close()
	fs.dropAll()
	fs.wg.Wait()
}

func (fs *fakeServer) chain(key string) *fakeChain {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ch := fs.chains[key]
	if ch == nil {
		ch = &fakeChain{hashes: map[[32]byte]uint64{}, locks: map[uint64]*fakeConn{}, wake: make(chan struct{})}
		fs.chains[key] = ch
	}
	return ch
}

// exists reports whether the chain key has been used.
func (fs *fakeServer) exists(key string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	_, ok := fs.chains[key]
	return ok
}

// stored returns a copy of a chain's events.
func (fs *fakeServer) stored(key string) []fakeStored {
	ch := fs.chain(key)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return append([]fakeStored(nil), ch.events...)
}

// appendRaw stores events directly, as another writer would.
func (fs *fakeServer) appendRaw(key string, raws ...[]byte) {
	ch := fs.chain(key)
	ch.mu.Lock()
	for _, r := range raws {
		ch.storeLocked(r)
	}
	close(ch.wake)
	ch.wake = make(chan struct{})
	ch.mu.Unlock()
}

func (ch *fakeChain) storeLocked(raw []byte) uint64 {
	off := uint64(len(ch.events))
	ch.events = append(ch.events, fakeStored{off: off, time: time.Now().UnixNano(), raw: append([]byte(nil), raw...)})
	ch.hashes[sha256.Sum256(raw)] = off
	return off
}

type fakeChan struct {
	key      string
	failed   bool   // an Append failed: later ones are aborted until a restart
	failedID uint64 // its commit id
	sub      *fakeSub
}

type fakeSub struct {
	stop chan struct{}
	done chan struct{}
}

type fakeConn struct {
	fs    *fakeServer
	nc    net.Conn
	wmu   sync.Mutex
	fc    proto.FrameConn
	chans map[uint32]*fakeChan // reader goroutine only
	// existingOnly: the hello asked for proto.FeatureExistingOnly.
	existingOnly bool
	subWG        sync.WaitGroup
}

func (c *fakeConn) send(m proto.Message) error {
	body, err := m.AppendBinary(nil)
	if err != nil {
		c.fs.t.Errorf("fake server: encode %s: %v", m.Type(), err)
		return err
	}
	return c.sendBody(body)
}

func (c *fakeConn) sendBody(body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.fc.WriteFrame(body); err != nil {
		return err
	}
	return c.fc.Flush()
}

func (c *fakeConn) serve() {
	fs := c.fs
	defer fs.wg.Done()
	defer func() {
		c.nc.Close()
		for _, ch := range c.chans {
			if ch.sub != nil {
				close(ch.sub.stop)
			}
		}
		c.subWG.Wait()
		fs.mu.Lock()
		delete(fs.conns, c)
		fs.mu.Unlock()
		for _, fch := range fs.snapshotChains() {
			fch.mu.Lock()
			for k, owner := range fch.locks {
				if owner == c {
					delete(fch.locks, k)
				}
			}
			fch.mu.Unlock()
		}
	}()
	stream := proto.NewStream(c.nc, 0)
	body, err := stream.ReadFrame()
	if err != nil {
		return
	}
	helloBody := append([]byte(nil), body...)
	var hello proto.Hello
	if err := hello.Decode(helloBody); err != nil {
		fs.t.Errorf("fake server: bad hello: %v", err)
		return
	}
	fs.mu.Lock()
	fs.hellos++
	refuse := fs.refuseHello
	fs.mu.Unlock()
	ack := proto.HelloAck{Version: proto.ProtocolVersion}
	if refuse != nil {
		if code, reason := refuse(&hello); code != proto.CodeOK {
			ack.Code, ack.Reason = code, reason
			b, _ := ack.AppendBinary(nil)
			stream.WriteFrame(b)
			stream.Flush()
			return
		}
	}
	size := kex.Negotiate(kex.KeySize(hello.KeySize), fs.floor)
	if hello.Features&proto.FeatureExistingOnly != 0 {
		ack.Features |= proto.FeatureExistingOnly
		c.existingOnly = true
	}
	if hello.Features&proto.FeatureServerIdentity != 0 && fs.identity != nil {
		ack.Features |= proto.FeatureServerIdentity
		size = max(size, kex.KeySize128)
	}
	ack.KeySize = proto.KeySize(size)
	fs.mu.Lock()
	if fs.ackKeySize != nil {
		ack.KeySize = *fs.ackKeySize
		size = kex.KeySize(ack.KeySize)
	}
	fs.mu.Unlock()
	ack.Nonce[0] = 7
	ackBody, _ := ack.AppendBinary(nil)
	if err := stream.WriteFrame(ackBody); err != nil {
		return
	}
	var fconn proto.FrameConn = stream
	if size != kex.KeySizeNone {
		sess, err := kex.ServerHandshake(stream, helloBody, ackBody, size, kex.ServerConfig{Identity: fs.identity})
		if err != nil {
			return
		}
		defer sess.Close()
		fconn = sess.Conn(stream)
	} else if err := stream.Flush(); err != nil {
		return
	}
	c.wmu.Lock()
	c.fc = fconn
	c.wmu.Unlock()
	if hello.ChainKey != "" {
		if !c.open(0, hello.ChainKey) {
			return
		}
	}
	for {
		body, err := c.fc.ReadFrame()
		if err != nil {
			return
		}
		if !c.handle(body) {
			return
		}
	}
}

func (fs *fakeServer) snapshotChains() []*fakeChain {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]*fakeChain, 0, len(fs.chains))
	for _, ch := range fs.chains {
		out = append(out, ch)
	}
	return out
}

func (c *fakeConn) open(num uint32, key string) bool {
	c.fs.mu.Lock()
	refuse := c.fs.refuseOpen
	c.fs.mu.Unlock()
	if refuse != nil {
		if code, reason := refuse(key); code != proto.CodeOK {
			return c.send(&proto.Error{Channel: num, Request: proto.TypeOpen, Code: code, Reason: reason}) == nil
		}
	}
	if _, ok := c.chans[num]; ok {
		return c.send(&proto.Error{Channel: num, Request: proto.TypeOpen, Code: proto.CodeChannelInUse, Reason: "in use"}) == nil
	}
	if c.existingOnly && !c.fs.exists(key) {
		return c.send(&proto.Error{Channel: num, Request: proto.TypeOpen, Code: proto.CodeNoSuchChain, Reason: "chain: no such chain: " + key}) == nil
	}
	c.chans[num] = &fakeChan{key: key}
	return c.send(&proto.Opened{Channel: num}) == nil
}

// handle answers one request; false ends the connection.
func (c *fakeConn) handle(body []byte) bool {
	m, err := proto.DecodeMessage(body)
	if err != nil {
		c.send(&proto.Fatal{Code: proto.CodeMalformed, Reason: err.Error()})
		return false
	}
	switch m := m.(type) {
	case *proto.Ping:
		c.fs.mu.Lock()
		noPong := c.fs.noPong
		c.fs.mu.Unlock()
		if noPong {
			return true
		}
		return c.send(&proto.Pong{ID: m.ID}) == nil
	case *proto.Pong:
		c.fs.mu.Lock()
		c.fs.pongs = append(c.fs.pongs, m.ID)
		c.fs.mu.Unlock()
		return true
	case *proto.Open:
		return c.open(m.Channel, m.ChainKey)
	case *proto.Close:
		ch := c.chans[m.Channel]
		if ch == nil {
			return c.send(&proto.Error{Channel: m.Channel, Request: proto.TypeClose, Code: proto.CodeUnknownChannel, Reason: "not open"}) == nil
		}
		c.stopSub(ch)
		delete(c.chans, m.Channel)
		return c.send(&proto.Closed{Channel: m.Channel}) == nil
	case *proto.Subscribe:
		ch := c.chans[m.Channel]
		if ch == nil {
			return c.send(&proto.Error{Channel: m.Channel, Request: proto.TypeSubscribe, Code: proto.CodeUnknownChannel, Reason: "not open"}) == nil
		}
		if ch.sub != nil {
			select {
			case <-ch.sub.done:
				ch.sub = nil
			default:
				return c.send(&proto.Error{Channel: m.Channel, Request: proto.TypeSubscribe, Code: proto.CodeAlreadySubscribed, Reason: "busy"}) == nil
			}
		}
		fch := c.fs.chain(ch.key)
		fch.mu.Lock()
		head := uint64(len(fch.events))
		start := head
		if m.History {
			start = m.From
			if m.FromTime {
				start = head
				for _, e := range fch.events {
					if e.time >= int64(m.From) {
						start = e.off
						break
					}
				}
			}
		}
		fch.mu.Unlock()
		if start > head {
			return c.send(&proto.Error{Channel: m.Channel, Request: proto.TypeSubscribe, Code: proto.CodeConflict,
				Reason: fmt.Sprintf("start offset %d beyond head %d", start, head)}) == nil
		}
		if err := c.send(&proto.StartOfHistory{Channel: m.Channel, Integrity: proto.IntegrityCentralized, Head: head, Count: head - start}); err != nil {
			return false
		}
		s := &fakeSub{stop: make(chan struct{}), done: make(chan struct{})}
		ch.sub = s
		c.subWG.Add(1)
		go c.stream(m.Channel, fch, s, start, head, m.History, m.Live)
		return true
	case *proto.Unsubscribe:
		ch := c.chans[m.Channel]
		if ch == nil || ch.sub == nil {
			return c.send(&proto.Error{Channel: m.Channel, Request: proto.TypeUnsubscribe, Code: proto.CodeNotSubscribed, Reason: "none"}) == nil
		}
		c.stopSub(ch)
		c.fs.mu.Lock()
		c.fs.unsubscribes++
		c.fs.mu.Unlock()
		return c.send(&proto.Unsubscribed{Channel: m.Channel, Code: proto.CodeOK}) == nil
	case *proto.Append:
		return c.append(m)
	case *proto.Lock, *proto.Unlock:
		var num uint32
		var id, key uint64
		lock := false
		switch m := m.(type) {
		case *proto.Lock:
			num, id, key, lock = m.Channel, m.ID, m.Key, true
		case *proto.Unlock:
			num, id, key = m.Channel, m.ID, m.Key
		}
		res := &proto.LockResult{Channel: num, ID: id, Key: key}
		ch := c.chans[num]
		if ch == nil {
			res.Code, res.Reason = proto.CodeUnknownChannel, "not open"
			return c.send(res) == nil
		}
		fch := c.fs.chain(ch.key)
		fch.mu.Lock()
		owner := fch.locks[key]
		switch {
		case lock && owner == nil:
			fch.locks[key] = c
		case lock:
			res.Code, res.Reason = proto.CodeLockHeld, fmt.Sprintf("key %d is locked by another connection", key)
		case owner == c:
			delete(fch.locks, key)
		default:
			res.Code, res.Reason = proto.CodeNotLockOwner, fmt.Sprintf("key %d is not locked by this connection", key)
		}
		fch.mu.Unlock()
		return c.send(res) == nil
	default:
		c.send(&proto.Fatal{Code: proto.CodeUnknownMessage, Reason: m.Type().String()})
		return false
	}
}

func (c *fakeConn) stopSub(ch *fakeChan) {
	if ch.sub == nil {
		return
	}
	select {
	case <-ch.sub.stop:
	default:
		close(ch.sub.stop)
	}
	<-ch.sub.done
	ch.sub = nil
}

func (c *fakeConn) append(m *proto.Append) bool {
	c.fs.mu.Lock()
	hook := c.fs.onAppend
	c.fs.mu.Unlock()
	c.fs.mu.Lock()
	raw := c.fs.rawReply
	c.fs.mu.Unlock()
	if raw != nil {
		if body := raw(m); body != nil {
			return c.sendBody(body) == nil
		}
	}
	ch := c.chans[m.Channel]
	if ch == nil {
		return c.send(&proto.CommitError{Channel: m.Channel, CommitID: m.CommitID, Code: proto.CodeUnknownChannel, Index: -1, Reason: "not open"}) == nil
	}
	fch := c.fs.chain(ch.key)
	refuse := func(code proto.ErrorCode, index int, head uint64, reason string) bool {
		if !ch.failed {
			ch.failed, ch.failedID = true, m.CommitID
		}
		return c.send(&proto.CommitError{Channel: m.Channel, CommitID: m.CommitID, Code: code, Index: index, Head: head, Reason: reason}) == nil
	}
	if m.Restart {
		ch.failed = false
		c.fs.mu.Lock()
		c.fs.restarts = append(c.fs.restarts, m.CommitID)
		c.fs.mu.Unlock()
	}
	if ch.failed {
		return refuse(proto.CodeAborted, -1, 0, fmt.Sprintf("an earlier batch (%d) of this writer failed", ch.failedID))
	}
	for i, raw := range m.Events {
		var ev proto.Event
		if err := ev.Decode(raw); err != nil {
			return refuse(proto.CodeMalformed, i, 0, err.Error())
		}
		if strings.HasPrefix(string(ev.Data), "bad") {
			return refuse(proto.CodeValidationFailed, i, 0, "data starting with \"bad\" is refused by the fake server")
		}
	}
	fch.mu.Lock()
	head := uint64(len(fch.events))
	// An exact retry gets its original offsets.
	if len(m.Events) > 0 {
		if first, ok := fch.hashes[sha256.Sum256(m.Events[0])]; ok {
			offs := make([]uint64, len(m.Events))
			exact := true
			for i, raw := range m.Events {
				off, ok := fch.hashes[sha256.Sum256(raw)]
				if !ok || off != first+uint64(i) {
					exact = false
					break
				}
				offs[i] = off
			}
			fch.mu.Unlock()
			if !exact {
				return refuse(proto.CodeDuplicate, 0, head, "partly stored batch")
			}
			return c.send(&proto.Confirmed{Channel: m.Channel, CommitID: m.CommitID, Offsets: offs}) == nil
		}
	}
	if m.HasCondition && m.ExpectedNext != head {
		fch.mu.Unlock()
		return refuse(proto.CodeConflict, -1, head, fmt.Sprintf("expected next offset %d but the chain's next offset is %d", m.ExpectedNext, head))
	}
	offs := make([]uint64, len(m.Events))
	for i, raw := range m.Events {
		offs[i] = fch.storeLocked(raw)
	}
	if len(m.Events) > 0 {
		close(fch.wake)
		fch.wake = make(chan struct{})
	}
	fch.mu.Unlock()
	if hook != nil && hook(c, m) {
		c.nc.Close() // stored, but the confirmation is lost
		return false
	}
	return c.send(&proto.Confirmed{Channel: m.Channel, CommitID: m.CommitID, Offsets: offs}) == nil
}

// stream sends a subscription: history [start, head) in batches, then
// EndOfHistory, then live events.
func (c *fakeConn) stream(num uint32, fch *fakeChain, s *fakeSub, start, head uint64, history, live bool) {
	defer c.subWG.Done()
	defer close(s.done)
	per := c.fs.eventsPerMsg
	next := start
	var buf []byte // reused: the benchmarks measure the client's allocations
	sendUpTo := func(end uint64) bool {
		for next < end {
			select {
			case <-s.stop:
				return false
			default:
			}
			fch.mu.Lock()
			body := proto.AppendEventsHeader(buf[:0], num)
			n := 0
			for next < end && n < per {
				e := fch.events[next]
				body = proto.AppendEventsItem(body, e.off, e.time, e.raw)
				next++
				n++
			}
			fch.mu.Unlock()
			buf = body
			if c.sendBody(body) != nil {
				return false
			}
		}
		return true
	}
	if history {
		if !sendUpTo(head) {
			return
		}
		if c.send(&proto.EndOfHistory{Channel: num, Next: next}) != nil {
			return
		}
	}
	if !live {
		return
	}
	for {
		fch.mu.Lock()
		end := uint64(len(fch.events))
		wake := fch.wake
		fch.mu.Unlock()
		if !sendUpTo(end) {
			return
		}
		select {
		case <-wake:
		case <-s.stop:
			return
		}
	}
}

// ev returns an event with the given data.
func ev(data string) proto.Event { return proto.Event{Data: []byte(data)} }

// rawEvent encodes an event with the given data.
func rawEvent(t *testing.T, data string) []byte {
	t.Helper()
	e := ev(data)
	b, err := e.AppendBinary(nil)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

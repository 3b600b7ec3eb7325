package netio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// The tests of this file hold the server to docs/PROTOCOL.md, point by
// point: each checks what the server does and that the document says it.

// protocolDoc returns docs/PROTOCOL.md.
func protocolDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatalf("read PROTOCOL.md: %v", err)
	}
	return string(b)
}

// docSection returns the text of PROTOCOL.md under the heading that
// starts with heading (for example "### 6.8 "), up to the next heading.
func docSection(t *testing.T, heading string) string {
	t.Helper()
	doc := protocolDoc(t)
	i := strings.Index(doc, "\n"+heading)
	if i < 0 {
		t.Fatalf("PROTOCOL.md has no heading %q", heading)
	}
	rest := doc[i+1+len(heading):]
	if j := strings.Index(rest, "\n#"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

var backticked = regexp.MustCompile("`([^`]+)`")

// docFailures returns the code names of the paragraph starting with
// "Failures:" in the section under heading: every code the server may
// answer that request with.
func docFailures(t *testing.T, heading string) []string {
	t.Helper()
	sec := docSection(t, heading)
	i := strings.Index(sec, "Failures:")
	if i < 0 {
		t.Fatalf("PROTOCOL.md %q has no \"Failures:\" paragraph", heading)
	}
	para := sec[i:]
	if j := strings.Index(para, "\n\n"); j >= 0 {
		para = para[:j]
	}
	var names []string
	for _, m := range backticked.FindAllStringSubmatch(para, -1) {
		names = append(names, m[1])
	}
	return names
}

// expectDocFailure fails the test unless the "Failures:" paragraph under
// heading lists code.
func expectDocFailure(t *testing.T, heading string, code proto.ErrorCode) {
	t.Helper()
	if names := docFailures(t, heading); !slices.Contains(names, code.String()) {
		t.Errorf("PROTOCOL.md %q lists failures %q, not %q, which the server sends", heading, names, code)
	}
}

// TestDuplicateBatches (point 1): a batch is entirely new, or an exact
// retry of stored events at consecutive offsets (confirmed with their
// offsets); anything else that repeats a stored event, or an event of the
// batch, is refused with its own code, duplicate, naming the event.
func TestDuplicateBatches(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{})
	c := dial(t, ts.addrs["v4"], "dup", kex.KeySizeNone)
	expect[*proto.Opened](c)
	a, b, n := testEvent("a"), testEvent("b"), testEvent("new")
	expect[*proto.Confirmed](c.appendCheck(0, 1, [][]byte{a, b}))
	cases := []struct {
		name   string
		events [][]byte
		offs   []uint64 // confirmed at these offsets, or
		index  int      // refused with duplicate for this event
	}{
		{"exact retry", [][]byte{a, b}, []uint64{0, 1}, 0},
		{"prefix retry", [][]byte{a}, []uint64{0}, 0},
		{"retry of a later run", [][]byte{b}, []uint64{1}, 0},
		{"stored then new", [][]byte{b, n}, nil, 0},
		{"new then stored", [][]byte{n, a}, nil, 1},
		{"reordered retry", [][]byte{b, a}, nil, 0},
		{"twice in the batch", [][]byte{n, n}, nil, 1},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := uint64(10 + i)
			c.send(&proto.Append{Channel: 0, CommitID: id, Restart: true, Events: tc.events})
			switch m := c.recv().(type) {
			case *proto.Confirmed:
				if tc.offs == nil || !slices.Equal(m.Offsets, tc.offs) {
					t.Fatalf("Confirmed %v, want %s", m.Offsets, want(tc.offs, tc.index))
				}
			case *proto.CommitError:
				if tc.offs != nil || m.Code != proto.CodeDuplicate || m.Index != tc.index || m.Head != 2 {
					t.Fatalf("CommitError{%v, index %d, head %d: %s}, want %s", m.Code, m.Index, m.Head, m.Reason, want(tc.offs, tc.index))
				}
			default:
				t.Fatalf("got %s %+v", m.Type(), m)
			}
		})
	}
	expectDocFailure(t, "### 6.15 ", proto.CodeDuplicate)
}

func want(offs []uint64, index int) string {
	if offs != nil {
		return fmt.Sprintf("Confirmed %v", offs)
	}
	return fmt.Sprintf("CommitError{duplicate, index %d, head 2}", index)
}

// TestCommitErrorHead (point 2): every CommitError of an open channel
// carries the chain's next offset in head, whatever the code; only a
// channel that is not open (no chain) answers 0.
func TestCommitErrorHead(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{MaxBatchEvents: 4, MaxBatchBytes: 4096}, storeOpts{})
	c := dial(t, ts.addrs["v4"], "head", kex.KeySizeNone)
	expect[*proto.Opened](c)
	expect[*proto.Confirmed](c.appendCheck(0, 1, testEvents("stored", 3)))
	future, _ := (&proto.Event{Timestamp: time.Now().Add(time.Minute).UnixNano(), Data: []byte("f")}).AppendBinary(nil)
	big, _ := (&proto.Event{Data: make([]byte, 5000)}).AppendBinary(nil)
	cases := []struct {
		name string
		m    proto.Append
		code proto.ErrorCode
		head uint64
	}{
		{"malformed event", proto.Append{Events: [][]byte{{0x05, 0x07, 0xff}}}, proto.CodeMalformed, 3},
		{"clock skew", proto.Append{Events: [][]byte{future}}, proto.CodeClockSkew, 3},
		{"too many events", proto.Append{Events: testEvents("many", 5)}, proto.CodeBatchTooLarge, 3},
		{"too many bytes", proto.Append{Events: [][]byte{big}}, proto.CodeBatchTooLarge, 3},
		{"twice in the batch", proto.Append{Events: [][]byte{testEvent("t"), testEvent("t")}}, proto.CodeDuplicate, 3},
		{"conflict", proto.Append{Events: testEvents("c", 1), HasCondition: true, ExpectedNext: 1}, proto.CodeConflict, 3},
		{"aborted", proto.Append{Events: testEvents("ab", 1)}, proto.CodeAborted, 3},
		{"unknown channel", proto.Append{Channel: 9, Events: testEvents("u", 1)}, proto.CodeUnknownChannel, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m
			m.CommitID = uint64(10 + i)
			m.Restart = tc.code != proto.CodeAborted // the one without it follows a failure
			c.send(&m)
			e := expect[*proto.CommitError](c)
			if e.Code != tc.code || e.Head != tc.head {
				t.Fatalf("CommitError{%v, head %d: %s}, want {%v, head %d}", e.Code, e.Head, e.Reason, tc.code, tc.head)
			}
			expectDocFailure(t, "### 6.15 ", tc.code)
		})
	}
}

// TestProveUnknownChannel (point 6): a Prove on a channel that is not
// open gets ProveResult{unknown channel}, as §5 says of every
// channel-scoped request, not denied.
func TestProveUnknownChannel(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{})
	c := dial(t, ts.addrs["v4"], "prove", kex.KeySizeNone)
	expect[*proto.Opened](c)
	key := proto.PublicKey{Type: proto.KeyEd25519, Key: make([]byte, proto.KeyEd25519.Size())}
	for _, tc := range []struct {
		ch   uint32
		code proto.ErrorCode
	}{{5, proto.CodeUnknownChannel}, {0, proto.CodeDenied}} {
		c.send(&proto.Prove{Channel: tc.ch, ID: 7, Key: key, Signature: []byte{1}})
		r := expect[*proto.ProveResult](c)
		if r.Channel != tc.ch || r.ID != 7 || r.Code != tc.code {
			t.Fatalf("Prove on channel %d: %+v, want code %v", tc.ch, r, tc.code)
		}
		expectDocFailure(t, "### 6.16 ", tc.code)
	}
}

// TestShutdownUnsubscribes (point 8): a graceful shutdown answers every
// running subscription with Unsubscribed{shutting down, next}, then ends
// the connection with Fatal{shutting down}; a connection without one gets
// only the Fatal, and a subscription that had ended gets nothing.
func TestShutdownUnsubscribes(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{})
	addr := ts.addrs["v4"]
	w := dial(t, addr, "bye/a", kex.KeySizeNone)
	expect[*proto.Opened](w)
	expect[*proto.Confirmed](w.appendCheck(0, 1, testEvents("e", 2)))
	sub := dial(t, addr, "bye/a", kex.KeySizeNone)
	expect[*proto.Opened](sub)
	sub.send(&proto.Subscribe{Channel: 0, History: true, Live: true})
	expect[*proto.StartOfHistory](sub)
	expect[*proto.Events](sub)
	expect[*proto.EndOfHistory](sub)
	sub.send(&proto.Open{Channel: 1, ChainKey: "bye/b"})
	expect[*proto.Opened](sub)
	sub.send(&proto.Subscribe{Channel: 1, History: true}) // history only: ended before the shutdown
	expect[*proto.StartOfHistory](sub)
	expect[*proto.EndOfHistory](sub)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- ts.Shutdown(ctx)
	}()
	u := expect[*proto.Unsubscribed](sub)
	if u.Channel != 0 || u.Code != proto.CodeShuttingDown || u.Next != 2 {
		t.Fatalf("Unsubscribed %+v, want {channel 0, shutting down, next 2}", u)
	}
	for name, c := range map[string]*tclient{"subscriber": sub, "writer": w} {
		var msgs []proto.Message
		for {
			m, err := c.tryRecv(10 * time.Second)
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		if len(msgs) != 1 {
			t.Fatalf("%s: got %d messages after the shutdown began (%v), want one Fatal", name, len(msgs), msgs)
		}
		if f, ok := msgs[0].(*proto.Fatal); !ok || f.Code != proto.CodeShuttingDown {
			t.Fatalf("%s: got %+v, want Fatal{shutting down}", name, msgs[0])
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if sec := docSection(t, "## 3. "); !strings.Contains(sec, "`Unsubscribed{ch, shutting down, next}`") || !strings.Contains(sec, "then `Fatal{shutting down}`") {
		t.Errorf("PROTOCOL.md §3 does not say that a shutdown sends Unsubscribed{shutting down} and then Fatal")
	}
}

// TestHelloRefusals (points 3, 4 and 5): before the HelloAck every
// problem with the first frame is answered with a refusing HelloAck
// (version, zero features, key size and nonce), never Fatal, and the
// connection is closed; PROTOCOL.md §6.2 lists each code, and §2 the
// first frame's own size limit.
func TestHelloRefusals(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{})
	addr := ts.addrs["v4"]
	hello := func(edit func(h *proto.Hello)) []byte {
		h := proto.Hello{Version: proto.ProtocolVersion, Route: Route, ChainKey: "x"}
		edit(&h)
		body, err := h.AppendBinary(nil)
		if err != nil {
			t.Fatalf("encode Hello: %v", err)
		}
		return proto.AppendFrame(nil, body)
	}
	ok := hello(func(*proto.Hello) {})
	var oversized [4]byte
	binary.LittleEndian.PutUint32(oversized[:], maxHelloSize+1)
	badMagic := bytes.Clone(ok)
	badMagic[proto.FrameHeaderSize+1] = 'X'
	badKeySize := hello(func(h *proto.Hello) {})
	// The key size follows type, magic, version and features: 4 bytes
	// after the type, one each for version 1 and features 0.
	badKeySize[proto.FrameHeaderSize+1+4+2] = 100
	trailing := proto.AppendFrame(nil, append(bytes.Clone(ok[proto.FrameHeaderSize:]), 0))
	ping, _ := (&proto.Ping{ID: 1}).AppendBinary(nil)
	cases := []struct {
		name  string
		first []byte
		code  proto.ErrorCode
	}{
		{"first frame over 16 KiB", oversized[:], proto.CodeMalformed},
		{"bad magic", badMagic, proto.CodeMalformed},
		{"undefined key size", badKeySize, proto.CodeMalformed},
		{"byte after the last field", trailing, proto.CodeMalformed},
		{"ping as the first frame", proto.AppendFrame(nil, ping), proto.CodeMalformed},
		{"identity without an identity key, key size 0", hello(func(h *proto.Hello) { h.Features = proto.FeatureServerIdentity }), proto.CodeHandshakeFailed},
		{"identity without an identity key, key size 128", hello(func(h *proto.Hello) {
			h.Features, h.KeySize = proto.FeatureServerIdentity, proto.KeySize(kex.KeySize128)
		}), proto.CodeHandshakeFailed},
		{"wrong route", hello(func(h *proto.Hello) { h.Route = "/auth" }), proto.CodeInvalidChainKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc := dialRaw(t, addr)
			if _, err := nc.Write(tc.first); err != nil {
				t.Fatalf("write: %v", err)
			}
			_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			fr := proto.NewFrameReader(nc, 0)
			body, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("read the reply: %v", err)
			}
			m, err := proto.DecodeMessage(body)
			if err != nil {
				t.Fatalf("decode the reply: %v", err)
			}
			ack, isAck := m.(*proto.HelloAck)
			if !isAck {
				t.Fatalf("got %s %+v, want a refusing HelloAck", m.Type(), m)
			}
			if ack.Code != tc.code || ack.Version != proto.ProtocolVersion || ack.Features != 0 || ack.KeySize != 0 || ack.Nonce != ([proto.NonceSize]byte{}) {
				t.Fatalf("HelloAck %+v, want code %v with zero features, key size and nonce", ack, tc.code)
			}
			if _, err := fr.ReadFrame(); err == nil {
				t.Fatalf("a frame after the refusing HelloAck")
			}
			expectDocFailure(t, "### 6.2 ", tc.code)
		})
	}
	frames := docSection(t, "## 2. ")
	if !strings.Contains(frames, fmt.Sprint(maxHelloSize)) || !strings.Contains(frames, "`HelloAck{malformed}`") {
		t.Errorf("PROTOCOL.md §2 does not give the first frame's limit (%d bytes) and its HelloAck{malformed}", maxHelloSize)
	}
	if !strings.Contains(docSection(t, "## 4. "), "never with `Fatal`") {
		t.Errorf("PROTOCOL.md §4 does not say that a bad first frame gets a HelloAck, never Fatal")
	}
}

// TestSubscribeFailures (point 7): every Error a Subscribe can get is
// listed in §6.8, conflict (history from past the head) included.
func TestSubscribeFailures(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{})
	c := dial(t, ts.addrs["v4"], "subfail", kex.KeySizeNone)
	expect[*proto.Opened](c)
	expect[*proto.Confirmed](c.appendCheck(0, 1, testEvents("e", 2)))
	cases := []struct {
		name string
		m    proto.Subscribe
		code proto.ErrorCode
	}{
		{"past the head", proto.Subscribe{History: true, From: 3}, proto.CodeConflict},
		{"channel not open", proto.Subscribe{Channel: 4, Live: true}, proto.CodeUnknownChannel},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.send(&tc.m)
			e := expect[*proto.Error](c)
			if e.Code != tc.code || e.Request != proto.TypeSubscribe || e.Channel != tc.m.Channel {
				t.Fatalf("Error %+v, want %v", e, tc.code)
			}
			expectDocFailure(t, "### 6.8 ", tc.code)
		})
	}
	c.send(&proto.Subscribe{History: true, From: 2}) // at the head: fine
	expect[*proto.StartOfHistory](c)
	expect[*proto.EndOfHistory](c)
	c.send(&proto.Subscribe{Live: true})
	expect[*proto.StartOfHistory](c)
	expect[*proto.EndOfHistory](c)
	c.send(&proto.Subscribe{Live: true})
	if e := expect[*proto.Error](c); e.Code != proto.CodeAlreadySubscribed {
		t.Fatalf("second Subscribe: %+v", e)
	}
	expectDocFailure(t, "### 6.8 ", proto.CodeAlreadySubscribed)
}

// TestChainKeyExamples (point 9): the server accepts and refuses exactly
// the chain keys that PROTOCOL.md §5.1's examples say it does, on Open
// and in the Hello.
func TestChainKeyExamples(t *testing.T) {
	sec := docSection(t, "### 5.1 ")
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| (accepted|refused)[^|]*\\|$")
	rows := row.FindAllStringSubmatch(sec, -1)
	if len(rows) < 10 {
		t.Fatalf("PROTOCOL.md §5.1 has %d chain key examples, want at least 10", len(rows))
	}
	ts := startServer(t, Config{MaxChannels: len(rows) + 1}, chain.Config{}, storeOpts{})
	c := dial(t, ts.addrs["v4"], "", kex.KeySizeNone)
	for i, r := range rows {
		key, accepted := r[1], r[2] == "accepted"
		ch := uint32(i + 1)
		c.send(&proto.Open{Channel: ch, ChainKey: key})
		switch m := c.recv().(type) {
		case *proto.Opened:
			if !accepted {
				t.Errorf("Open %q: accepted; PROTOCOL.md says refused", key)
			}
		case *proto.Error:
			if accepted || m.Code != proto.CodeInvalidChainKey {
				t.Errorf("Open %q: %v (%s); PROTOCOL.md says %s", key, m.Code, m.Reason, r[2])
			}
		default:
			t.Fatalf("Open %q: got %s", key, m.Type())
		}
		_, err := tryDial(t, ts.addrs["v4"], key, kex.KeySizeNone)
		var ce *proto.CodeError
		if accepted != (err == nil) || !accepted && (!errors.As(err, &ce) || ce.Code != proto.CodeInvalidChainKey) {
			t.Errorf("Hello with %q: %v; PROTOCOL.md says %s", key, err, r[2])
		}
	}
}

// TestLockRules (point 9): locks are re-entrant without counting, owned by
// the connection per chain (a Close of another channel on the chain keeps
// them, the Close of the last one releases them), and released before the
// server's end of stream reaches a client that half-closed.
func TestLockRules(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{})
	addr := ts.addrs["v4"]
	a := dial(t, addr, "locks/x", kex.KeySizeNone)
	expect[*proto.Opened](a)
	b := dial(t, addr, "locks/x", kex.KeySizeNone)
	expect[*proto.Opened](b)
	var id uint64
	lock := func(c *tclient, ch uint32, key uint64, unlock bool) proto.ErrorCode {
		t.Helper()
		id++
		if unlock {
			c.send(&proto.Unlock{Channel: ch, ID: id, Key: key})
		} else {
			c.send(&proto.Lock{Channel: ch, ID: id, Key: key})
		}
		r := expect[*proto.LockResult](c)
		if r.ID != id || r.Key != key || r.Channel != ch {
			t.Fatalf("LockResult %+v for request %d on channel %d, key %d", r, id, ch, key)
		}
		return r.Code
	}
	steps := []struct {
		name   string
		c      *tclient
		ch     uint32
		key    uint64
		unlock bool
		want   proto.ErrorCode
	}{
		{"lock", a, 0, 1, false, proto.CodeOK},
		{"lock again: ok", a, 0, 1, false, proto.CodeOK},
		{"another connection", b, 0, 1, false, proto.CodeLockHeld},
		{"another connection's unlock", b, 0, 1, true, proto.CodeNotLockOwner},
		{"one unlock releases", a, 0, 1, true, proto.CodeOK},
		{"unlock of a free key", a, 0, 1, true, proto.CodeNotLockOwner},
		{"free for the other connection", b, 0, 1, false, proto.CodeOK},
		{"lock for the channel test", a, 0, 2, false, proto.CodeOK},
	}
	for _, s := range steps {
		if got := lock(s.c, s.ch, s.key, s.unlock); got != s.want {
			t.Fatalf("%s: %v, want %v", s.name, got, s.want)
		}
	}
	// Channel 3 on the same chain: its Close keeps the lock taken on 0,
	// and a lock taken through 3 can be released through 0.
	a.send(&proto.Open{Channel: 3, ChainKey: "locks/x"})
	expect[*proto.Opened](a)
	if got := lock(a, 3, 5, false); got != proto.CodeOK {
		t.Fatalf("lock through channel 3: %v", got)
	}
	a.send(&proto.Close{Channel: 3})
	expect[*proto.Closed](a)
	if got := lock(b, 0, 2, false); got != proto.CodeLockHeld {
		t.Fatalf("lock taken on channel 0 after Close of channel 3: %v, want lock held", got)
	}
	if got := lock(a, 0, 5, true); got != proto.CodeOK {
		t.Fatalf("unlock through channel 0 of a lock taken through 3: %v", got)
	}
	// The connection's end: a client that half-closes and waits for the
	// server's end of stream finds its locks released.
	a.nc.(*net.TCPConn).CloseWrite()
	a.expectClosed()
	if got := lock(b, 0, 2, false); got != proto.CodeOK {
		t.Fatalf("lock after the holder's connection ended: %v, want ok at once", got)
	}
	for _, code := range []proto.ErrorCode{proto.CodeLockHeld, proto.CodeNotLockOwner, proto.CodeUnknownChannel} {
		expectDocFailure(t, "### 6.17 ", code)
	}
	if sec := docSection(t, "### 6.17 "); !strings.Contains(sec, "owned by the connection") || !strings.Contains(sec, "one Unlock releases") {
		t.Errorf("PROTOCOL.md §6.17 does not state lock ownership and re-entry")
	}
}

// TestTruncatedFrameClosesSilently (point 9): a stream that ends inside a
// frame is closed without a Fatal, as §2 says.
func TestTruncatedFrameClosesSilently(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{})
	c := dial(t, ts.addrs["v4"], "", kex.KeySizeNone)
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], 100)
	_, _ = c.nc.Write(append(hdr[:], 1, 2, 3))
	c.nc.(*net.TCPConn).CloseWrite()
	if f := c.expectClosed(); f != nil {
		t.Fatalf("Fatal %+v after a truncated frame, want a close without one", f)
	}
	if !strings.Contains(docSection(t, "## 2. "), "closes a truncated connection without a `Fatal`") {
		t.Errorf("PROTOCOL.md §2 does not say a truncated connection is closed without a Fatal")
	}
}

// TestProtocolDocLimits (point 9): §9 gives every limit and timeout a
// client can meet, with the server's defaults.
func TestProtocolDocLimits(t *testing.T) {
	cfg := Config{}
	cfg.setDefaults()
	sec := docSection(t, "## 9. ")
	rows := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\| ([^|]+) \| ([^|]+) \| [^|]+ \|$`).FindAllStringSubmatch(sec, -1) {
		rows[strings.TrimSpace(m[1])] = m[2]
	}
	secs := func(d time.Duration) string { return fmt.Sprintf("%d s", int(d.Seconds())) }
	cases := []struct{ row, want string }{
		{"first frame (the Hello)", fmt.Sprintf("%d bytes", maxHelloSize)},
		{"frame body", "8 MiB"},
		{"channels per connection", fmt.Sprintf("default %d", cfg.MaxChannels)},
		{"connections", fmt.Sprintf("default %d", cfg.MaxConnections)},
		{"replies outstanding per connection (Appends in flight included)", fmt.Sprintf("default %d", cfg.MaxPending)},
		{"Hello and key exchange", "default " + secs(cfg.HandshakeTimeout)},
		{"silence from the client", "default " + secs(cfg.IdleTimeout)},
		{"silence from the client", "a `Ping` after " + secs(cfg.IdleTimeout/2)},
		{"a client that reads nothing", "default " + secs(cfg.WriteTimeout)},
		{"opening a chain (Open, channel 0)", secs(openTimeout)},
		{"duplicate window", "default 65536"},              // chain.Config.DedupWindow's default
		{"client time ahead of the server's clock", "2 s"}, // chain.Config.MaxClockSkew's default
	}
	if cfg.MaxFrameSize != 8<<20 {
		t.Errorf("MaxFrameSize default %d, the test expects 8 MiB", cfg.MaxFrameSize)
	}
	for _, tc := range cases {
		got, ok := rows[tc.row]
		if !ok {
			t.Errorf("PROTOCOL.md §9 has no row %q", tc.row)
			continue
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("PROTOCOL.md §9 %q says %q, want it to give %q", tc.row, strings.TrimSpace(got), tc.want)
		}
	}
}

package netio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/chain/memlog"
	"github.com/atedb/atedb/chain/mmapstore"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/mmaplog"
	"github.com/atedb/atedb/proto"
	"github.com/atedb/atedb/store"
)

// testServer is a Server on loopback with an in-memory registry.
type testServer struct {
	*Server
	reg   *chain.Registry
	addrs map[string]string // "v4", "v6" -> host:port
	logs  *logStore
}

// storeOpts chooses the log behind a test server: memlog with Options,
// or, with Real, the memory-mapped log on disk (sync always).
type storeOpts struct {
	memlog.Options
	Real bool
}

type logStore struct {
	mu   sync.Mutex
	opts memlog.Options
	logs map[chain.Key]*memlog.Log
}

func (s *logStore) Open(key chain.Key) (chain.Log, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := memlog.New(s.opts)
	if s.logs == nil {
		s.logs = map[chain.Key]*memlog.Log{}
	}
	s.logs[key] = l
	return l, nil
}

func (s *logStore) Exists(key chain.Key) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.logs[key]
	return ok, nil
}

// storeFunc is a chain.Store made of an open function (Exists: never).
type storeFunc func(key chain.Key) (chain.Log, error)

func (f storeFunc) Open(key chain.Key) (chain.Log, error) { return f(key) }
func (f storeFunc) Exists(chain.Key) (bool, error)        { return false, nil }

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("NETIO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer starts a server on 127.0.0.1 and, when available, [::1].
// cfg.Registry is filled in when nil; chainCfg configures it.
func startServer(t testing.TB, cfg Config, chainCfg chain.Config, logOpts storeOpts) *testServer {
	t.Helper()
	ts := &testServer{addrs: map[string]string{}, logs: &logStore{opts: logOpts.Options}}
	if cfg.Registry == nil {
		if chainCfg.Store == nil {
			chainCfg.Store = ts.logs
		}
		if logOpts.Real {
			root, err := store.Open(t.TempDir(), store.Options{
				Log:    mmaplog.Options{SegmentSize: 4 << 20, MaxRecordSize: 1 << 20},
				Logger: testLogger(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { root.Close() }) // after the registry's
			chainCfg.Store = mmapstore.New(root)
		}
		chainCfg.Logger = testLogger(t)
		reg, err := chain.NewRegistry(chainCfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Registry = reg
	}
	ts.reg = cfg.Registry
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = srv
	var wg sync.WaitGroup
	for fam, host := range map[string]string{"v4": "127.0.0.1", "v6": "::1"} {
		l, err := Listen(host, 0)
		if err != nil {
			if fam == "v6" {
				continue
			}
			t.Fatal(err)
		}
		ts.addrs[fam] = l.Addr().String()
		wg.Go(func() {
			if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		wg.Wait()
		if err := ts.reg.Close(); err != nil && !errors.Is(err, chain.ErrClosed) {
			t.Errorf("registry Close: %v", err)
		}
	})
	return ts
}

// families returns the address families to run a test on.
func (ts *testServer) families() []string {
	if _, ok := ts.addrs["v6"]; ok {
		return []string{"v4", "v6"}
	}
	return []string{"v4"}
}

// tclient is a minimal protocol client for tests: one goroutine, explicit
// frames, so tests can also send what a real client never would.
type tclient struct {
	t   testing.TB
	nc  net.Conn
	fc  proto.FrameConn
	ack proto.HelloAck
}

// dialRaw connects without a hello.
func dialRaw(t testing.TB, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// dial connects, says hello for chainKey with the given key size and
// returns the client once the HelloAck is OK (failing the test otherwise).
func dial(t testing.TB, addr, chainKey string, size kex.KeySize) *tclient {
	t.Helper()
	c, err := tryDial(t, addr, chainKey, size)
	if err != nil {
		t.Fatalf("dial %s %q: %v", addr, chainKey, err)
	}
	return c
}

func tryDial(t testing.TB, addr, chainKey string, size kex.KeySize) (*tclient, error) {
	return tryDialHello(t, addr, proto.Hello{Version: proto.ProtocolVersion, KeySize: proto.KeySize(size), Route: Route, ChainKey: chainKey})
}

// tryDialHello is tryDial with a hello of the test's choosing.
func tryDialHello(t testing.TB, addr string, hello proto.Hello) (*tclient, error) {
	nc := dialRaw(t, addr)
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	helloBody, err := hello.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	stream := proto.NewStream(nc, 0)
	if err := stream.WriteFrame(helloBody); err != nil {
		return nil, err
	}
	if err := stream.Flush(); err != nil {
		return nil, err
	}
	ackBody, err := stream.ReadFrame()
	if err != nil {
		return nil, fmt.Errorf("read HelloAck: %w", err)
	}
	ackBody = bytes.Clone(ackBody)
	c := &tclient{t: t, nc: nc, fc: stream}
	if err := c.ack.Decode(ackBody); err != nil {
		return nil, err
	}
	if c.ack.Code != proto.CodeOK {
		return c, &proto.CodeError{Code: c.ack.Code, Reason: c.ack.Reason}
	}
	if c.ack.KeySize != 0 {
		sess, err := kex.ClientHandshake(stream, helloBody, ackBody, kex.KeySize(c.ack.KeySize), kex.ClientConfig{})
		if err != nil {
			return nil, err
		}
		c.fc = sess.Conn(stream)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *tclient) send(m proto.Message) {
	c.t.Helper()
	body, err := m.AppendBinary(nil)
	if err != nil {
		c.t.Fatalf("encode %T: %v", m, err)
	}
	c.sendRaw(body)
}

func (c *tclient) sendRaw(body []byte) {
	c.t.Helper()
	if err := c.fc.WriteFrame(body); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	if err := c.fc.Flush(); err != nil {
		c.t.Fatalf("flush: %v", err)
	}
}

// recv returns the next message other than a Ping (which it answers).
func (c *tclient) recv() proto.Message {
	c.t.Helper()
	m, err := c.tryRecv(10 * time.Second)
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return m
}

func (c *tclient) tryRecv(timeout time.Duration) (proto.Message, error) {
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
		body, err := c.fc.ReadFrame()
		if err != nil {
			return nil, err
		}
		m, err := proto.DecodeMessage(body)
		if err != nil {
			return nil, err
		}
		if p, ok := m.(*proto.Ping); ok {
			body, _ := (&proto.Pong{ID: p.ID}).AppendBinary(nil)
			if err := c.fc.WriteFrame(body); err == nil {
				_ = c.fc.Flush()
			}
			continue
		}
		if ev, ok := m.(*proto.Events); ok {
			// Detach from the read buffer.
			ev.Items = bytes.Clone(ev.Items)
		}
		return m, nil
	}
}

// expect receives a message of type T.
func expect[T proto.Message](c *tclient) T {
	c.t.Helper()
	m := c.recv()
	v, ok := m.(T)
	if !ok {
		c.t.Fatalf("received %s %+v, want %T", m.Type(), m, *new(T))
	}
	return v
}

// expectClosed waits for the server to close the connection, returning
// the last Fatal it sent (nil if none).
func (c *tclient) expectClosed() *proto.Fatal {
	c.t.Helper()
	var last *proto.Fatal
	for {
		m, err := c.tryRecv(10 * time.Second)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection still open")
			}
			return last
		}
		if f, ok := m.(*proto.Fatal); ok {
			last = f
		}
	}
}

func testEvent(s string) []byte {
	b, err := (&proto.Event{Data: []byte(s)}).AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func testEvents(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = testEvent(fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// eventData returns the data of every item of an Events message.
func eventItems(t testing.TB, m *proto.Events) []proto.EventItem {
	var out []proto.EventItem
	it := m.Iter()
	for {
		item, ok := it.Next()
		if !ok {
			break
		}
		var ev proto.Event
		if err := ev.Decode(item.Event); err != nil {
			t.Fatalf("stored event does not decode: %v", err)
		}
		item.Event = ev.Data
		out = append(out, item)
	}
	return out
}

// appendSync appends on channel ch and returns the reply.
func (c *tclient) appendSync(ch uint32, id uint64, events [][]byte) proto.Message {
	c.t.Helper()
	c.send(&proto.Append{Channel: ch, CommitID: id, Events: events})
	return c.recv()
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

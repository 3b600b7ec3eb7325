package netio

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/chain"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// TestConnectionBuffersRecycled runs many short connections at once, with
// and without wire encryption, ending in each way a connection ends: the
// client's clean close, a Fatal (an oversized frame), a client that leaves
// in the middle of the key exchange. Every ending hands the connection's
// frame buffers back to proto's pools for the next connection, so a
// buffer still used by the connection it came from would corrupt another
// connection's frames: each connection checks that it reads back exactly
// its own events, and under -race the pools' annotations report any use
// after the hand-back as a race.
func TestConnectionBuffersRecycled(t *testing.T) {
	const maxFrame = 512 << 10
	ts := startServer(t, Config{MaxFrameSize: maxFrame}, chain.Config{}, storeOpts{})
	addr := ts.addrs["v4"]
	const workers, rounds = 8, 12
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for r := range rounds {
				var err error
				switch mode := (g + r) % 4; mode {
				case 0, 1:
					size := kex.KeySizeNone
					if mode == 1 {
						size = kex.KeySize192
					}
					err = ownEventsRoundTrip(t, addr, fmt.Sprintf("pool/g%d-r%d", g, r), size, g, r)
				case 2:
					err = endWithOversizedFrame(t, addr, maxFrame)
				case 3:
					err = leaveDuringKeyExchange(t, addr)
				}
				if err != nil {
					t.Errorf("worker %d round %d: %v", g, r, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// ownEventsRoundTrip opens a chain of its own, appends events that only
// this connection writes (large enough together to grow the server's read
// buffer past its pooled size), reads them back as history and closes.
func ownEventsRoundTrip(t *testing.T, addr, key string, size kex.KeySize, g, r int) error {
	c, err := tryDial(t, addr, key, size)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	if err := expectType(c, proto.TypeOpened); err != nil {
		return err
	}
	var want [][]byte
	for i, n := range []int{100, 40 << 10, 90 << 10} {
		want = append(want, bytes.Repeat([]byte{byte(g), byte(r), byte(i), 0x5a}, n/4))
	}
	events := make([][]byte, len(want))
	for i, d := range want {
		if events[i], err = (&proto.Event{Data: d}).AppendBinary(nil); err != nil {
			return err
		}
	}
	body, err := (&proto.Append{Channel: 0, CommitID: 1, Events: events}).AppendBinary(nil)
	if err != nil {
		return err
	}
	if err := c.writeFlush(body); err != nil {
		return err
	}
	if err := expectType(c, proto.TypeConfirmed); err != nil {
		return err
	}
	body, _ = (&proto.Subscribe{Channel: 0, History: true}).AppendBinary(nil)
	if err := c.writeFlush(body); err != nil {
		return err
	}
	if err := expectType(c, proto.TypeStartHistory); err != nil {
		return err
	}
	var got [][]byte
	for {
		m, err := c.tryRecv(10 * time.Second)
		if err != nil {
			return err
		}
		if m.Type() == proto.TypeEndHistory {
			break
		}
		ev, ok := m.(*proto.Events)
		if !ok {
			return fmt.Errorf("history: got %s, want Events", m.Type())
		}
		it := ev.Iter()
		for item, ok := it.Next(); ok; item, ok = it.Next() {
			var e proto.Event
			if err := e.Decode(item.Event); err != nil {
				return fmt.Errorf("history event: %w", err)
			}
			got = append(got, bytes.Clone(e.Data))
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("history has %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			return fmt.Errorf("history event %d differs from the one appended (%d bytes, want %d)", i, len(got[i]), len(want[i]))
		}
	}
	return nil
}

// endWithOversizedFrame announces a frame over the limit on an encrypted
// connection and expects the server's Fatal and close.
func endWithOversizedFrame(t *testing.T, addr string, maxFrame int) error {
	c, err := tryDial(t, addr, "pool/oversized", kex.KeySize192)
	if err != nil {
		return err
	}
	defer c.nc.Close()
	if err := expectType(c, proto.TypeOpened); err != nil {
		return err
	}
	if _, err := c.nc.Write([]byte{0, 0, byte(2 * maxFrame >> 16), 0}); err != nil {
		return err
	}
	for {
		m, err := c.tryRecv(10 * time.Second)
		if err != nil {
			return fmt.Errorf("connection ended without Fatal: %w", err)
		}
		if f, ok := m.(*proto.Fatal); ok {
			if f.Code != proto.CodeFrameTooLarge {
				return fmt.Errorf("Fatal %v, want %v", f.Code, proto.CodeFrameTooLarge)
			}
			return nil
		}
	}
}

// leaveDuringKeyExchange reads the hello-ack and the server hello, then
// closes instead of finishing the key exchange.
func leaveDuringKeyExchange(t *testing.T, addr string) error {
	nc := dialRaw(t, addr)
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	hello, _ := (&proto.Hello{Version: proto.ProtocolVersion, KeySize: proto.KeySize(kex.KeySize192), Route: Route, ChainKey: "pool/left"}).AppendBinary(nil)
	if _, err := nc.Write(proto.AppendFrame(nil, hello)); err != nil {
		return err
	}
	fr := proto.NewFrameReader(nc, 0)
	for _, name := range []string{"hello-ack", "server hello"} {
		if _, err := fr.ReadFrame(); err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
	}
	return nil
}

// writeFlush sends one frame, reporting errors instead of failing the test
// (it runs in goroutines).
func (c *tclient) writeFlush(body []byte) error {
	if err := c.fc.WriteFrame(body); err != nil {
		return err
	}
	return c.fc.Flush()
}

// expectType receives the next message and checks its type.
func expectType(c *tclient, want proto.MsgType) error {
	m, err := c.tryRecv(10 * time.Second)
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", want, err)
	}
	if m.Type() != want {
		if e, ok := m.(*proto.Error); ok {
			return fmt.Errorf("got Error %v %q, want %s", e.Code, e.Reason, want)
		}
		return fmt.Errorf("got %s, want %s", m.Type(), want)
	}
	return nil
}

// TestWorkersReusedAndStopped: connections one after the other are served
// by a few reused worker goroutines, not one new goroutine each, and
// Shutdown returns only once the idle workers have ended.
func TestWorkersReusedAndStopped(t *testing.T) {
	ts := startServer(t, Config{}, chain.Config{}, storeOpts{})
	const n = 20
	for i := range n {
		c := dial(t, ts.addrs["v4"], "", kex.KeySize128)
		c.send(&proto.Ping{ID: uint64(i)})
		if p := expect[*proto.Pong](c); p.ID != uint64(i) {
			t.Fatalf("Pong %d, want %d", p.ID, i)
		}
		c.nc.Close()
		// Let the server see the close and the worker go idle.
		deadline := time.Now().Add(5 * time.Second)
		for ts.Stats().Connections != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	if got := workerGoroutines(); got == 0 || got > 2 {
		t.Fatalf("%d worker goroutines after %d connections one after the other, want 1 or 2 (reused)", got, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := workerGoroutines(); got != 0 {
		t.Fatalf("%d worker goroutines after Shutdown returned, want 0", got)
	}
}

// workerGoroutines counts the goroutines running Server.worker.
func workerGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "netio.(*Server).worker(")
}

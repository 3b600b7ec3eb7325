package harness

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// The round-trip limits (rtt1k, echo64) measure what a closed-loop
// request/reply costs on this machine without any server logic: requests
// of 1 KiB framed like atedb's (u32 length + body), 16-byte replies, over
// loopback TCP to an echo server in another process (client and server in
// one process would share one Go scheduler, which makes the hand-offs
// cheaper than between the bench and a real server). The echo server is
// this same executable, started again (StartProcess) with echoChildEnv
// set: init runs it before main, so every program that links the harness
// can measure the limits without a helper binary.

// echoChildEnv, when set in the environment to an address, makes the
// process an echo server listening there until it is stopped.
const echoChildEnv = "ATEDB_BENCH_ECHO_CHILD"

// EchoConns is the number of connections of the echo64 limit (closed64's
// producers).
const EchoConns = 64

const (
	echoRequest = 1024 // body bytes of a request
	echoReply   = 12   // body bytes of a reply (16 with the length)
)

func init() {
	addr := os.Getenv(echoChildEnv)
	if addr == "" {
		return
	}
	// The parent ends the child with SIGKILL: runEchoChild returning at
	// all is a failure.
	fmt.Fprintln(os.Stderr, "echo child:", runEchoChild(addr))
	os.Exit(1)
}

// runEchoChild is the echo server process. It serves until the process is
// killed and returns only the error that stopped it listening or accepting.
func runEchoChild(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serveEcho(c)
	}
}

// serveEcho answers every framed request on c with a 16-byte reply. It
// reads through a 64 KiB buffer, as atedb's frame reader does: one read
// returns the whole request, the next finds the socket empty.
func serveEcho(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	var hdr [4]byte
	body := make([]byte, 64<<10)
	var reply [4 + echoReply]byte
	binary.LittleEndian.PutUint32(reply[:], echoReply)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n > uint32(len(body)) {
			return
		}
		if _, err := io.ReadFull(r, body[:n]); err != nil {
			return
		}
		if _, err := c.Write(reply[:]); err != nil {
			return
		}
	}
}

// EchoLimits are the round-trip limits.
type EchoLimits struct {
	RTT1KPerSec  float64 // one connection: round trips per second
	RTT1KP50     time.Duration
	Echo64PerSec float64 // EchoConns connections, one request each in flight
}

// MeasureEcho starts the echo child (its log in dir, removed afterwards)
// and measures, for about d each, one connection's closed-loop round trips
// and EchoConns connections'.
func MeasureEcho(ctx context.Context, dir string, d time.Duration) (*EchoLimits, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("echo limit: %w", err)
	}
	port, err := FreePort()
	if err != nil {
		return nil, fmt.Errorf("echo limit: %w", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logPath := filepath.Join(dir, fmt.Sprintf("limit-echo-%d.log", port))
	defer os.Remove(logPath)
	p, err := StartProcess("echo server", exe, nil, logPath, []string{echoChildEnv + "=" + addr})
	if err != nil {
		return nil, fmt.Errorf("echo limit: %w", err)
	}
	defer p.Kill()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.WaitListening(wctx, addr); err != nil {
		return nil, fmt.Errorf("echo limit: %w", err)
	}
	e := &EchoLimits{}
	var h Histogram
	n, err := echoLoad(ctx, addr, 1, d, &h)
	if err != nil {
		return nil, err
	}
	e.RTT1KPerSec, e.RTT1KP50 = n, h.Quantile(0.5)
	if e.Echo64PerSec, err = echoLoad(ctx, addr, EchoConns, d, nil); err != nil {
		return nil, err
	}
	return e, nil
}

// echoLoad runs conns closed-loop connections to addr for about d and
// returns the round trips per second; h, if not nil, gets every round
// trip's time (only for conns == 1: a Histogram is not concurrent).
func echoLoad(ctx context.Context, addr string, conns int, d time.Duration, h *Histogram) (float64, error) {
	cs := make([]net.Conn, conns)
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	}()
	var dialer net.Dialer
	for i := range cs {
		c, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return 0, fmt.Errorf("echo limit: %w", err)
		}
		cs[i] = c
	}
	var total atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := make([]byte, 4+echoRequest)
			binary.LittleEndian.PutUint32(req, echoRequest)
			fill(req[4:], 3)
			var reply [4 + echoReply]byte
			n := int64(0)
			for ctx.Err() == nil {
				t := time.Now()
				if t.After(deadline) {
					break
				}
				_, err := c.Write(req)
				if err == nil {
					_, err = io.ReadFull(c, reply[:])
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("echo limit: %w", err) })
					break
				}
				if h != nil {
					h.Record(time.Since(t))
				}
				n++
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(total.Load()) / time.Since(start).Seconds(), ctx.Err()
}

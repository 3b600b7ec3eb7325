package harness

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
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
// this same executable, started again with echoChildEnv set: init runs it
// before main, so every program that links the harness can measure the
// limits without a helper binary.

// echoChildEnv, when set in the environment, makes the process an echo
// server: it prints its address on stdout and serves until stdin closes.
const echoChildEnv = "ATEDB_BENCH_ECHO_CHILD"

// EchoConns is the number of connections of the echo64 limit (closed64's
// producers).
const EchoConns = 64

const (
	echoRequest = 1024 // body bytes of a request
	echoReply   = 12   // body bytes of a reply (16 with the length)
)

func init() {
	if os.Getenv(echoChildEnv) == "" {
		return
	}
	if err := runEchoChild(); err != nil {
		fmt.Fprintln(os.Stderr, "echo child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runEchoChild is the echo server process.
func runEchoChild() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	go func() {
		io.Copy(io.Discard, os.Stdin) // the parent closes stdin (or dies)
		os.Exit(0)
	}()
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

// MeasureEcho starts the echo child and measures, for about d each, one
// connection's closed-loop round trips and EchoConns connections'.
func MeasureEcho(ctx context.Context, d time.Duration) (*EchoLimits, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("echo limit: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), echoChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("echo limit: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("echo limit: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("echo limit: start %s: %w", exe, err)
	}
	defer func() {
		stdin.Close()
		if err := waitTimeout(cmd, 5*time.Second); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("echo limit: the echo server did not start: %w", err)
	}
	addr := strings.TrimSpace(line)
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

func waitTimeout(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return errors.New("timeout")
	}
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

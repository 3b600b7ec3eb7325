package main

// End-to-end tests: the real `atedb solo` server in its own process, on
// real TCP over 127.0.0.1 and [::1], driven by the `atedb append` and
// `atedb tail` commands (also real processes) and by the Go client.
//
// The processes are this test binary re-executed: with e2eExecEnv set, the
// init function below runs atedb's main instead of the tests. So the server
// under test is built exactly like the test (with -race under CI).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atedb/atedb/client"
	"github.com/atedb/atedb/kex"
	"github.com/atedb/atedb/proto"
)

// e2eExecEnv makes the test binary behave as the atedb command.
const e2eExecEnv = "E2E_RUN_ATEDB_MAIN"

func init() {
	if os.Getenv(e2eExecEnv) != "1" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// atedbCmd returns a command running atedb with args.
func atedbCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	// Under -race, a process sleeps 1 s at exit by default; these exit often.
	gorace := "atexit_sleep_ms=0"
	env := []string{e2eExecEnv + "=1"}
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "ATEDB_"): // the user's settings must not leak into the test
		case strings.HasPrefix(kv, "GORACE="):
			gorace = strings.TrimPrefix(kv, "GORACE=") + " " + gorace
		default:
			env = append(env, kv)
		}
	}
	env = append(env, "GORACE="+gorace)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// solo is a running `atedb solo` process.
type solo struct {
	t      testing.TB
	cmd    *exec.Cmd
	port   int
	host   string // as in a URL: 127.0.0.1 or [::1]
	out    *lockedBuffer
	done   chan struct{}
	waitEr error
}

var listeningRE = regexp.MustCompile(`Listening on (\S+) `)

// startSolo starts a server on listen:port (port 0: any) serving dir, and
// waits until it listens.
func startSolo(t testing.TB, listen string, port int, dir string, flags ...string) *solo {
	t.Helper()
	return startSoloArgs(t, listen, port, dir, flags, nil)
}

// startSoloArgs is startSolo with global flags (before "solo") and solo's
// own flags.
func startSoloArgs(t testing.TB, listen string, port int, dir string, global, soloFlags []string) *solo {
	t.Helper()
	args := append([]string{"--no-auth"}, global...)
	args = append(append(args, "solo"), soloFlags...)
	args = append(args, "-l", listen, "-p", strconv.Itoa(port), dir)
	cmd := atedbCmd(context.Background(), args...)
	s := &solo{t: t, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(s.out, pw)
	cmd.Stderr = s.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start atedb solo: %v", err)
	}
	go func() {
		s.waitEr = cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	t.Cleanup(func() { s.stop() })
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case addr := <-addrc:
		ta, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatalf("server printed a bad address %q: %v", addr, err)
		}
		s.port = ta.Port
		s.host = net.JoinHostPort(listen, "0")
		s.host = s.host[:len(s.host)-2]
	case <-s.done:
		t.Fatalf("atedb solo exited before listening (%v):\n%s", s.waitEr, s.out)
	case <-time.After(20 * time.Second):
		t.Fatalf("atedb solo did not report listening within 20s:\n%s", s.out)
	}
	return s
}

// url returns the chain URL for key on this server.
func (s *solo) url(key string) string {
	return fmt.Sprintf("tcp://%s:%d/db/%s", s.host, s.port, key)
}

// stop interrupts the server and checks that it shuts down cleanly.
func (s *solo) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
		if s.waitEr != nil {
			s.t.Errorf("atedb solo exited with %v after SIGINT:\n%s", s.waitEr, s.out)
		}
		if !strings.Contains(s.out.String(), "Goodbye!") {
			s.t.Errorf("atedb solo did not say Goodbye after SIGINT:\n%s", s.out)
		}
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("atedb solo did not exit within 15s of SIGINT:\n%s", s.out)
	}
}

// kill9 kills the server with SIGKILL and waits for it to be gone.
func (s *solo) kill9() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// cliResult is the outcome of one client command.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs an atedb client command with stdin and waits for it.
func cli(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := atedbCmd(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("atedb %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		t.Fatalf("atedb %v did not finish within 30s; stderr:\n%s", args, errb.String())
	}
	return cliResult{out.String(), errb.String(), code}
}

func haveIPv6Loopback() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// TestE2EReadmeFlow is the quick start of the README on IPv4 and IPv6:
// start the server, append lines, tail them back, follow new ones.
func TestE2EReadmeFlow(t *testing.T) {
	for _, tc := range []struct {
		name, listen string
		flags        []string // global flags for server and client
	}{
		{"ipv4", "127.0.0.1", nil},
		{"ipv6 plaintext", "::1", []string{"--no-wire-encryption"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.listen == "::1" && !haveIPv6Loopback() {
				t.Skip("no IPv6 loopback on this machine")
			}
			srv := startSolo(t, tc.listen, 0, t.TempDir(), tc.flags...)
			url := srv.url("readme/demo")
			withFlags := func(args ...string) []string { return append(append([]string(nil), tc.flags...), args...) }

			lines := []string{"hello", "world", "hello", "", "tab\tinside", "naïve ünïcode"}
			r := cli(t, strings.Join(lines, "\n")+"\n", withFlags("append", url)...)
			if r.code != 0 {
				t.Fatalf("append exited %d: %s", r.code, r.stderr)
			}
			if want := "0\n1\n2\n3\n4\n5\n"; r.stdout != want {
				t.Fatalf("append printed %q, want %q", r.stdout, want)
			}
			var want strings.Builder
			for i, l := range lines {
				fmt.Fprintf(&want, "%d\t%s\n", i, l)
			}
			r = cli(t, "", withFlags("tail", url)...)
			if r.code != 0 || r.stdout != want.String() {
				t.Fatalf("tail exited %d printing %q (stderr %q), want %q", r.code, r.stdout, r.stderr, want.String())
			}
			r = cli(t, "", withFlags("tail", "--from", "4", url)...)
			if r.code != 0 || r.stdout != "4\ttab\tinside\n5\tnaïve ünïcode\n" {
				t.Fatalf("tail --from 4 exited %d printing %q (stderr %q)", r.code, r.stdout, r.stderr)
			}

			// --follow prints the history, then what others append.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			follow := atedbCmd(ctx, withFlags("tail", "--follow", "--from", "5", url)...)
			fout, err := follow.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var ferr lockedBuffer
			follow.Stderr = &ferr
			if err := follow.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(fout)
			next := func() string {
				if !sc.Scan() {
					t.Fatalf("tail --follow ended early: %v; stderr:\n%s", sc.Err(), ferr.String())
				}
				return sc.Text()
			}
			if got := next(); got != "5\tnaïve ünïcode" {
				t.Fatalf("tail --follow first line %q", got)
			}
			r = cli(t, "live one\nlive two\n", withFlags("append", url)...)
			if r.code != 0 || r.stdout != "6\n7\n" {
				t.Fatalf("second append exited %d printing %q: %s", r.code, r.stdout, r.stderr)
			}
			if a, b := next(), next(); a != "6\tlive one" || b != "7\tlive two" {
				t.Fatalf("tail --follow printed %q, %q", a, b)
			}
			_ = follow.Process.Signal(os.Interrupt)
			if err := follow.Wait(); err != nil {
				t.Fatalf("tail --follow after SIGINT: %v; stderr:\n%s", err, ferr.String())
			}
		})
	}
}

// TestE2EDualStack: by default the server listens on "::", reachable
// over IPv4 and IPv6 at once.
func TestE2EDualStack(t *testing.T) {
	if !haveIPv6Loopback() {
		t.Skip("no IPv6 loopback on this machine")
	}
	srv := startSolo(t, "::", 0, t.TempDir())
	v4 := fmt.Sprintf("tcp://127.0.0.1:%d/db/dual", srv.port)
	v6 := fmt.Sprintf("tcp://[::1]:%d/db/dual", srv.port)
	if r := cli(t, "over four\n", "append", v4); r.code != 0 || r.stdout != "0\n" {
		t.Fatalf("append over IPv4 exited %d printing %q: %s", r.code, r.stdout, r.stderr)
	}
	if r := cli(t, "over six\n", "append", v6); r.code != 0 || r.stdout != "1\n" {
		t.Fatalf("append over IPv6 exited %d printing %q: %s", r.code, r.stdout, r.stderr)
	}
	for _, u := range []string{v4, v6} {
		if r := cli(t, "", "tail", u); r.code != 0 || r.stdout != "0\tover four\n1\tover six\n" {
			t.Fatalf("tail %s exited %d printing %q: %s", u, r.code, r.stdout, r.stderr)
		}
	}
}

// TestE2ERefusedRequests: client commands exit non-zero and print the
// server's reason when a request is refused.
func TestE2ERefusedRequests(t *testing.T) {
	dir := t.TempDir()
	srv := startSolo(t, "127.0.0.1", 0, dir)
	for _, tc := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stderr []string // all must appear
	}{
		{"append to a hidden segment", "x\n", []string{"append", srv.url("a/.hidden")}, 1,
			[]string{"invalid chain key", ".hidden"}},
		{"tail a path traversal", "", []string{"tail", srv.url("../etc")}, 1,
			[]string{"invalid chain key", ".."}},
		{"tail beyond the head", "", []string{"tail", "--from", "7", srv.url("short")}, 1,
			[]string{"--from 7", "beyond"}},
		{"tail a chain that does not exist", "", []string{"tail", srv.url("no/such/chain")}, 1,
			[]string{`chain "no/such/chain" does not exist`, "creates nothing"}},
		{"tail --follow a chain that does not exist", "", []string{"tail", "--follow", srv.url("no/such/chain")}, 1,
			[]string{`chain "no/such/chain" does not exist`}},
		{"bad url", "", []string{"tail", "http://127.0.0.1/db/x"}, 2,
			[]string{"unsupported scheme"}},
		{"no url", "", []string{"append"}, 2,
			[]string{"one chain URL"}},
		{"line too long", strings.Repeat("y", 100) + "\n", []string{"append", "--batch-bytes", "10", srv.url("long")}, 1,
			[]string{"longer than 10 bytes"}},
	} {
		if tc.name == "tail beyond the head" {
			if r := cli(t, "one\n", "append", srv.url("short")); r.code != 0 {
				t.Fatalf("append: %d %s", r.code, r.stderr)
			}
		}
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, tc.stdin, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, tc.code, r.stderr)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Fatalf("stderr %q does not contain %q", r.stderr, s)
				}
			}
		})
	}
	// The tails created nothing on the server.
	if _, err := os.Stat(filepath.Join(dir, "no")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a tail of a missing chain left %s/no behind: %v", dir, err)
	}
	// Nothing listens: a clear network error, exit 1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("tcp://%s/db/x", ln.Addr())
	ln.Close()
	r := cli(t, "", "tail", "--connect-timeout", "2s", dead)
	if r.code != 1 || !strings.Contains(r.stderr, "connect") {
		t.Fatalf("tail of a closed port exited %d: %q", r.code, r.stderr)
	}
}

// TestE2EKill9UnderLoad kills the server with SIGKILL while several
// writers append, restarts it on the same port, and checks that every
// confirmed event is stored once, at its confirmed offset, with its data.
// The writers reconnect and resend what was unanswered; the server
// recognises resent batches, so nothing is stored twice.
func TestE2EKill9UnderLoad(t *testing.T) {
	dir := t.TempDir()
	srv := startSolo(t, "127.0.0.1", 0, dir)
	url := srv.url("load/chain")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	const writers = 4
	type confirmed struct {
		off  uint64
		data string
	}
	var (
		mu   sync.Mutex
		got  []confirmed
		errs []error
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.Dial(ctx, url, client.WithReconnect(true, 10*time.Millisecond, 200*time.Millisecond),
				client.WithReconnectLimit(20*time.Second), client.WithWindow(8))
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			defer c.Close()
			type pending struct {
				f    *client.Future
				data []string
			}
			futs := make(chan pending, 8)
			waitDone := make(chan struct{})
			go func() {
				defer close(waitDone)
				for p := range futs {
					offs, err := p.f.Wait(ctx)
					mu.Lock()
					if err != nil {
						errs = append(errs, fmt.Errorf("writer %d: %w", w, err))
					} else {
						for i, o := range offs {
							got = append(got, confirmed{o, p.data[i]})
						}
					}
					mu.Unlock()
				}
			}()
			defer func() { close(futs); <-waitDone }()
			for b := 0; ; b++ {
				select {
				case <-stop:
					return
				default:
				}
				data := []string{fmt.Sprintf("w%d-b%d-e0", w, b), fmt.Sprintf("w%d-b%d-e1", w, b), fmt.Sprintf("w%d-b%d-e2", w, b)}
				evs := make([]proto.Event, len(data))
				for i, d := range data {
					evs[i] = proto.Event{Data: []byte(d)}
				}
				f, err := c.AppendAsync(ctx, client.Batch{Events: evs})
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("writer %d: %w", w, err))
					mu.Unlock()
					return
				}
				futs <- pending{f, data}
			}
		}()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	waitFor := func(n int, what string) {
		for count() < n {
			if ctx.Err() != nil {
				t.Fatalf("%s: only %d events confirmed", what, count())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A follower subscribed before the kill must see the whole chain, in
	// order, once, across the restart.
	// Its small buffer makes it pause and resume the server's stream too.
	follower, err := client.Dial(ctx, url, client.WithReconnect(true, 10*time.Millisecond, 200*time.Millisecond),
		client.WithReconnectLimit(20*time.Second), client.WithSubscribeBuffer(16<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	fsub, err := follower.Subscribe(ctx, client.SubscribeOptions{History: true, Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fsub.Close()
	waitFor(1000, "before the kill")
	srv.kill9()
	before := count()
	time.Sleep(100 * time.Millisecond) // writers see the connection drop and keep queueing
	// The same port, so the clients reconnect; t.Cleanup stops it.
	startSolo(t, "127.0.0.1", srv.port, dir)
	waitFor(before+1000, "after the restart")
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("writers failed: %v", errs)
	}
	t.Logf("%d events confirmed, %d of them before the kill", len(got), before)

	// Read everything back with a fresh client.
	c, err := client.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, client.SubscribeOptions{History: true})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[uint64]string{}
	seen := map[string]uint64{}
	var next uint64
	for ev, err := range sub.Events(ctx) {
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		if ev.Offset != next {
			t.Fatalf("stored offsets jump from %d to %d", next, ev.Offset)
		}
		next++
		d := string(ev.Data)
		if prev, dup := seen[d]; dup {
			t.Fatalf("event %q stored twice, at %d and %d", d, prev, ev.Offset)
		}
		seen[d] = ev.Offset
		stored[ev.Offset] = d
	}
	for _, cf := range got {
		if d, ok := stored[cf.off]; !ok || d != cf.data {
			t.Fatalf("confirmed %q at offset %d, but the log holds %q there (present: %v)", cf.data, cf.off, d, ok)
		}
	}
	if len(stored) < len(got) {
		t.Fatalf("log holds %d events, fewer than the %d confirmed", len(stored), len(got))
	}

	for i := uint64(0); i < next; i++ {
		ev, err := fsub.Next(ctx)
		if err != nil {
			t.Fatalf("follower across the restart, after %d events: %v", i, err)
		}
		if ev.Offset != i || string(ev.Data) != stored[i] {
			t.Fatalf("follower got offset %d %q, want offset %d %q", ev.Offset, ev.Data, i, stored[i])
		}
	}

	// The CLI sees the same chain.
	r := cli(t, "", "tail", "--from", strconv.FormatUint(next-1, 10), url)
	if r.code != 0 || r.stdout != fmt.Sprintf("%d\t%s\n", next-1, stored[next-1]) {
		t.Fatalf("tail of the last event exited %d printing %q: %s", r.code, r.stdout, r.stderr)
	}
}

// TestE2EKill9CLIAppend: a person pipes lines into `atedb append`, the
// server is killed with SIGKILL mid-way and restarted; every line whose
// offset the command printed is in the chain at that offset.
func TestE2EKill9CLIAppend(t *testing.T) {
	dir := t.TempDir()
	srv := startSolo(t, "127.0.0.1", 0, dir)
	url := srv.url("cli/kill")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	cmd := atedbCmd(ctx, "append", "--retry", "20s", "--batch-events", "16", url)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const total = 3000
	writeErr := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(stdin)
		for i := range total {
			fmt.Fprintf(w, "line %d\n", i)
			if i%100 == 99 {
				if err := w.Flush(); err != nil {
					writeErr <- err
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		w.Flush()
		writeErr <- stdin.Close()
	}()
	var offsets []uint64
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		o, err := strconv.ParseUint(sc.Text(), 10, 64)
		if err != nil {
			t.Fatalf("append printed %q", sc.Text())
		}
		offsets = append(offsets, o)
		if len(offsets) == total/3 && !killed {
			killed = true
			srv.kill9()
			time.Sleep(100 * time.Millisecond)
			srv = startSolo(t, "127.0.0.1", srv.port, dir)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("append across a server restart: %v; stderr:\n%s", err, stderr.String())
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("feeding stdin: %v", err)
	}
	if len(offsets) != total {
		t.Fatalf("append printed %d offsets for %d lines", len(offsets), total)
	}
	r := cli(t, "", "tail", url)
	if r.code != 0 {
		t.Fatalf("tail exited %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	byOffset := map[uint64]string{}
	for _, l := range lines {
		off, data, ok := strings.Cut(l, "\t")
		n, err := strconv.ParseUint(off, 10, 64)
		if !ok || err != nil {
			t.Fatalf("tail printed %q", l)
		}
		byOffset[n] = data
	}
	for i, o := range offsets {
		if want := fmt.Sprintf("line %d", i); byOffset[o] != want {
			t.Fatalf("line %d was confirmed at offset %d, which holds %q", i, o, byOffset[o])
		}
	}
	if len(byOffset) != total {
		t.Fatalf("chain holds %d events, want %d (nothing lost, nothing twice)", len(byOffset), total)
	}
}

// TestE2EManyChainsConcurrent: several writers append to several chains
// over one connection each (a channel per chain) while subscribers join
// mid-way with history and live; every subscriber sees exactly the stored
// sequence, in order, and every confirmed event is where it was confirmed.
func TestE2EManyChainsConcurrent(t *testing.T) {
	srv := startSolo(t, "127.0.0.1", 0, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys := []string{"many/a", "many/b", "many/c"}
	const writers, batches, perBatch = 3, 40, 5
	type conf struct {
		chain string
		off   uint64
		data  string
	}
	var (
		mu  sync.Mutex
		all []conf
	)
	var wg sync.WaitGroup
	fail := make(chan error, 64)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.Dial(ctx, srv.url(keys[0]))
			if err != nil {
				fail <- err
				return
			}
			defer c.Close()
			chains := []*client.Chain{c.Chain()}
			for _, k := range keys[1:] {
				ch, err := c.OpenChain(ctx, k)
				if err != nil {
					fail <- err
					return
				}
				chains = append(chains, ch)
			}
			for b := range batches {
				for i, ch := range chains {
					evs := make([]proto.Event, perBatch)
					for e := range evs {
						evs[e] = proto.Event{Data: []byte(fmt.Sprintf("w%d-b%d-e%d", w, b, e))}
					}
					offs, err := ch.Append(ctx, evs...)
					if err != nil {
						fail <- err
						return
					}
					mu.Lock()
					for e, o := range offs {
						all = append(all, conf{keys[i], o, string(evs[e].Data)})
					}
					mu.Unlock()
				}
			}
		}()
	}
	total := uint64(writers * batches * perBatch)
	confirmed := func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return uint64(len(all))
	}
	type seen struct {
		chain string
		data  []string
	}
	results := make(chan seen, 2*len(keys))
	heads := make(chan uint64, 2*len(keys))
	// Subscribers join while the writers run: at a quarter and at half of
	// the events.
	for n := range 2 {
		for confirmed() < uint64(n+1)*total*uint64(len(keys))/4 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		for _, k := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := client.Dial(ctx, srv.url(k), client.WithSubscribeBuffer(16<<10))
				if err != nil {
					fail <- err
					return
				}
				defer c.Close()
				sub, err := c.Subscribe(ctx, client.SubscribeOptions{History: true, Live: true})
				if err != nil {
					fail <- err
					return
				}
				heads <- sub.Head()
				var got []string
				for uint64(len(got)) < total {
					ev, err := sub.Next(ctx)
					if err != nil {
						fail <- fmt.Errorf("subscriber of %s after %d events: %w", k, len(got), err)
						return
					}
					if ev.Offset != uint64(len(got)) {
						fail <- fmt.Errorf("subscriber of %s: offset %d after %d events", k, ev.Offset, len(got))
						return
					}
					got = append(got, string(ev.Data))
				}
				results <- seen{k, got}
			}()
		}
	}
	wg.Wait()
	close(fail)
	for err := range fail {
		t.Fatal(err)
	}
	close(results)
	close(heads)
	joined := 0
	for h := range heads {
		if h > 0 && h < total {
			joined++
		}
	}
	t.Logf("%d of %d subscriptions started with part of the history written and the rest to come live", joined, 2*len(keys))
	if joined == 0 {
		t.Errorf("no subscription joined mid-way: the history/live join was not exercised")
	}
	byChain := map[string][][]string{}
	for r := range results {
		byChain[r.chain] = append(byChain[r.chain], r.data)
	}
	for _, k := range keys {
		subs := byChain[k]
		if len(subs) != 2 || strings.Join(subs[0], ",") != strings.Join(subs[1], ",") {
			t.Fatalf("chain %s: the subscribers saw different sequences", k)
		}
	}
	for _, cf := range all {
		if got := byChain[cf.chain][0][cf.off]; got != cf.data {
			t.Fatalf("chain %s offset %d: confirmed %q, subscribers saw %q", cf.chain, cf.off, cf.data, got)
		}
	}
}

// TestE2EWireEncryptionNegotiation: the connection uses the larger of the
// client's wish and the server's floor, so --no-wire-encryption on both
// sides gives plaintext, a client can ask for more than the floor, and a
// client cannot go below it.
func TestE2EWireEncryptionNegotiation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		server []string
		floor  kex.KeySize
	}{
		{[]string{"--no-wire-encryption"}, kex.KeySizeNone},
		{nil, kex.KeySize128}, // the default
		{[]string{"--wire-encryption", "192"}, kex.KeySize192},
	} {
		srv := startSolo(t, "127.0.0.1", 0, t.TempDir(), tc.server...)
		for _, size := range []kex.KeySize{kex.KeySizeNone, kex.KeySize128, kex.KeySize256} {
			c, err := client.Dial(ctx, srv.url("enc"), client.WithWireEncryption(size))
			if err != nil {
				t.Fatalf("server floor %v, Dial asking for %v: %v", tc.floor, size, err)
			}
			if got, want := c.WireEncryption(), max(size, tc.floor); got != want {
				t.Fatalf("server floor %v, client asking for %v: negotiated %v, want %v", tc.floor, size, got, want)
			}
			if _, err := c.Append(ctx, proto.Event{Data: []byte("sealed " + size.String())}); err != nil {
				t.Fatalf("Append with %v: %v", size, err)
			}
			c.Close()
		}
		r := cli(t, "", "--wire-encryption", "192", "tail", srv.url("enc"))
		if r.code != 0 || strings.Count(r.stdout, "\n") != 3 {
			t.Fatalf("tail with 192-bit encryption exited %d printing %q: %s", r.code, r.stdout, r.stderr)
		}
		r = cli(t, "", "--no-wire-encryption", "tail", srv.url("enc"))
		if r.code != 0 || strings.Count(r.stdout, "\n") != 3 {
			t.Fatalf("tail with --no-wire-encryption exited %d printing %q: %s", r.code, r.stdout, r.stderr)
		}
		srv.stop()
	}
}

// BenchmarkE2EAppend measures durable appends (--sync always, 100-byte
// events, one producer, wire encryption 128) through the Go client to a
// real server process, one event per batch waiting for each confirmation
// (sync) and pipelined (window 64). sub-benchmark fdatasync is the
// machine's limit for the sync case: one 100-byte write and fdatasync per
// operation in the same directory.
func BenchmarkE2EAppend(b *testing.B) {
	dir := b.TempDir()
	srv := startSolo(b, "127.0.0.1", 0, dir)
	ctx := context.Background()
	var seq int64
	event := func() proto.Event {
		seq++
		return proto.Event{Timestamp: seq, Data: make([]byte, 100)}
	}
	b.Run("mode=sync/events=1", func(b *testing.B) {
		c, err := client.Dial(ctx, srv.url("bench/sync"))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.SetBytes(100)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Append(ctx, event()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mode=pipelined/window=64/events=1", func(b *testing.B) {
		c, err := client.Dial(ctx, srv.url("bench/pipe"), client.WithWindow(64))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		futs, done := waitFutures(ctx, 64)
		b.SetBytes(100)
		b.ReportAllocs()
		for b.Loop() {
			f, err := c.AppendAsync(ctx, client.Batch{Events: []proto.Event{event()}})
			if err != nil {
				b.Fatal(err)
			}
			futs <- f
		}
		close(futs)
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	})
	b.Run("fdatasync", func(b *testing.B) {
		// Into a preallocated file, as a log segment is: no size change,
		// so fdatasync need not write metadata.
		f, err := os.Create(dir + "/fdatasync-probe")
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		const size = 64 << 20
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 100)
		var off int64
		b.SetBytes(100)
		for b.Loop() {
			if _, err := f.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
			off = (off + 100) % (size - 100)
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestE2ESecondServerRefused: while one atedb serves a logs directory, a
// second one on the same directory, in any mode and on another port,
// refuses to start with a message naming the directory and the first one's
// process, and the first keeps serving.
func TestE2ESecondServerRefused(t *testing.T) {
	dir := t.TempDir()
	first := startSolo(t, "127.0.0.1", 0, dir)
	if r := cli(t, "x\n", "append", first.url("two/servers")); r.code != 0 {
		t.Fatalf("append to the first server: %d %s", r.code, r.stderr)
	}
	for _, flags := range [][]string{nil, {"--sync", "interval"}, {"--journal=false"}} {
		t.Run(strings.Join(append([]string{"solo"}, flags...), " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := append(append([]string{"--no-auth", "solo"}, flags...), "-l", "127.0.0.1", "-p", "0", dir)
			code, _, stderr := runCmd(t, ctx, args...)
			if code == 0 {
				t.Fatal("a second server on the same logs directory started")
			}
			for _, want := range []string{"another atedb", fmt.Sprintf("process %d", first.cmd.Process.Pid)} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr %q does not say %q", stderr, want)
				}
			}
		})
	}
	if r := cli(t, "y\n", "append", first.url("two/servers")); r.code != 0 || !strings.Contains(r.stdout, "1") {
		t.Fatalf("the first server after the refusals: %d %q %s", r.code, r.stdout, r.stderr)
	}
}

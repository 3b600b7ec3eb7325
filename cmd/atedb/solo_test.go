package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atedb/atedb/kex"
)

// syncBuffer is an io.Writer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runCmd(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb syncBuffer
	code := run(ctx, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSoloRefusesFlagsItWouldIgnore(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		args []string
		env  map[string]string
		file string
		want string
	}{
		"sync interval without interval mode": {args: []string{"solo", "--sync-interval", "5ms", dir}, want: "--sync-interval needs --sync interval"},
		"journal with interval mode":          {args: []string{"solo", "--sync", "interval", "--journal", dir}, want: "--journal needs --sync always"},
		"bad sync mode":                       {args: []string{"solo", "--sync", "sometimes", dir}, want: `--sync "sometimes"`},
		"bad wire encryption":                 {args: []string{"--wire-encryption", "64", "solo", dir}, want: `--wire-encryption "64"`},
		"zero limit":                          {args: []string{"solo", "--max-connections", "0", dir}, want: "--max-connections must be positive"},
		"batch over frame":                    {args: []string{"solo", "--max-batch-bytes", "10000", "--max-frame-size", "10500", dir}, want: "below --max-frame-size"},
		"bad listen address":                  {args: []string{"solo", "-l", "localhost", "-p", "0", dir}, want: "not an IP address"},
		"two paths":                           {args: []string{"solo", dir, "-p", "0", "other"}, want: "one logs-path"},
		"unknown flag":                        {args: []string{"solo", "--frobnicate", dir}, want: "frobnicate"},
		"from the environment":                {args: []string{"solo", dir}, env: map[string]string{"ATEDB_SYNC": "never"}, want: `--sync "never"`},
		"from the config file":                {args: []string{"solo", dir}, file: "sync-interval 5ms\n", want: "--sync-interval needs --sync interval"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := tc.args
			if tc.file != "" {
				f := filepath.Join(t.TempDir(), "atedb.conf")
				if err := os.WriteFile(f, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append([]string{"--config", f}, args...)
			}
			code, _, stderr := runCmd(t, context.Background(), args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 mentioning %q", code, stderr, tc.want)
			}
		})
	}
}

func TestResolveGlobalFlags(t *testing.T) {
	cases := []struct {
		args  []string
		size  kex.KeySize
		level slog.Level
	}{
		{nil, kex.KeySize128, slog.LevelWarn},
		{[]string{"-v"}, kex.KeySize128, slog.LevelInfo},
		{[]string{"-v", "-v"}, kex.KeySize128, slog.LevelDebug},
		{[]string{"-d"}, kex.KeySize128, slog.LevelDebug},
		{[]string{"--wire-encryption", "256"}, kex.KeySize256, slog.LevelWarn},
		{[]string{"--wire-encryption", "256", "--no-wire-encryption"}, kex.KeySizeNone, slog.LevelWarn},
	}
	for _, tc := range cases {
		var out bytes.Buffer
		r := &rootConfig{Stdout: &out, Stderr: &out}
		root := newRootCommand(r)
		if err := root.Parse(append(tc.args, "solo")); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if err := r.resolve(); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if r.WireEncryption != tc.size {
			t.Errorf("%v: wire encryption %v, want %v", tc.args, r.WireEncryption, tc.size)
		}
		if !r.Logger.Enabled(context.Background(), tc.level) || (tc.level > slog.LevelDebug && r.Logger.Enabled(context.Background(), tc.level-4)) {
			t.Errorf("%v: logger level is not %v", tc.args, tc.level)
		}
	}
}

// TestSoloStartsAndStops runs solo in-process: it must print where it
// listens and the product's messages, and exit 0 on a shutdown signal
// (here the context of run).
func TestSoloStartsAndStops(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--no-wire-encryption", "solo", "-l", "127.0.0.1", "-p", "0", dir}, strings.NewReader(""), &out, &errb)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "Press ctrl-c to exit") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no start-up message; stdout %q stderr %q", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !regexp.MustCompile(`Listening on 127\.0\.0\.1:\d+ \(IPv4 only\)`).MatchString(out.String()) {
		t.Errorf("listening line missing: %q", out.String())
	}
	if !strings.Contains(out.String(), "every chain is open to every writer") {
		t.Errorf("no warning about authentication without --no-auth: %q", out.String())
	}
	if !strings.Contains(out.String(), "Wire encryption: off") {
		t.Errorf("--no-wire-encryption not reported: %q", out.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d; stderr %q", code, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("solo did not stop")
	}
	got := out.String()
	if i, j := strings.Index(got, "Shutting down..."), strings.Index(got, "Goodbye!"); i < 0 || j < i {
		t.Fatalf("shutdown messages missing or out of order: %q", got)
	}
}

// TestSoloDebugProfiles checks that --cpuprofile and --trace are written
// and completed at shutdown, and that an unwritable path is refused at
// start-up rather than ignored.
func TestSoloDebugProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, tr := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "run.trace")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--no-wire-encryption", "solo", "-l", "127.0.0.1", "-p", "0",
			"--cpuprofile", cpu, "--trace", tr, filepath.Join(dir, "data")}, strings.NewReader(""), &out, &errb)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "Press ctrl-c to exit") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no start-up message; stdout %q stderr %q", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d; stderr %q", code, errb.String())
	}
	for path, magic := range map[string]string{cpu: "\x1f\x8b", tr: "go 1."} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), magic) {
			t.Errorf("%s starts with %q, want %q", filepath.Base(path), b[:min(len(b), 8)], magic)
		}
	}

	code, _, stderr := runCmd(t, context.Background(), "--no-wire-encryption", "solo", "-l", "127.0.0.1", "-p", "0",
		"--trace", filepath.Join(dir, "no-such-dir", "x.trace"), filepath.Join(dir, "data"))
	if code != 1 || !strings.Contains(stderr, "--trace") {
		t.Fatalf("unwritable --trace: exit %d, stderr %q; want exit 1 naming --trace", code, stderr)
	}
}

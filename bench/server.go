package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/atedb/atedb/bench/internal/harness"
)

// buildAtedb builds cmd/atedb from the module that holds the working
// directory into dir and returns the binary's path.
func buildAtedb(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the atedb module: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("find the atedb module: run bench from inside the atedb source tree, or pass -atedb")
	}
	bin := filepath.Join(dir, "atedb")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/atedb")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/atedb: %w\n%s", err, b)
	}
	return bin, nil
}

// serverConfig is how one atedb server is started.
type serverConfig struct {
	bin            string
	dataDir        string
	logPath        string
	sync           string
	wireEncryption int      // 0: --no-wire-encryption
	extra          []string // appended after the solo flags, before the data directory
}

// atedbServer is an `atedb solo` child process on 127.0.0.1.
type atedbServer struct {
	cfg  serverConfig
	proc *harness.Process
	addr string // host:port
	// startedIn is the time from exec to accepting connections.
	startedIn time.Duration
	stopped   bool
}

// args returns the command line of cfg on port.
func (c serverConfig) args(port int) []string {
	args := []string{"--no-auth"}
	if c.wireEncryption == 0 {
		args = append(args, "--no-wire-encryption")
	} else {
		args = append(args, "--wire-encryption", fmt.Sprint(c.wireEncryption))
	}
	args = append(args, "solo", "-l", "127.0.0.1", "-p", fmt.Sprint(port), "--sync", c.sync)
	args = append(args, c.extra...)
	return append(args, c.dataDir)
}

// startServer starts atedb with cfg on a free port and waits until it
// accepts connections.
func startServer(ctx context.Context, cfg serverConfig) (*atedbServer, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	proc, err := harness.StartProcess("atedb", cfg.bin, cfg.args(port), cfg.logPath, nil)
	if err != nil {
		return nil, err
	}
	s := &atedbServer{cfg: cfg, proc: proc, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := proc.WaitListening(wctx, s.addr); err != nil {
		proc.Kill()
		return nil, err
	}
	s.startedIn = time.Since(t0)
	return s, nil
}

// restart starts the same server again (same data directory, new port).
func (s *atedbServer) restart(ctx context.Context) (*atedbServer, error) {
	return startServer(ctx, s.cfg)
}

// stop shuts the server down gracefully (SIGTERM); later calls do nothing.
// It reports a server that exited with an error, or before it was asked to.
func (s *atedbServer) stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	return s.proc.Stop(30 * time.Second)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/atedb/atedb/bench/internal/harness"
)

// pprofEnv names the environment variable that makes a binary built with
// the profiling hook serve net/http/pprof on the address it holds.
const pprofEnv = "ATEDB_BENCH_PPROF"

// pprofHook is added to package main of cmd/atedb with `go build -overlay`
// when bench runs with -pprof: the source tree is not touched, and the
// hook does nothing unless pprofEnv is set.
const pprofHook = `package main

import (
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
)

func init() {
	addr := os.Getenv("` + pprofEnv + `")
	if addr == "" {
		return
	}
	runtime.SetBlockProfileRate(100000)
	runtime.SetMutexProfileFraction(100)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go http.ListenAndServe(addr, mux)
}
`

// buildAtedb builds cmd/atedb from the module that holds the working
// directory into dir and returns the binary's path. With profiling, the
// binary also carries pprofHook.
func buildAtedb(ctx context.Context, dir string, profiling bool) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the atedb module: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("find the atedb module: run bench from inside the atedb source tree, or pass -atedb")
	}
	root := filepath.Dir(gomod)
	bin := filepath.Join(dir, "atedb")
	args := []string{"build", "-o", bin}
	if profiling {
		hook := filepath.Join(dir, "zz_bench_pprof.go")
		if err := os.WriteFile(hook, []byte(pprofHook), 0o644); err != nil {
			return "", err
		}
		overlay, err := json.Marshal(map[string]map[string]string{
			"Replace": {filepath.Join(root, "cmd", "atedb", "zz_bench_pprof.go"): hook},
		})
		if err != nil {
			return "", err
		}
		ov := filepath.Join(dir, "overlay.json")
		if err := os.WriteFile(ov, overlay, 0o644); err != nil {
			return "", err
		}
		args = append(args, "-overlay", ov)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/atedb")...)
	cmd.Dir = root
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
	pprof          bool     // serve pprof (binary built with the hook)
}

// atedbServer is an `atedb solo` child process on 127.0.0.1.
type atedbServer struct {
	cfg       serverConfig
	proc      *harness.Process
	addr      string // host:port
	pprofAddr string // host:port of the pprof endpoint, if any
	// startedIn is the time from exec to accepting connections.
	startedIn time.Duration
	stopped   atomic.Bool // set before a deliberate stop or kill
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
	var env []string
	pprofAddr := ""
	if cfg.pprof {
		pp, err := harness.FreePort()
		if err != nil {
			return nil, err
		}
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", pp)
		env = []string{pprofEnv + "=" + pprofAddr}
	}
	t0 := time.Now()
	proc, err := harness.StartProcess("atedb", cfg.bin, cfg.args(port), cfg.logPath, env)
	if err != nil {
		return nil, err
	}
	s := &atedbServer{cfg: cfg, proc: proc, addr: fmt.Sprintf("127.0.0.1:%d", port), pprofAddr: pprofAddr}
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
	if s.stopped.Swap(true) {
		return nil
	}
	return s.proc.Stop(30 * time.Second)
}

// kill kills the server with SIGKILL (kill -9) and waits until it is gone.
func (s *atedbServer) kill() {
	s.stopped.Store(true)
	s.proc.Kill()
}

// ErrServerRSS reports a server killed for using more memory than -max-server-rss.
var ErrServerRSS = errors.New("server memory above the cap")

// watch calls died with the reason if the server exits without stop or
// kill, or if its resident memory exceeds maxRSS bytes (it is then killed,
// so that a benchmark never pushes a shared machine into its OOM killer),
// until done is closed.
func (s *atedbServer) watch(done <-chan struct{}, maxRSS int64, died func(error)) {
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.proc.Done():
				if !s.stopped.Load() {
					died(s.proc.Alive())
				}
				return
			case <-t.C:
				if rss, err := s.proc.RSS(); err == nil && maxRSS > 0 && rss > maxRSS {
					s.kill()
					died(fmt.Errorf("%w: resident %d MiB > %d MiB (-max-server-rss); killed", ErrServerRSS, rss>>20, maxRSS>>20))
					return
				}
			case <-done:
				return
			}
		}
	}()
}

// defaultMaxRSS is a third of the machine's memory, at most 8 GiB.
func defaultMaxRSS() int64 {
	const cap = 8 << 30
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return cap
	}
	var kb int64
	if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err != nil || kb <= 0 {
		return cap
	}
	return min(cap, kb<<10/3)
}

// fetchProfile saves the server's named pprof profile (with query q, e.g.
// "seconds=10") to path.
func (s *atedbServer) fetchProfile(ctx context.Context, name, q, path string) error {
	if s.pprofAddr == "" {
		return fmt.Errorf("server runs without the pprof hook")
	}
	u := "http://" + s.pprofAddr + "/debug/pprof/" + name
	if q != "" {
		u += "?" + q
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("pprof %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof %s: %s", name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("pprof %s: %w", name, err)
	}
	return f.Close()
}

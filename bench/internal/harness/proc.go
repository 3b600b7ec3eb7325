package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a server child process started by the harness. Its output
// goes to a log file whose tail is quoted when it fails. Methods are safe
// for concurrent use.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	logf    *os.File
	done    chan struct{}
	mu      sync.Mutex
	waitErr error
}

// ErrExited reports a server that exited while the harness still needed it.
var ErrExited = errors.New("harness: server exited")

// StartProcess starts bin with args, sending stdout and stderr to logPath.
// The child is killed if the harness dies (Linux: parent-death signal).
func StartProcess(name, bin string, args []string, logPath string, env []string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	setChildAttrs(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, logf: logf, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// exitErr describes how the process ended, with the tail of its log.
func (p *Process) exitErr() error {
	p.mu.Lock()
	err := p.waitErr
	p.mu.Unlock()
	return fmt.Errorf("%w: %s: %v; log %s:\n%s", ErrExited, p.Name, err, p.LogPath, p.LogTail(2048))
}

// LogTail returns up to n bytes of the end of the process log.
func (p *Process) LogTail(n int64) string {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil {
		return ""
	}
	return strings.TrimRight(string(b), "\n")
}

// WaitListening waits until addr accepts TCP connections, the process
// exits (an error quoting its log), or ctx ends.
func (p *Process) WaitListening(ctx context.Context, addr string) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return p.exitErr()
		case <-ctx.Done():
			return fmt.Errorf("%s not listening on %s: %w; log:\n%s", p.Name, addr, ctx.Err(), p.LogTail(2048))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// CPU returns the CPU time the process has used so far.
func (p *Process) CPU() (time.Duration, error) { return ProcessCPU(p.Pid()) }

// RSS returns the process's resident set size in bytes.
func (p *Process) RSS() (int64, error) { return ProcessRSS(p.Pid()) }

// Alive reports an error if the process has exited.
func (p *Process) Alive() error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
		return nil
	}
}

// Stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns an error if the process had to be killed or exited
// with a failure status after SIGTERM.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		p.mu.Lock()
		err := p.waitErr
		p.mu.Unlock()
		if err != nil {
			return fmt.Errorf("%s after SIGTERM: %w; log:\n%s", p.Name, err, p.LogTail(1024))
		}
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed", p.Name, grace)
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

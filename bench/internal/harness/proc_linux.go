//go:build linux

package harness

import (
	"os/exec"
	"syscall"
)

// setChildAttrs makes the kernel kill the child when the harness dies, so
// an interrupted run leaves no server behind.
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

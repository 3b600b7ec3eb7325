// Package leakcheck fails a test binary whose goroutines outlive its tests,
// the way net/http's main_test.go and Prometheus' goleak use do.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) {
//		leakcheck.Main(m, "github.com/atedb/atedb/netio.", "github.com/atedb/atedb/chain")
//	}
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Grace is how long [Main] waits for goroutines that are still winding
// down (a connection closing, a writer draining) before calling them leaked.
const Grace = 5 * time.Second

// Main runs the tests, then, if they passed, fails the binary when a
// goroutine whose stack contains any of marks is still alive after
// [Grace]. It calls os.Exit and does not return.
func Main(m *testing.M, marks ...string) {
	code := m.Run()
	if code == 0 {
		if leaked := Leaked(Grace, marks...); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// Leaked polls until no goroutine other than the test runner's own has a
// stack containing one of marks, or timeout passes; it returns the stacks of
// those still alive then, or "".
func Leaked(timeout time.Duration, marks ...string) string {
	deadline := time.Now().Add(timeout)
	for {
		leaked := matching(marks)
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// matching returns the stacks of the goroutines that mention a mark, leaving
// out the test runner (testing.M, a test's own goroutine that is unwinding)
// and the goroutine running this check.
func matching(marks []string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "testing.(*M).") || strings.Contains(g, "testing.tRunner") ||
			strings.Contains(g, "internal/leakcheck.matching(") {
			continue
		}
		for _, mark := range marks {
			if strings.Contains(g, mark) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

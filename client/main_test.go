package client

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if any goroutine started by this package is still
// alive once every test has finished (net/http's main_test.go does the same).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitForLeaks(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked by package client:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// waitForLeaks polls until no goroutine runs code of this package (other
// than the test runner itself) or the timeout passes, and returns the stacks
// of those that remain.
func waitForLeaks(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		leaked := interestingGoroutines()
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func interestingGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "github.com/atedb/atedb/client.") {
			continue
		}
		if strings.Contains(g, "client.TestMain") || strings.Contains(g, "client.interestingGoroutines") {
			continue
		}
		if strings.Contains(g, "testing.(*T).Run") && !strings.Contains(g, "created by github.com/atedb/atedb/client") {
			// A test's own goroutine that is still unwinding.
			continue
		}
		out = append(out, g)
	}
	return out
}

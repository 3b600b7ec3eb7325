package leakcheck

import (
	"strings"
	"testing"
	"time"
)

func parkedForLeakcheckTest(started chan<- struct{}, stop <-chan struct{}) {
	close(started)
	<-stop
}

func TestLeakedFindsAndForgets(t *testing.T) {
	started, stop := make(chan struct{}), make(chan struct{})
	go parkedForLeakcheckTest(started, stop)
	<-started
	got := Leaked(50*time.Millisecond, "parkedForLeakcheckTest")
	if !strings.Contains(got, "parkedForLeakcheckTest") {
		t.Fatalf("Leaked = %q, want the parked goroutine's stack", got)
	}
	close(stop)
	if got := Leaked(2*time.Second, "parkedForLeakcheckTest"); got != "" {
		t.Fatalf("after the goroutine ended, Leaked = %q, want \"\"", got)
	}
}

func TestLeakedIgnoresTestRunner(t *testing.T) {
	// This test's own goroutine runs testing.tRunner and mentions this
	// package: it must not count.
	if got := Leaked(0, "leakcheck.TestLeakedIgnoresTestRunner"); got != "" {
		t.Fatalf("Leaked = %q, want the test runner left out", got)
	}
}

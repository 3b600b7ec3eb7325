package harness

import (
	"context"
	"testing"
	"time"
)

// TestMeasureEcho runs the round-trip limits against the echo child (this
// test binary, started again): both rates must be measured.
func TestMeasureEcho(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := MeasureEcho(ctx, t.TempDir(), 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if e.RTT1KPerSec <= 0 || e.RTT1KP50 <= 0 || e.Echo64PerSec <= 0 {
		t.Fatalf("echo limits not measured: %+v", e)
	}
	if e.RTT1KP50 > time.Second {
		t.Fatalf("median round trip %v: the echo child is not answering promptly", e.RTT1KP50)
	}
}

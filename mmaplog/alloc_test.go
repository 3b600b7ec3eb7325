package mmaplog

import (
	"testing"
	"time"
)

// TestZeroAllocs proves the hot paths allocate nothing in steady state: a
// synchronous Append (counting the writer goroutine's work too) and a
// Cursor.Next that reuses its buffer.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	l := openT(t, t.TempDir(), Options{Sync: SyncInterval, SyncInterval: time.Hour, MaxRecordSize: 1 << 10})
	defer l.Close()
	batch := [][]byte{make([]byte, 100), make([]byte, 200)}
	for range 500 { // warm up buffers and pools; leaves records for the cursor
		if _, err := l.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(200, func() {
		if _, err := l.Append(batch); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Append: %v allocations per call, want 0", n)
	}
	c, err := l.NewCursor(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]Record, 0, 8)
	if n := testing.AllocsPerRun(100, func() {
		recs, err := c.Next(buf, 0)
		if err != nil || len(recs) == 0 {
			t.Fatalf("Next: %d records, %v", len(recs), err)
		}
	}); n != 0 {
		t.Errorf("Cursor.Next: %v allocations per call, want 0", n)
	}
}

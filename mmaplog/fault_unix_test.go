//go:build unix

package mmaplog

import (
	"errors"
	"os"
	"testing"
)

// TestTruncatedSegmentUnderCursor cuts the mapped active segment of a
// running log short (page-aligned, as an operator's truncate or a failing
// device does) and reads through a cursor: the read that reaches the cut
// returns a *CorruptionError naming the segment instead of killing the
// process with SIGBUS, the log stops taking appends with that error, and
// other logs are untouched. "probe" cuts inside one large payload whose
// header is still mapped, so only the payload probe can notice it.
func TestTruncatedSegmentUnderCursor(t *testing.T) {
	cases := map[string]struct {
		sizes []int // payload sizes appended, one batch each
		cut   int64 // new file size
	}{
		"headers": {sizes: repeatInt(300, 200), cut: 8192},
		"probe":   {sizes: []int{20000}, cut: 8192},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, dir, Options{})
			defer l.Close()
			other := openT(t, t.TempDir(), Options{})
			defer other.Close()
			for i, n := range tc.sizes {
				appendOne(t, l, uint64(i), n)
			}
			appendOne(t, other, 0, 100)
			c, err := l.NewCursor(0)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if recs, err := c.Next(make([]Record, 0, 1), 0); err != nil || len(recs) != 1 {
				t.Fatalf("first Next: %d records, %v", len(recs), err) // maps the segment
			}
			if err := os.Truncate(segPath(dir, 0), tc.cut); err != nil {
				t.Fatal(err)
			}
			var got error
			for range len(tc.sizes) + 1 {
				recs, err := c.Next(make([]Record, 0, 64), 0)
				if err != nil {
					got = err
					break
				}
				for _, r := range recs {
					_ = append([]byte(nil), r.Payload...) // what a sender does
				}
				if len(recs) == 0 {
					break
				}
			}
			if name == "probe" {
				c2, _ := l.NewCursor(0)
				_, got = c2.Next(nil, 0)
				c2.Close()
			}
			ce, ok := isCorrupt(got)
			if !ok || ce.Segment != segmentName(0) {
				t.Fatalf("reading past the cut: %v, want a *CorruptionError in %s", got, segmentName(0))
			}
			if _, err := l.Append([][]byte{{1}}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Append after the fault: %v, want ErrCorrupt", err)
			}
			if err := other.Err(); err != nil {
				t.Fatalf("other log affected: %v", err)
			}
			appendOne(t, other, 1, 100)
		})
	}
}

func repeatInt(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func appendOne(t *testing.T, l *Log, off uint64, size int) {
	t.Helper()
	first, err := l.Append([][]byte{payloadFor(off, size)})
	if err != nil || first != off {
		t.Fatalf("Append(%d): %d, %v", off, first, err)
	}
}

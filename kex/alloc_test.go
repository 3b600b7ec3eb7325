package kex

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/atedb/atedb/proto"
)

// plainFC hides proto.Stream's BeginFrame/EndFrame, so Conn takes its
// fallback path (seal into its own buffer, then WriteFrame).
type plainFC struct{ fc proto.FrameConn }

func (p plainFC) ReadFrame() ([]byte, error) { return p.fc.ReadFrame() }
func (p plainFC) WriteFrame(b []byte) error  { return p.fc.WriteFrame(b) }
func (p plainFC) Flush() error               { return p.fc.Flush() }

// TestZeroAllocSteadyState proves that sealing, sending, receiving and
// opening a frame allocates nothing once buffers have grown, for every key
// size and for both write paths.
func TestZeroAllocSteadyState(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	for _, size := range allSizes {
		for _, path := range []string{"in-place", "fallback", "open-frame", "begin-end", "begin-end-fallback"} {
			t.Run(fmt.Sprintf("size=%v/path=%s", size, path), func(t *testing.T) {
				r := mustHandshake(t, hsOpts{size: size})
				var wire bytes.Buffer
				var wfc, rfc proto.FrameConn = proto.NewStream(&wire, 0), proto.NewStream(&wire, 0)
				if path == "fallback" || path == "begin-end-fallback" {
					wfc, rfc = plainFC{wfc}, plainFC{rfc}
				}
				w, rd := r.cli.Conn(wfc), r.srv.Conn(rfc)
				read := rd.ReadFrame
				if path == "open-frame" {
					// Raw frames read from the stream, opened by OpenFrame.
					read = func() ([]byte, error) {
						body, err := rfc.ReadFrame()
						if err != nil {
							return nil, err
						}
						return rd.OpenFrame(body)
					}
				}
				msg := bytes.Repeat([]byte("x"), 4096)
				write := w.WriteFrame
				if path == "begin-end" || path == "begin-end-fallback" {
					// The body built in the Conn's buffer, sealed in place.
					write = func(b []byte) error { return w.EndFrame(append(w.BeginFrame(), b...)) }
				}
				step := func() {
					if err := write(msg); err != nil {
						t.Fatalf("WriteFrame: %v", err)
					}
					if err := w.Flush(); err != nil {
						t.Fatalf("Flush: %v", err)
					}
					got, err := read()
					if err != nil || len(got) != len(msg) {
						t.Fatalf("ReadFrame = %d bytes, %v", len(got), err)
					}
				}
				for range 4 { // grow the buffers
					step()
				}
				if n := testing.AllocsPerRun(200, step); n != 0 {
					t.Fatalf("%v allocations per sealed frame round trip, want 0", n)
				}
			})
		}
	}
}

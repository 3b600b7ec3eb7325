package kex

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/atedb/atedb/proto"
)

// TestBeginEndFrame writes frames built in place (BeginFrame, append,
// EndFrame) interleaved with WriteFrame, through both write paths, and
// checks that the peer opens every one of them in order: the in-place seal
// takes the same counters, keys and layout as WriteFrame.
func TestBeginEndFrame(t *testing.T) {
	sizes := []int{0, 1, 15, 16, 4096, 100 << 10, 300 << 10}
	for _, size := range allSizes {
		for _, path := range []string{"in-place", "fallback"} {
			t.Run(fmt.Sprintf("size=%v/path=%s", size, path), func(t *testing.T) {
				r := mustHandshake(t, hsOpts{size: size})
				var wire bytes.Buffer
				var wfc, rfc proto.FrameConn = proto.NewStream(&wire, 0), proto.NewStream(&wire, 0)
				if path == "fallback" {
					wfc, rfc = plainFC{wfc}, plainFC{rfc}
				}
				w, rd := r.cli.Conn(wfc), r.srv.Conn(rfc)
				var want [][]byte
				for i, n := range sizes {
					for _, how := range []string{"write", "begin-end", "clipped"} {
						body := bytes.Repeat([]byte{byte(i), byte(len(want))}, n/2+1)[:n]
						var err error
						switch how {
						case "write":
							err = w.WriteFrame(body)
						case "begin-end":
							err = w.EndFrame(append(w.BeginFrame(), body...))
						case "clipped":
							// No spare capacity for the tag: EndFrame must grow
							// the buffer rather than write past it.
							err = w.EndFrame(slices.Clip(append(w.BeginFrame(), body...)))
						}
						if err != nil {
							t.Fatalf("%s of %d bytes: %v", how, n, err)
						}
						want = append(want, body)
					}
					if err := w.Flush(); err != nil {
						t.Fatalf("Flush: %v", err)
					}
				}
				for i, b := range want {
					got, err := rd.ReadFrame()
					if err != nil {
						t.Fatalf("frame %d: ReadFrame: %v", i, err)
					}
					if !bytes.Equal(got, b) {
						t.Fatalf("frame %d: got %d bytes, want %d (contents differ: %v)", i, len(got), len(b), len(got) == len(b))
					}
				}
				if _, err := rd.ReadFrame(); err == nil {
					t.Fatalf("ReadFrame after the last frame succeeded; want the end of the stream")
				}
			})
		}
	}
}

// TestEndFrameTooLarge: a body built in place that would not fit once
// sealed is dropped before a counter is spent, so the stream goes on.
// (Through a FrameConn that states no limit, as WriteFrame, the
// underlying writer refuses it after sealing.)
func TestEndFrameTooLarge(t *testing.T) {
	for _, path := range []string{"in-place", "own-buffer"} {
		t.Run(path, func(t *testing.T) {
			r := mustHandshake(t, hsOpts{size: KeySize128})
			var wire bytes.Buffer
			const max = 100
			var wfc proto.FrameConn = proto.NewStream(&wire, max)
			if path == "own-buffer" {
				wfc = limitedFC{plainFC{wfc}}
			}
			cc := r.cli.Conn(wfc)
			err := cc.EndFrame(append(cc.BeginFrame(), make([]byte, max-Overhead+1)...))
			var fe *proto.FrameTooLargeError
			if !errors.As(err, &fe) || fe.Max != max-Overhead {
				t.Fatalf("oversized EndFrame = %v, want FrameTooLargeError with Max %d", err, max-Overhead)
			}
			if err := cc.Flush(); err != nil || wire.Len() != 0 {
				t.Fatalf("Flush after a dropped frame = %v with %d bytes on the wire, want nil and none", err, wire.Len())
			}
			atLimit := bytes.Repeat([]byte("y"), max-Overhead)
			if err := cc.EndFrame(append(cc.BeginFrame(), atLimit...)); err != nil {
				t.Fatalf("EndFrame at the limit: %v", err)
			}
			if err := cc.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			sc := r.srv.Conn(proto.NewStream(&wire, max))
			if got, err := sc.ReadFrame(); err != nil || !bytes.Equal(got, atLimit) {
				t.Fatalf("ReadFrame = %d bytes, %v; want the %d-byte frame", len(got), err, len(atLimit))
			}
		})
	}
}

// TestEndFrameSticky: once the underlying writer fails under EndFrame,
// the counter is spent and every later write returns the error.
func TestEndFrameSticky(t *testing.T) {
	boom := errors.New("broken pipe")
	r := mustHandshake(t, hsOpts{size: KeySize128})
	rc := &recordConn{writeErr: boom}
	cc := r.srv.Conn(rc)
	if err := cc.EndFrame(append(cc.BeginFrame(), "a"...)); err != boom {
		t.Fatalf("EndFrame = %v, want %v", err, boom)
	}
	rc.writeErr = nil
	if err := cc.EndFrame(append(cc.BeginFrame(), "b"...)); err != boom {
		t.Fatalf("EndFrame after failure = %v, want %v", err, boom)
	}
	if err := cc.WriteFrame([]byte("c")); err != boom {
		t.Fatalf("WriteFrame after failure = %v, want %v", err, boom)
	}
	if len(rc.written) != 0 {
		t.Fatalf("%d frames reached the writer after its failure, want 0", len(rc.written))
	}
}

// TestEndFrameAfterClose: a closed session seals nothing in place either.
func TestEndFrameAfterClose(t *testing.T) {
	r := mustHandshake(t, hsOpts{size: KeySize128})
	rc := &recordConn{}
	cc := r.srv.Conn(rc)
	r.srv.Close()
	if err := cc.EndFrame(append(cc.BeginFrame(), "secret"...)); !errors.Is(err, ErrClosed) {
		t.Fatalf("EndFrame after Close = %v, want ErrClosed", err)
	}
	if len(rc.written) != 0 {
		t.Fatalf("%d frames written after Close, want 0", len(rc.written))
	}
}

// limitedFC is a FrameConn that states its limit but cannot build frames
// in place: Conn seals into its own buffer.
type limitedFC struct{ plainFC }

func (l limitedFC) MaxFrameSize() int { return l.fc.(*proto.Stream).MaxFrameSize() }

// TestOpenFrameTo opens frames out of place, interleaved with OpenFrame:
// the plaintext is appended to dst, the sealed body is left as it was,
// and both take the next counter. A tampered frame returns no plaintext,
// leaves nothing of it in dst's spare capacity, and kills the session.
func TestOpenFrameTo(t *testing.T) {
	r := mustHandshake(t, hsOpts{size: KeySize128})
	msgs := []string{"first", "", "third frame", "fourth", "fifth"}
	sealed := sealFrames(t, r.cli, msgs...)
	rd := r.srv.Conn(&recordConn{})
	dst := make([]byte, 0, 64)
	for i, m := range msgs[:4] {
		var got []byte
		var err error
		if i%2 == 0 {
			orig := bytes.Clone(sealed[i])
			got, err = rd.OpenFrameTo(append(dst[:0], "prefix:"...), sealed[i])
			if err == nil && !bytes.Equal(sealed[i], orig) {
				t.Fatalf("frame %d: OpenFrameTo changed the sealed body", i)
			}
			m = "prefix:" + m
		} else {
			got, err = rd.OpenFrame(sealed[i])
		}
		if err != nil || string(got) != m {
			t.Fatalf("frame %d: got %q, %v; want %q", i, got, err, m)
		}
	}
	tampered := bytes.Clone(sealed[4])
	tampered[0] ^= 1
	dst = dst[:0]
	for i := range dst[:cap(dst)] {
		dst[:cap(dst)][i] = 0xAA
	}
	got, err := rd.OpenFrameTo(dst, tampered)
	var oe *OpenError
	if got != nil || !errors.As(err, &oe) {
		t.Fatalf("tampered frame: got %q, %v; want no plaintext and an OpenError", got, err)
	}
	for i, b := range dst[:len(msgs[4])] {
		if b != 0 && b != 0xAA {
			t.Fatalf("tampered frame: byte %d of dst's spare capacity is %#x: unauthenticated plaintext left behind", i, b)
		}
	}
	if _, err := rd.OpenFrameTo(nil, sealed[4]); !errors.As(err, &oe) {
		t.Fatalf("OpenFrameTo after a failure = %v, want the sticky OpenError", err)
	}
	if err := r.srv.Conn(&recordConn{}).WriteFrame([]byte("x")); !errors.As(err, &oe) {
		t.Fatalf("WriteFrame after a failed open = %v, want the OpenError (session dead both ways)", err)
	}
}

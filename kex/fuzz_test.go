package kex

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/atedb/atedb/proto"
)

// Fixed traffic secrets for FuzzOpenFrame: the fuzzer opens frames of a
// session built directly from them, and a mirror session seals the seeds.
var (
	fuzzC2S     = sha256.Sum256([]byte("atedb fuzz c2s"))
	fuzzS2C     = sha256.Sum256([]byte("atedb fuzz s2c"))
	fuzzLimits  = limits{rekeyFrames: 2, rekeyBytes: 1 << 12, rejectAt: 8}
	fuzzMaxBody = 1 << 16
)

// fuzzSession builds one side of a session from the fixed secrets, with
// counters at 0 and small limits so the fuzzer crosses ratchets and the
// hard limit.
func fuzzSession(tb testing.TB, size KeySize, isClient bool) *Session {
	tb.Helper()
	s := &Session{size: size}
	tx, rx := fuzzS2C, fuzzC2S
	txName, rxName := "server to client", "client to server"
	if isClient {
		tx, rx = rx, tx
		txName, rxName = rxName, txName
	}
	if err := s.tx.init(txName, &tx, size.aesKeyLen(), fuzzLimits); err != nil {
		tb.Fatal(err)
	}
	if err := s.rx.init(rxName, &rx, size.aesKeyLen(), fuzzLimits); err != nil {
		tb.Fatal(err)
	}
	return s
}

// sealedStream returns a fuzz input: the key-size selector byte, then the
// client's sealed frames of msgs as a frame stream.
func sealedStream(tb testing.TB, sel byte, msgs ...[]byte) []byte {
	tb.Helper()
	cli := fuzzSession(tb, allSizes[int(sel)%len(allSizes)], true)
	var buf bytes.Buffer
	st := proto.NewStream(&buf, fuzzMaxBody)
	c := cli.Conn(st)
	for _, m := range msgs {
		if err := c.WriteFrame(m); err != nil {
			tb.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		tb.Fatal(err)
	}
	return append([]byte{sel}, buf.Bytes()...)
}

// fuzzSeeds are the seed inputs, each named by the path it targets.
func fuzzSeeds(tb testing.TB) map[string][]byte {
	tb.Helper()
	valid3 := sealedStream(tb, 0, []byte{}, []byte("hello"), bytes.Repeat([]byte{7}, 1000))
	flipped := append([]byte(nil), valid3...)
	flipped[1+proto.FrameHeaderSize+3] ^= 1 // inside the first frame's tag (empty plaintext)
	one := sealedStream(tb, 1, []byte("one frame at 192"))
	frameA := sealedStream(tb, 0, []byte("a"))[1:]
	return map[string][]byte{
		"valid-three-frames-128":      valid3,                                                   // opens 3 frames, ratchets after 2
		"valid-one-frame-192":         one,                                                      // ML-KEM-768 key length
		"valid-eight-frames-256":      sealedStream(tb, 2, repeatMsgs(8)...),                    // hits rejectAt exactly after 8
		"valid-byte-ratchet":          sealedStream(tb, 0, make([]byte, 5000), []byte("after")), // byte limit ratchet
		"flipped-tag":                 flipped,                                                  // fails at frame 0
		"replayed":                    append(append([]byte(nil), valid3...), valid3[1:]...),    // valid then replay of all
		"replayed-frame":              append(append([]byte{0}, frameA...), frameA...),          // second copy fails
		"truncated-stream":            valid3[:len(valid3)-5],                                   // stream ends inside a frame
		"shorter-than-tag":            append([]byte{0}, 5, 0, 0, 0, 1, 2, 3, 4, 5),             // 5-byte body
		"empty-body":                  {0, 0, 0, 0, 0},                                          // zero-length frame
		"oversized-length":            {1, 0xff, 0xff, 0xff, 0xff},                              // refused before reading
		"empty":                       {},                                                       // no selector
		"selector-only":               {2},                                                      // clean EOF
		"wrong-size-for-frames-128to": append([]byte{1}, valid3[1:]...),                         // 128-bit frames read with 192-bit keys
		// Selector bit 7: odd frames are read raw and opened by OpenFrame.
		"openframe-valid-three-128":    sealedStream(tb, 0x81, []byte{}, []byte("hello"), bytes.Repeat([]byte{7}, 1000)), // mixed ReadFrame / OpenFrame across a ratchet
		"openframe-valid-eight-256":    sealedStream(tb, 0x80, repeatMsgs(8)...),                                         // OpenFrame hits rejectAt
		"openframe-replayed-frame":     append(append([]byte{0x81}, frameA...), frameA...),                               // second copy fails in OpenFrame
		"openframe-flipped-second-192": flipSecond(sealedStream(tb, 0x82, []byte("x"), []byte("tampered"))),              // OpenFrame fails, then sticky
	}
}

// flipSecond flips a bit inside the second frame of a sealedStream input
// (one-byte first body: frame 1 starts after 1+4+1+16 bytes).
func flipSecond(in []byte) []byte {
	out := append([]byte(nil), in...)
	out[1+2*proto.FrameHeaderSize+1+TagSize+2] ^= 4
	return out
}

func repeatMsgs(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("frame %d", i))
	}
	return out
}

// FuzzOpenFrame feeds arbitrary frame streams to a server session's sealed
// Conn: frames are read by ReadFrame, or, when bit 7 of the selector byte
// is set, every odd frame is read raw and opened by OpenFrame. Properties:
// nothing panics; a frame that opens is exactly what the genuine peer
// would have sealed at that counter (so the fuzzer cannot forge one);
// after a failed open every later ReadFrame and OpenFrame returns the
// same error.
func FuzzOpenFrame(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		size := allSizes[int(data[0])%len(allSizes)]
		srv := fuzzSession(t, size, false)
		mirror := fuzzSession(t, size, true)
		rec := &copyingConn{fc: proto.NewStream(bytes.NewBuffer(data[1:]), fuzzMaxBody)}
		c := srv.Conn(rec)
		var mirrorOut bytes.Buffer
		mc := mirror.Conn(proto.NewStream(&mirrorOut, fuzzMaxBody))
		mixed := data[0]&0x80 != 0
		for i := 0; ; i++ {
			var pt []byte
			var err error
			if mixed && i%2 == 1 {
				if pt, err = rec.ReadFrame(); err == nil {
					pt, err = c.OpenFrame(pt)
				}
			} else {
				pt, err = c.ReadFrame()
			}
			if err != nil {
				if errors.Is(err, ErrDecrypt) || errors.Is(err, ErrExhausted) {
					if _, err2 := c.ReadFrame(); err2 != err {
						t.Fatalf("read after %v returned %v, want the same error", err, err2)
					}
					if _, err2 := c.OpenFrame(append([]byte(nil), rec.last...)); err2 != err {
						t.Fatalf("OpenFrame after %v returned %v, want the same error", err, err2)
					}
				}
				return
			}
			// The mirror seals the same plaintext at the same counter:
			// the bytes must be the ones received.
			mirrorOut.Reset()
			if err := mc.WriteFrame(pt); err != nil {
				t.Fatalf("mirror WriteFrame: %v", err)
			}
			if err := mc.Flush(); err != nil {
				t.Fatalf("mirror Flush: %v", err)
			}
			want := mirrorOut.Bytes()[proto.FrameHeaderSize:]
			if !bytes.Equal(rec.last, want) {
				t.Fatalf("opened a frame the peer did not seal:\n got %x\nwant %x", rec.last, want)
			}
		}
	})
}

// copyingConn keeps a copy of the last frame body read (Conn opens it in
// place).
type copyingConn struct {
	fc   proto.FrameConn
	last []byte
}

func (c *copyingConn) ReadFrame() ([]byte, error) {
	b, err := c.fc.ReadFrame()
	c.last = append(c.last[:0], b...)
	return b, err
}
func (c *copyingConn) WriteFrame(b []byte) error { return c.fc.WriteFrame(b) }
func (c *copyingConn) Flush() error              { return c.fc.Flush() }

// TestFuzzSeedsCommitted checks that testdata/fuzz/FuzzOpenFrame holds the
// current seeds (so `go test` replays them even without -fuzz, and a
// change of the frame format shows up here). -update rewrites them.
func TestFuzzSeedsCommitted(t *testing.T) {
	seeds := fuzzSeeds(t)
	if *update {
		for name, data := range seeds {
			writeFuzzSeed(t, "FuzzOpenFrame", name, data)
		}
	}
	for name, data := range seeds {
		got, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzOpenFrame", name))
		if err != nil {
			t.Fatalf("seed %s: %v (run go test ./kex -run TestFuzzSeedsCommitted -update)", name, err)
		}
		if want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data); string(got) != want {
			t.Fatalf("seed %s is stale (run go test ./kex -run TestFuzzSeedsCommitted -update)", name)
		}
	}
	// The valid seeds really open, so the fuzzer starts past the AEAD.
	for _, name := range []string{"valid-three-frames-128", "valid-one-frame-192", "valid-eight-frames-256", "valid-byte-ratchet", "openframe-valid-three-128", "openframe-valid-eight-256"} {
		data := seeds[name]
		srv := fuzzSession(t, allSizes[int(data[0])%len(allSizes)], false)
		c := srv.Conn(proto.NewStream(bytes.NewBuffer(data[1:]), fuzzMaxBody))
		n := 0
		for {
			_, err := c.ReadFrame()
			if err != nil {
				if err != io.EOF {
					t.Fatalf("seed %s: frame %d: %v", name, n, err)
				}
				break
			}
			n++
		}
		if n == 0 {
			t.Fatalf("seed %s opened no frame", name)
		}
	}
}

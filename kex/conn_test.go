package kex

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/atedb/atedb/proto"
)

// recordConn is a FrameConn that records the frames written to it and
// replays a scripted list of frames on ReadFrame.
type recordConn struct {
	written  [][]byte
	toRead   [][]byte
	readErrs []error // returned (and consumed) before the next frame, when set
	writeErr error
	flushErr error
}

func (c *recordConn) ReadFrame() ([]byte, error) {
	if len(c.readErrs) > 0 {
		err := c.readErrs[0]
		c.readErrs = c.readErrs[1:]
		return nil, err
	}
	if len(c.toRead) == 0 {
		return nil, io.EOF
	}
	f := c.toRead[0]
	c.toRead = c.toRead[1:]
	return f, nil
}

func (c *recordConn) WriteFrame(b []byte) error {
	if c.writeErr != nil {
		return c.writeErr
	}
	c.written = append(c.written, append([]byte(nil), b...))
	return nil
}

func (c *recordConn) Flush() error { return c.flushErr }

// sealFrames seals msgs with the client side of r and returns the sealed
// bodies.
func sealFrames(t *testing.T, s *Session, msgs ...string) [][]byte {
	t.Helper()
	rc := &recordConn{}
	c := s.Conn(rc)
	for _, m := range msgs {
		if err := c.WriteFrame([]byte(m)); err != nil {
			t.Fatalf("WriteFrame(%q): %v", m, err)
		}
	}
	return rc.written
}

func cloneFrames(fs [][]byte) [][]byte {
	out := make([][]byte, len(fs))
	for i, f := range fs {
		out[i] = append([]byte(nil), f...)
	}
	return out
}

// TestSealedFrameAttacks feeds the server a sequence of the client's sealed
// frames changed by one attack and checks that every frame before the
// attack opens, the attacked one fails with an OpenError, and the session
// is dead afterwards (sticky, in both directions).
func TestSealedFrameAttacks(t *testing.T) {
	tests := map[string]struct {
		attack func(c2s, s2c [][]byte) [][]byte
		good   int // frames that open before the failure
	}{
		"tampered ciphertext": {func(f, _ [][]byte) [][]byte { f[1][0] ^= 1; return f }, 1},
		"tampered tag":        {func(f, _ [][]byte) [][]byte { f[0][len(f[0])-1] ^= 0x80; return f }, 0},
		"truncated by one":    {func(f, _ [][]byte) [][]byte { f[2] = f[2][:len(f[2])-1]; return f }, 2},
		"truncated to tag":    {func(f, _ [][]byte) [][]byte { f[1] = f[1][len(f[1])-TagSize:]; return f }, 1},
		"shorter than tag":    {func(f, _ [][]byte) [][]byte { f[1] = f[1][:TagSize-1]; return f }, 1},
		"empty":               {func(f, _ [][]byte) [][]byte { f[0] = f[0][:0]; return f }, 0},
		"extended":            {func(f, _ [][]byte) [][]byte { f[0] = append(f[0], 0); return f }, 0},
		"reordered":           {func(f, _ [][]byte) [][]byte { return [][]byte{f[0], f[2], f[1]} }, 1},
		"replayed":            {func(f, _ [][]byte) [][]byte { return [][]byte{f[0], f[1], f[1]} }, 2},
		"replayed first":      {func(f, _ [][]byte) [][]byte { return [][]byte{f[0], f[0]} }, 1},
		"dropped":             {func(f, _ [][]byte) [][]byte { return [][]byte{f[0], f[2]} }, 1},
		"cross-direction":     {func(_, r [][]byte) [][]byte { return [][]byte{r[0]} }, 0},
		"reflected later":     {func(f, r [][]byte) [][]byte { return [][]byte{f[0], r[1]} }, 1},
		"confirm replayed":    {func(f, _ [][]byte) [][]byte { return [][]byte{f[0], confirmFrame} }, 1},
		"swapped bodies":      {func(f, _ [][]byte) [][]byte { f[0], f[1] = f[1], f[0]; return f }, 0},
	}
	for _, size := range allSizes {
		for name, tc := range tests {
			for _, via := range []string{"ReadFrame", "OpenFrame"} {
				t.Run(fmt.Sprintf("size=%v/%s/via=%s", size, name, via), func(t *testing.T) {
					testSealedFrameAttack(t, size, via, tc.attack, tc.good)
				})
			}
		}
	}
}

// testSealedFrameAttack runs one case of TestSealedFrameAttacks, reading
// the frames through Conn.ReadFrame, or reading them raw and opening them
// with Conn.OpenFrame (via "OpenFrame").
func testSealedFrameAttack(t *testing.T, size KeySize, via string, attack func(c2s, s2c [][]byte) [][]byte, good int) {
	r := mustHandshake(t, hsOpts{size: size})
	c2s := sealFrames(t, r.cli, "first", "second frame", "third")
	s2c := sealFrames(t, r.srv, "reply one", "reply two")
	confirmFrame = r.cliEnd.frames()[1]
	feed := attack(cloneFrames(c2s), cloneFrames(s2c))
	rc := &recordConn{toRead: feed}
	sc := r.srv.Conn(rc)
	next := sc.ReadFrame
	if via == "OpenFrame" {
		next = func() ([]byte, error) {
			body, err := rc.ReadFrame()
			if err != nil {
				return nil, err
			}
			return sc.OpenFrame(body)
		}
	}
	want := []string{"first", "second frame", "third"}
	for i := 0; i < good; i++ {
		got, err := next()
		if err != nil || string(got) != want[i] {
			t.Fatalf("frame %d = %q, %v; want %q", i, got, err, want[i])
		}
	}
	_, err := next()
	var oe *OpenError
	if !errors.Is(err, ErrDecrypt) || !errors.As(err, &oe) {
		t.Fatalf("attacked frame: error %v, want an OpenError", err)
	}
	if oe.Counter != uint64(good)+1 || oe.Direction != "client to server" {
		t.Fatalf("OpenError %+v, want counter %d client to server", oe, good+1)
	}
	rc.toRead = cloneFrames(c2s) // even genuine frames are refused now
	if _, err2 := sc.ReadFrame(); err2 != err {
		t.Fatalf("read after failure: %v, want the same error %v", err2, err)
	}
	if _, err2 := sc.OpenFrame(cloneFrames(c2s)[good]); err2 != err {
		t.Fatalf("OpenFrame after failure: %v, want the same error %v", err2, err)
	}
	if err2 := sc.WriteFrame([]byte("x")); err2 != err {
		t.Fatalf("write after failure: %v, want the same error %v", err2, err)
	}
	if err2 := sc.Flush(); err2 != err {
		t.Fatalf("flush after failure: %v, want the same error %v", err2, err)
	}
	assertWiped(t, r.srv)
}

// confirmFrame is the client's confirmation frame of the current attack
// test (sealed under counter 0).
var confirmFrame []byte

func assertWiped(t *testing.T, s *Session) {
	t.Helper()
	for _, d := range []*direction{&s.tx, &s.rx} {
		d.mu.Lock()
		secret, aead := d.secret, d.aead
		d.mu.Unlock()
		if secret != [secretSize]byte{} || aead != nil {
			t.Fatalf("%s: traffic secret or cipher not wiped", d.name)
		}
	}
}

func TestSessionClose(t *testing.T) {
	r := mustHandshake(t, hsOpts{size: KeySize256})
	cc := r.cli.Conn(&recordConn{toRead: sealFrames(t, r.srv, "hello")})
	if err := r.cli.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	assertWiped(t, r.cli)
	if _, err := cc.ReadFrame(); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadFrame after Close: %v, want ErrClosed", err)
	}
	if err := cc.WriteFrame([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteFrame after Close: %v, want ErrClosed", err)
	}
	if err := cc.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v, want ErrClosed", err)
	}
	if err := r.cli.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestCloseDuringRead: Close while a ReadFrame waits for the network; the
// frame that arrives afterwards is not opened.
func TestCloseDuringRead(t *testing.T) {
	r := mustHandshake(t, hsOpts{size: KeySize128})
	frames := sealFrames(t, r.srv, "late")
	gate := make(chan struct{})
	cc := r.cli.Conn(&gatedConn{gate: gate, frame: frames[0]})
	errc := make(chan error, 1)
	go func() {
		_, err := cc.ReadFrame()
		errc <- err
	}()
	r.cli.Close()
	close(gate)
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadFrame racing Close: %v, want ErrClosed", err)
	}
}

type gatedConn struct {
	recordConn
	gate  chan struct{}
	frame []byte
}

func (g *gatedConn) ReadFrame() ([]byte, error) { <-g.gate; return g.frame, nil }

// TestReadErrorPassThrough: an error of the underlying reader (a deadline,
// say) is returned unchanged and does not spend a counter, so the next
// frame still opens; io.EOF stays io.EOF.
func TestReadErrorPassThrough(t *testing.T) {
	r := mustHandshake(t, hsOpts{size: KeySize192})
	timeout := errors.New("i/o timeout")
	rc := &recordConn{toRead: sealFrames(t, r.srv, "one"), readErrs: []error{timeout}}
	cc := r.cli.Conn(rc)
	if _, err := cc.ReadFrame(); err != timeout {
		t.Fatalf("first ReadFrame: %v, want the reader's error unchanged", err)
	}
	if got, err := cc.ReadFrame(); err != nil || string(got) != "one" {
		t.Fatalf("ReadFrame after a read error = %q, %v", got, err)
	}
	if _, err := cc.ReadFrame(); err != io.EOF {
		t.Fatalf("ReadFrame at end = %v, want io.EOF", err)
	}
}

// TestWriteErrorSticky: once the underlying writer fails, the counter is
// spent and every later write returns the error.
func TestWriteErrorSticky(t *testing.T) {
	boom := errors.New("broken pipe")
	for _, viaFlush := range []bool{false, true} {
		r := mustHandshake(t, hsOpts{size: KeySize128})
		rc := &recordConn{}
		cc := r.srv.Conn(rc)
		if viaFlush {
			rc.flushErr = boom
			if err := cc.WriteFrame([]byte("a")); err != nil {
				t.Fatalf("WriteFrame: %v", err)
			}
			if err := cc.Flush(); err != boom {
				t.Fatalf("Flush = %v, want %v", err, boom)
			}
		} else {
			rc.writeErr = boom
			if err := cc.WriteFrame([]byte("a")); err != boom {
				t.Fatalf("WriteFrame = %v, want %v", err, boom)
			}
		}
		rc.writeErr, rc.flushErr = nil, nil
		if err := cc.WriteFrame([]byte("b")); err != boom {
			t.Fatalf("flush=%v: WriteFrame after failure = %v, want %v", viaFlush, err, boom)
		}
		if err := cc.Flush(); err != boom {
			t.Fatalf("flush=%v: Flush after failure = %v, want %v", viaFlush, err, boom)
		}
	}
}

// TestFrameTooLarge: a body that would not fit once sealed is refused
// before a counter is spent, so the stream goes on.
func TestFrameTooLarge(t *testing.T) {
	r := mustHandshake(t, hsOpts{size: KeySize128})
	var wire bytes.Buffer
	const max = 100
	cc := r.cli.Conn(proto.NewStream(&wire, max))
	if got := cc.MaxFrameSize(); got != max-Overhead {
		t.Fatalf("MaxFrameSize() = %d, want %d", got, max-Overhead)
	}
	err := cc.WriteFrame(make([]byte, max-Overhead+1))
	var fe *proto.FrameTooLargeError
	if !errors.As(err, &fe) || fe.Max != max-Overhead {
		t.Fatalf("oversized WriteFrame = %v, want FrameTooLargeError with Max %d", err, max-Overhead)
	}
	if err := cc.WriteFrame(make([]byte, max-Overhead)); err != nil {
		t.Fatalf("WriteFrame at the limit: %v", err)
	}
	if err := cc.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	sc := r.srv.Conn(proto.NewStream(&wire, max))
	if got, err := sc.ReadFrame(); err != nil || len(got) != max-Overhead {
		t.Fatalf("ReadFrame = %d bytes, %v; want %d", len(got), err, max-Overhead)
	}
	if m := r.srv.Conn(&recordConn{}).MaxFrameSize(); m != 0 {
		t.Fatalf("MaxFrameSize without a limit = %d, want 0", m)
	}
}

// refKey returns the AES key of epoch n of a direction whose epoch-0
// traffic secret is s0, computed with plain HKDF calls as a reference.
func refAEAD(t *testing.T, s0 [secretSize]byte, epoch int, keyLen int) cipher.AEAD {
	t.Helper()
	s := s0
	for range epoch {
		if err := ratchetSecret(&s); err != nil {
			t.Fatal(err)
		}
	}
	key, err := trafficKey(&s, keyLen)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestRekeyBoundary shrinks the soft limits, sends frames across several
// ratchets in both directions, and checks every sealed frame against a
// reference built from the epoch-0 secret: frame k uses nonce k and the key
// of epoch floor(k / limit).
func TestRekeyBoundary(t *testing.T) {
	tests := map[string]struct {
		lim      limits
		size     int                      // plaintext bytes per data frame
		epochFor func(counter uint64) int // expected epoch of frame counter
	}{
		"frames":        {limits{rekeyFrames: 3, rekeyBytes: 1 << 40, rejectAt: RejectAfterFrames}, 10, func(c uint64) int { return int(c / 3) }},
		"frame limit 1": {limits{rekeyFrames: 1, rekeyBytes: 1 << 40, rejectAt: RejectAfterFrames}, 10, func(c uint64) int { return int(c) }},
		// Confirmation (1 byte) + 60 + 60 reach 100 at counter 2; then
		// every second 60-byte frame does.
		"bytes": {limits{rekeyFrames: 1 << 40, rekeyBytes: 100, rejectAt: RejectAfterFrames}, 60, func(c uint64) int {
			if c < 3 {
				return 0
			}
			return int((c - 1) / 2)
		}},
		"bytes per each": {limits{rekeyFrames: 1 << 40, rekeyBytes: 1, rejectAt: RejectAfterFrames}, 5, func(c uint64) int { return int(c) }},
	}
	for name, tc := range tests {
		for _, size := range allSizes {
			t.Run(fmt.Sprintf("%s/size=%v", name, size), func(t *testing.T) {
				lim := tc.lim
				r := runHandshake(t, hsOpts{size: size, scfg: ServerConfig{limits: &lim, Rand: detRand("rekey")}, ccfg: ClientConfig{limits: &lim}})
				if r.srvErr != nil || r.cliErr != nil {
					t.Fatalf("handshake: %v / %v", r.srvErr, r.cliErr)
				}
				// The secrets of epoch 0, rebuilt from the recorded
				// messages by the reference schedule.
				c2s0, s2c0 := epochZero(t, r, size, "rekey")
				for _, dir := range []struct {
					name     string
					from, to *Session
					s0       [secretSize]byte
					frames   [][]byte
				}{
					{"c2s", r.cli, r.srv, c2s0, r.cliEnd.frames()},
					{"s2c", r.srv, r.cli, s2c0, r.srvEnd.frames()},
				} {
					rc := &recordConn{}
					from := dir.from.Conn(rc)
					const n = 12
					for i := range n {
						if err := from.WriteFrame(bytes.Repeat([]byte{byte(i)}, tc.size)); err != nil {
							t.Fatalf("%s WriteFrame %d: %v", dir.name, i, err)
						}
					}
					sealed := append([][]byte{dir.frames[1]}, rc.written...) // counter 0 = confirm
					for k, body := range sealed {
						var nonce [NonceSize]byte
						binary.LittleEndian.PutUint64(nonce[4:], uint64(k))
						pt, err := refAEAD(t, dir.s0, tc.epochFor(uint64(k)), size.aesKeyLen()).Open(nil, nonce[:], body, nil)
						if err != nil {
							t.Fatalf("%s frame %d does not open with the reference key of epoch %d", dir.name, k, tc.epochFor(uint64(k)))
						}
						if k > 0 && !bytes.Equal(pt, bytes.Repeat([]byte{byte(k - 1)}, tc.size)) {
							t.Fatalf("%s frame %d: wrong plaintext", dir.name, k)
						}
					}
					// Read alternately with ReadFrame and with OpenFrame
					// (frames read raw): both take the next counter.
					raw := &recordConn{toRead: cloneFrames(rc.written)}
					to := dir.to.Conn(raw)
					for i := range n {
						var got []byte
						var err error
						if i%2 == 0 {
							got, err = to.ReadFrame()
						} else if got, err = raw.ReadFrame(); err == nil {
							got, err = to.OpenFrame(got)
						}
						if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, tc.size)) {
							t.Fatalf("%s frame %d across ratchets (ReadFrame if even, OpenFrame if odd): %d bytes, %v", dir.name, i, len(got), err)
						}
					}
					if e := dir.from.tx.epoch; e != uint64(tc.epochFor(n+1)) {
						t.Fatalf("%s sender at epoch %d after %d frames, want %d", dir.name, e, n+1, tc.epochFor(n+1))
					}
				}
			})
		}
	}
}

// epochZero recomputes both epoch-0 traffic secrets of a handshake whose
// server used detRand(srvRand), with the reference schedule of
// refSecrets.
func epochZero(t *testing.T, r hsResult, size KeySize, srvRand string) (c2s, s2c [secretSize]byte) {
	t.Helper()
	hello, ack := hellos(size)
	return refSecrets(t, size, srvRand, hello, ack, r.srvEnd.frames()[0], r.cliEnd.frames()[0])
}

// TestRekeyMismatch: ends that ratchet at different frames cannot talk
// past the first boundary, proving the ratchet really changes the key.
func TestRekeyMismatch(t *testing.T) {
	a := limits{rekeyFrames: 3, rekeyBytes: 1 << 40, rejectAt: RejectAfterFrames}
	b := limits{rekeyFrames: 4, rekeyBytes: 1 << 40, rejectAt: RejectAfterFrames}
	r := mustHandshake(t, hsOpts{size: KeySize128, scfg: ServerConfig{limits: &b}, ccfg: ClientConfig{limits: &a}})
	frames := sealFrames(t, r.cli, "1", "2", "3", "4")
	sc := r.srv.Conn(&recordConn{toRead: frames})
	for i := 1; i <= 2; i++ {
		if _, err := sc.ReadFrame(); err != nil {
			t.Fatalf("frame %d before the boundary: %v", i, err)
		}
	}
	_, err := sc.ReadFrame()
	var oe *OpenError
	if !errors.As(err, &oe) || oe.Counter != 3 {
		t.Fatalf("frame 3 (client ratcheted, server not): %v, want OpenError at counter 3", err)
	}
}

// TestRejectLimit: at the hard limit a direction refuses to seal, and a
// receiver refuses to open, frame number rejectAt.
func TestRejectLimit(t *testing.T) {
	hard := limits{rekeyFrames: 2, rekeyBytes: 1 << 40, rejectAt: 5}
	loose := limits{rekeyFrames: 2, rekeyBytes: 1 << 40, rejectAt: 100}
	r := mustHandshake(t, hsOpts{size: KeySize256, scfg: ServerConfig{limits: &loose}, ccfg: ClientConfig{limits: &hard}})
	rc := &recordConn{}
	cc := r.cli.Conn(rc)
	for i := 1; i < 5; i++ { // counters 1..4; 0 was the confirmation
		if err := cc.WriteFrame([]byte{byte(i)}); err != nil {
			t.Fatalf("WriteFrame counter %d: %v", i, err)
		}
	}
	if err := cc.WriteFrame([]byte{5}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("WriteFrame at the hard limit: %v, want ErrExhausted", err)
	}
	if len(rc.written) != 4 {
		t.Fatalf("%d frames written, want 4", len(rc.written))
	}
	if err := cc.WriteFrame([]byte{6}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("WriteFrame after the hard limit: %v, want ErrExhausted (sticky)", err)
	}
	// The server (loose limit) sends more than the client may receive.
	cr := r.cli.Conn(&recordConn{toRead: sealFrames(t, r.srv, "1", "2", "3", "4", "5")})
	for i := 1; i < 5; i++ {
		if _, err := cr.ReadFrame(); err != nil {
			t.Fatalf("ReadFrame counter %d: %v", i, err)
		}
	}
	if _, err := cr.ReadFrame(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("ReadFrame at the hard limit: %v, want ErrExhausted", err)
	}
	// The same through OpenFrame, on a fresh pair.
	r = mustHandshake(t, hsOpts{size: KeySize256, scfg: ServerConfig{limits: &loose}, ccfg: ClientConfig{limits: &hard}})
	cr = r.cli.Conn(&recordConn{})
	for i, f := range sealFrames(t, r.srv, "1", "2", "3", "4", "5") {
		_, err := cr.OpenFrame(f)
		if i < 4 && err != nil {
			t.Fatalf("OpenFrame counter %d: %v", i+1, err)
		}
		if i == 4 && !errors.Is(err, ErrExhausted) {
			t.Fatalf("OpenFrame at the hard limit: %v, want ErrExhausted", err)
		}
	}
}

// TestConcurrentDuplex runs both directions at once over proto.Stream on a
// real in-memory socket, each side reading in one goroutine while writing
// in another, for every key size (run it with -race).
func TestConcurrentDuplex(t *testing.T) {
	for _, size := range allSizes {
		t.Run(fmt.Sprintf("size=%v", size), func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			cs, ss := proto.NewStream(a, 1<<20), proto.NewStream(b, 1<<20)
			hello, ack := hellos(size)
			var srv *Session
			var srvErr error
			done := make(chan struct{})
			go func() {
				defer close(done)
				srv, srvErr = ServerHandshake(ss, hello, ack, size, ServerConfig{})
			}()
			cli, err := ClientHandshake(cs, hello, ack, size, ClientConfig{})
			<-done
			if err != nil || srvErr != nil {
				t.Fatalf("handshake: client %v, server %v", err, srvErr)
			}
			const n = 200
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for _, side := range []struct {
				s  *Session
				fc proto.FrameConn
			}{{cli, cs}, {srv, ss}} {
				c := side.s.Conn(side.fc)
				wg.Add(2)
				go func() {
					defer wg.Done()
					for i := range n {
						msg := bytes.Repeat([]byte{byte(i)}, (i*977)%70000)
						if err := c.WriteFrame(msg); err != nil {
							errs <- err
							return
						}
						if i%7 == 0 || i == n-1 {
							if err := c.Flush(); err != nil {
								errs <- err
								return
							}
						}
					}
				}()
				go func() {
					defer wg.Done()
					for i := range n {
						got, err := c.ReadFrame()
						if err != nil {
							errs <- err
							return
						}
						if want := (i * 977) % 70000; len(got) != want || (want > 0 && got[0] != byte(i)) {
							errs <- fmt.Errorf("frame %d: %d bytes, want %d", i, len(got), want)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		})
	}
}

package harness

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"time"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
)

// Limits are the machine's own ceilings, measured in the same run as the
// workloads and on the file system that holds the data directory.
type Limits struct {
	Dir           string  `json:"dir"`
	Fsync4KPerSec float64 `json:"fsync4k_per_s"`    // 4 KiB write into a zero-filled file + fdatasync, one syncer
	Fsync4KP50US  float64 `json:"fsync4k_p50_us"`   // median of one append + fdatasync
	Write1MGBps   float64 `json:"write1m_gb_per_s"` // 1 MiB write + fdatasync
	LoopbackGBps  float64 `json:"loopback_gb_per_s"`
	// Closed-loop 1 KiB request / 16-byte reply round trips over loopback
	// TCP to another process (echo.go): one connection, and EchoConns.
	RTT1KPerSec  float64 `json:"rtt1k_per_s"`
	RTT1KP50US   float64 `json:"rtt1k_p50_us"`
	Echo64PerSec float64 `json:"echo64_per_s"`
	AESGCMGBps   float64 `json:"aes128gcm_gb_per_s"` // one core, 16 KiB frames
	KEM768PerSec float64 `json:"mlkem768_kex_per_s"` // keygen+encaps+decaps, one core
}

// Limit names used in [Result.Limits].
const (
	LimitFsync4K  = "fsync4k"
	LimitWrite1M  = "disk1M"
	LimitLoopback = "loopback"
	LimitRTT1K    = "rtt1k"
	LimitEcho64   = "echo64"
	LimitAESGCM   = "aesgcm"
	LimitKEM768   = "kem768"
)

// MeasureLimits measures every limit, each for about d, creating its
// scratch file in dir (removed afterwards).
func MeasureLimits(ctx context.Context, dir string, d time.Duration) (*Limits, error) {
	l := &Limits{Dir: dir}
	var err error
	var p50 time.Duration
	if l.Fsync4KPerSec, p50, err = FsyncRate(ctx, dir, 4<<10, d); err != nil {
		return nil, err
	}
	l.Fsync4KP50US = round3(float64(p50) / 1e3)
	var rate float64
	if rate, _, err = FsyncRate(ctx, dir, 1<<20, d); err != nil {
		return nil, err
	}
	l.Write1MGBps = round3(rate * (1 << 20) / 1e9)
	if l.LoopbackGBps, err = LoopbackTCP(ctx, d); err != nil {
		return nil, err
	}
	l.LoopbackGBps = round3(l.LoopbackGBps)
	e, err := MeasureEcho(ctx, dir, d)
	if err != nil {
		return nil, err
	}
	l.RTT1KPerSec, l.RTT1KP50US = math.Round(e.RTT1KPerSec), round3(float64(e.RTT1KP50)/1e3)
	l.Echo64PerSec = math.Round(e.Echo64PerSec)
	l.AESGCMGBps = round3(AESGCMRate(d))
	l.KEM768PerSec = math.Round(KEM768Rate(d))
	return l, nil
}

// fsyncFileSize is the size of the file FsyncRate writes into: a
// preallocated, zero-filled region as large as a full log segment
// (mmaplog's default SegmentSize), overwritten in a ring.
const fsyncFileSize = 64 << 20

// FsyncRate writes blocks of size bytes one after the other into a
// preallocated, zero-filled file in dir (wrapping at its end), each
// followed by fdatasync, for about d, and returns the rate (operations per
// second) and the median time of one write + fdatasync. This is what the
// log does: it zero-fills its segments before use, so that an fdatasync
// changes no file-system metadata (no size change, no unwritten extent
// to convert), and the ratio of a workload to this limit above 1 means
// group commit at work, not a cheaper kind of sync.
func FsyncRate(ctx context.Context, dir string, size int, d time.Duration) (float64, time.Duration, error) {
	f, err := os.CreateTemp(dir, "limit-fsync-*")
	if err != nil {
		return 0, 0, fmt.Errorf("fsync limit: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	zero := make([]byte, 1<<20)
	for off := int64(0); off < fsyncFileSize; off += int64(len(zero)) {
		if _, err := f.WriteAt(zero, off); err != nil {
			return 0, 0, fmt.Errorf("fsync limit: prepare %s: %w", f.Name(), err)
		}
	}
	if err := f.Sync(); err != nil {
		return 0, 0, fmt.Errorf("fsync limit: prepare %s: %w", f.Name(), err)
	}
	buf := make([]byte, size)
	fill(buf, 1)
	var h Histogram
	start := time.Now()
	n := 0
	var off int64
	for time.Since(start) < d && ctx.Err() == nil {
		if off+int64(size) > fsyncFileSize {
			off = 0
		}
		t := time.Now()
		if _, err := f.WriteAt(buf, off); err != nil {
			return 0, 0, fmt.Errorf("fsync limit: write %s: %w", f.Name(), err)
		}
		if err := fdatasync(f); err != nil {
			return 0, 0, fmt.Errorf("fsync limit: fdatasync %s: %w", f.Name(), err)
		}
		h.Record(time.Since(t))
		off += int64(size)
		n++
	}
	el := time.Since(start).Seconds()
	return float64(n) / el, h.Quantile(0.5), ctx.Err()
}

// LoopbackTCP sends data from one goroutine to another over a 127.0.0.1
// TCP connection for about d and returns the rate in GB/s (1e9 bytes).
func LoopbackTCP(ctx context.Context, d time.Duration) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("loopback limit: %w", err)
	}
	defer ln.Close()
	type res struct {
		n   int64
		err error
	}
	got := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- res{err: err}
			return
		}
		defer c.Close()
		n, err := io.CopyBuffer(io.Discard, c, make([]byte, 256<<10))
		got <- res{n, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, fmt.Errorf("loopback limit: %w", err)
	}
	buf := make([]byte, 256<<10)
	fill(buf, 2)
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, fmt.Errorf("loopback limit: %w", err)
		}
	}
	c.Close()
	r := <-got
	el := time.Since(start).Seconds()
	if r.err != nil && !errors.Is(r.err, io.EOF) {
		return 0, fmt.Errorf("loopback limit: %w", r.err)
	}
	return float64(r.n) / el / 1e9, ctx.Err()
}

// AESGCMRate seals 16 KiB frames with AES-128-GCM on one goroutine for
// about d and returns GB/s.
func AESGCMRate(d time.Duration) float64 {
	block, _ := aes.NewCipher(make([]byte, 16))
	aead, _ := cipher.NewGCM(block)
	pt := make([]byte, 16<<10)
	ct := make([]byte, 0, len(pt)+aead.Overhead())
	nonce := make([]byte, aead.NonceSize())
	var n int64
	start := time.Now()
	for time.Since(start) < d {
		for range 16 {
			nonce[11]++
			ct = aead.Seal(ct[:0], nonce, pt, nil)
			n += int64(len(pt))
		}
	}
	return float64(n) / time.Since(start).Seconds() / 1e9
}

// KEM768Rate runs ML-KEM-768 key generation, encapsulation and
// decapsulation (the server and client work of one handshake) on one
// goroutine for about d and returns complete exchanges per second.
func KEM768Rate(d time.Duration) float64 {
	s := mlkem768.Scheme()
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		pk, sk, err := s.GenerateKeyPair()
		if err != nil {
			return 0
		}
		ct, _, err := s.Encapsulate(pk)
		if err != nil {
			return 0
		}
		if _, err := s.Decapsulate(sk, ct); err != nil {
			return 0
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// WriteLimits prints l in a short human-readable block.
func WriteLimits(w io.Writer, l *Limits) {
	fmt.Fprintf(w, "machine limits (files in %s):\n", l.Dir)
	fmt.Fprintf(w, "  4 KiB write + fdatasync, one syncer:  %s/s, p50 %s (into a zero-filled file, as the log)\n", FormatRate(l.Fsync4KPerSec), fmtUS(l.Fsync4KP50US))
	fmt.Fprintf(w, "  1 MiB write + fdatasync:              %.3f GB/s\n", l.Write1MGBps)
	fmt.Fprintf(w, "  loopback TCP, one stream:             %.3f GB/s\n", l.LoopbackGBps)
	fmt.Fprintf(w, "  1 KiB echo to a process, 1 conn:      %s/s, p50 %s\n", FormatRate(l.RTT1KPerSec), fmtUS(l.RTT1KP50US))
	fmt.Fprintf(w, "  1 KiB echo to a process, %d conns:    %s/s\n", EchoConns, FormatRate(l.Echo64PerSec))
	fmt.Fprintf(w, "  AES-128-GCM seal, one core:           %.3f GB/s\n", l.AESGCMGBps)
	fmt.Fprintf(w, "  ML-KEM-768 kex, one core:             %s/s\n", FormatRate(l.KEM768PerSec))
}

// fill writes a deterministic, incompressible-looking pattern into b.
func fill(b []byte, seed uint64) {
	x := seed*0x9E3779B97F4A7C15 | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}

// LimitsWorkload is the workload name of the result line that carries the limits.
const LimitsWorkload = "limits"

// LimitsResult wraps l as a result line (workload "limits", the figures
// in Extra) so that scripts find the limits beside the results they scale.
func LimitsResult(system string, l *Limits) Result {
	r := Result{System: system, Workload: LimitsWorkload, Note: "files in " + l.Dir}
	r.SetExtra("fsync4k_per_s", l.Fsync4KPerSec)
	r.SetExtra("fsync4k_p50_us", l.Fsync4KP50US)
	r.SetExtra("write1m_gb_per_s", l.Write1MGBps)
	r.SetExtra("loopback_gb_per_s", l.LoopbackGBps)
	r.SetExtra("rtt1k_per_s", l.RTT1KPerSec)
	r.SetExtra("rtt1k_p50_us", l.RTT1KP50US)
	r.SetExtra("echo64_per_s", l.Echo64PerSec)
	r.SetExtra("aes128gcm_gb_per_s", l.AESGCMGBps)
	r.SetExtra("mlkem768_kex_per_s", l.KEM768PerSec)
	return r
}

package proto

import (
	"bytes"
	"io"
	"strconv"
	"testing"
)

// Benchmarks of the codec. Compare each against BenchmarkMemmove of the
// same number of bytes in the same run: that is the machine's copy speed,
// the upper bound for anything that touches every byte.

func benchEvents(b *testing.B, n, size int) [][]byte {
	evs := make([][]byte, n)
	for i := range evs {
		evs[i] = mustEncodeEvent(b, dataEvent(uint64(i+1), size))
	}
	return evs
}

func BenchmarkMemmove(b *testing.B) {
	for _, n := range []int{len(benchEvents(b, 1, 1024)[0]), (&Append{Events: benchEvents(b, 64, 1024)}).EncodedSize()} {
		b.Run("bytes="+strconv.Itoa(n), func(b *testing.B) {
			src, dst := make([]byte, n), make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				copy(dst, src)
			}
		})
	}
}

func BenchmarkEvent(b *testing.B) {
	e := dataEvent(7, 1024)
	enc := mustEncodeEvent(b, e)
	b.Run("op=encode/size=1KiB", func(b *testing.B) {
		buf := make([]byte, 0, 2048)
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = e.AppendBinary(buf[:0])
		}
	})
	b.Run("op=decode/size=1KiB", func(b *testing.B) {
		var d Event
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			if err := d.Decode(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("op=hash/size=1KiB", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EventHash(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	full := mustEncodeEvent(b, fullEvent())
	b.Run("op=decode/shape=every-field", func(b *testing.B) {
		var d Event
		b.SetBytes(int64(len(full)))
		b.ReportAllocs()
		for b.Loop() {
			if err := d.Decode(full); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	m := &Append{Channel: 1, CommitID: 99, HasCondition: true, ExpectedNext: 1000, Events: benchEvents(b, 64, 1024)}
	body, err := m.AppendBinary(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("op=encode/events=64/size=1KiB", func(b *testing.B) {
		buf := make([]byte, 0, len(body))
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = m.AppendBinary(buf[:0])
		}
	})
	b.Run("op=decode/events=64/size=1KiB", func(b *testing.B) {
		var d Append
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if err := d.Decode(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What the server does with an Append before hashing: decode the batch
	// and every event in it.
	b.Run("op=decode+events/events=64/size=1KiB", func(b *testing.B) {
		var d Append
		var e Event
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if err := d.Decode(body); err != nil {
				b.Fatal(err)
			}
			for _, ev := range d.Events {
				if err := e.Decode(ev); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

func BenchmarkEvents(b *testing.B) {
	evs := benchEvents(b, 64, 1024)
	body := AppendEventsHeader(nil, 1)
	for i, e := range evs {
		body = AppendEventsItem(body, uint64(i), int64(i), e)
	}
	b.Run("op=build/events=64/size=1KiB", func(b *testing.B) {
		buf := make([]byte, 0, len(body))
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendEventsHeader(buf[:0], 1)
			for i, e := range evs {
				buf = AppendEventsItem(buf, uint64(i), int64(i), e)
			}
		}
	})
	b.Run("op=decode+iter/events=64/size=1KiB", func(b *testing.B) {
		var m Events
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if err := m.Decode(body); err != nil {
				b.Fatal(err)
			}
			it := m.Iter()
			for {
				if _, ok := it.Next(); !ok {
					break
				}
			}
		}
	})
}

// loopReader replays the same bytes forever.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.b[l.off:])
	l.off = (l.off + n) % len(l.b)
	return n, nil
}

func BenchmarkFrame(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		body := bytes.Repeat([]byte{1}, size)
		b.Run("op=read/size="+strconv.Itoa(size), func(b *testing.B) {
			stream := bytes.Repeat(AppendFrame(nil, body), max(1, (256<<10)/size))
			fr := NewFrameReader(&loopReader{b: stream}, 0)
			b.SetBytes(int64(size + FrameHeaderSize))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := fr.ReadFrame(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("op=write+flush/size="+strconv.Itoa(size), func(b *testing.B) {
			fw := NewFrameWriter(io.Discard, 0)
			b.SetBytes(int64(size + FrameHeaderSize))
			b.ReportAllocs()
			for b.Loop() {
				_ = fw.WriteFrame(body)
				_ = fw.Flush()
			}
		})
	}
}

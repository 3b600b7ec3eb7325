package proto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Seeds: each entry says which path it targets. The same seeds are written
// to testdata/fuzz/<Target>/ (go test fuzz v1 files, the comment on the
// value line) by `go test ./proto -run TestFuzzSeedFiles -update-fuzz-seeds`,
// and TestFuzzSeedFiles checks that the files on disk are up to date.

type frameSeed struct {
	comment string
	data    []byte
	max     uint16
	chunk   uint8
}

func frameSeeds() []frameSeed {
	f := func(bodies ...string) []byte {
		var b []byte
		for _, s := range bodies {
			b = AppendFrame(b, []byte(s))
		}
		return b
	}
	return []frameSeed{
		{"empty stream: clean io.EOF", nil, 64, 0},
		{"one empty frame then EOF", f(""), 64, 0},
		{"two frames read one byte at a time", f("hello", "world"), 64, 1},
		{"frame of exactly the maximum size", f(strings.Repeat("m", 16)), 16, 0},
		{"frame one byte over the maximum: refused from the header", f(strings.Repeat("m", 17)), 16, 0},
		{"length prefix 0xffffffff: refused without reading", []byte{0xff, 0xff, 0xff, 0xff, 1, 2}, 0, 0},
		{"stream ends inside the header", []byte{3, 0}, 64, 0},
		{"stream ends inside the body", []byte{5, 0, 0, 0, 'a', 'b'}, 64, 3},
		{"complete frame then a partial header", append(f("ok"), 1), 64, 2},
		{"default limit (max 0) with a large body", f(strings.Repeat("z", 300)), 0, 7},
	}
}

type bytesSeed struct {
	comment string
	data    []byte
}

func messageSeeds(t testing.TB) []bytesSeed {
	var out []bytesSeed
	for _, m := range sampleMessages(t) {
		b, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytesSeed{"valid " + m.Type().String() + ": decode and re-encode path", b})
	}
	hello2 := append(append([]byte{byte(TypeHello)}, HelloMagic...), 2, 0, 0)
	return append(out,
		bytesSeed{"empty body: truncated type", nil},
		bytesSeed{"unknown message type 0x7f", []byte{0x7f, 0}},
		bytesSeed{"Hello with version 2: unsupported version path", hello2},
		bytesSeed{"Hello with a bad magic", []byte{1, 'H', 'T', 'T', 'P', 1, 0, 0, 0, 0}},
		bytesSeed{"Append whose event count exceeds the body", []byte{byte(TypeAppend), 0, 1, 0, 0xff, 0xff, 0x03}},
		bytesSeed{"Confirmed with an overlong varint offset", []byte{byte(TypeConfirmed), 0, 1, 1, 0x80, 0x00}},
		bytesSeed{"Events with descending offsets", AppendEventsItem(AppendEventsItem(AppendEventsHeader(nil, 0), 5, 0, []byte{1, 1}), 4, 0, []byte{1, 1})},
		bytesSeed{"channel number above 2^32", []byte{byte(TypeClosed), 0x80, 0x80, 0x80, 0x80, 0x10}},
	)
}

func eventSeeds(t testing.TB) []bytesSeed {
	return []bytesSeed{
		{"valid event with every field", mustEncodeEvent(t, fullEvent())},
		{"valid data event, 64-byte payload", mustEncodeEvent(t, dataEvent(3, 64))},
		{"valid empty event (version byte only)", mustEncodeEvent(t, &Event{})},
		{"valid signature event", mustEncodeEvent(t, &Event{PublicKeys: []PublicKey{ed25519Key(1)}, Signatures: []Signature{{KeyHash: hashOf(2), Hashes: MakeHashList(hashOf(3), hashOf(4)), Signature: bytes.Repeat([]byte{5}, 64)}}})},
		{"valid tombstone", mustEncodeEvent(t, &Event{DataKey: 8, Tombstone: true, WriteAuth: WriteAuth{Mode: AuthNobody}})},
		{"fields out of order: non-canonical", rawEvent(1, nil, cat([]byte{tagParent}, u64le(1)), cat([]byte{tagDataKey}, u64le(1)))},
		{"unsorted write-auth keys: non-canonical", rawEvent(1, nil, cat([]byte{tagWriteAuth, 3, 2}, bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{1}, 32)))},
		{"event encoding version 2: unsupported", rawEvent(2, []byte("data"))},
		{"metadata length beyond the input: truncated", []byte{0x10, 1, 1}},
		{"signature count larger than the metadata", rawEvent(1, nil, []byte{tagSignatures, 0xff, 0x7f})},
	}
}

func FuzzFrameReader(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add(s.data, s.max, s.chunk) // s.comment names the path
	}
	f.Fuzz(func(t *testing.T, data []byte, maxFrame uint16, chunk uint8) {
		var r io.Reader = bytes.NewReader(data)
		if chunk > 0 {
			r = &chunkReader{r: r, n: int(chunk)}
		}
		fr := NewFrameReader(r, int(maxFrame))
		var again []byte
		var err error
		for {
			var body []byte
			body, err = fr.ReadFrame()
			if cap(fr.buf) > fr.max+FrameHeaderSize {
				t.Fatalf("buffer of %d bytes exceeds the limit %d + header", cap(fr.buf), fr.max)
			}
			if err != nil {
				break
			}
			if len(body) > fr.max {
				t.Fatalf("frame of %d bytes passed the limit %d", len(body), fr.max)
			}
			again = AppendFrame(again, body)
		}
		if !bytes.Equal(again, data[:len(again)]) {
			t.Fatalf("re-framed bodies differ from the input prefix")
		}
		var tl *FrameTooLargeError
		var fe *FrameError
		switch {
		case err == io.EOF:
			if len(again) != len(data) {
				t.Fatalf("io.EOF after %d of %d bytes", len(again), len(data))
			}
		case errors.As(err, &tl):
			if tl.Size <= int64(tl.Max) || tl.Offset != int64(len(again)) {
				t.Fatalf("bad FrameTooLargeError %+v after %d bytes", *tl, len(again))
			}
		case errors.As(err, &fe) && errors.Is(err, ErrUnexpectedEOF):
			if fe.Offset != int64(len(again)) || len(again) == len(data) {
				t.Fatalf("unexpected EOF at %d after %d of %d bytes", fe.Offset, len(again), len(data))
			}
		default:
			t.Fatalf("untyped error %v", err)
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range messageSeeds(f) {
		f.Add(s.data) // s.comment names the path
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := DecodeMessage(body)
		typ, ch, scoped, perr := PeekChannel(body)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("untyped error %v", err)
			}
			if de.Offset < 0 || de.Offset > len(body) {
				t.Fatalf("error offset %d outside the %d-byte body", de.Offset, len(body))
			}
			return
		}
		out, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatalf("decoded %s does not re-encode: %v", m.Type(), err)
		}
		if !bytes.Equal(out, body) {
			t.Fatalf("%s re-encodes differently:\n in  %x\n out %x", m.Type(), body, out)
		}
		if perr != nil || typ != m.Type() || scoped != typ.Scoped() {
			t.Fatalf("PeekChannel = %s %v %v, message is %s", typ, scoped, perr, m.Type())
		}
		// Decoding again into the same (now filled) struct gives the same bytes.
		if err := m.Decode(body); err != nil {
			t.Fatalf("second decode: %v", err)
		}
		if out2, _ := m.AppendBinary(nil); !bytes.Equal(out2, body) {
			t.Fatal("second decode into a used struct differs")
		}
		switch v := m.(type) {
		case *Events:
			if v.Channel != ch {
				t.Fatalf("PeekChannel %d, Events channel %d", ch, v.Channel)
			}
			it, n := v.Iter(), 0
			for {
				item, ok := it.Next()
				if !ok {
					break
				}
				n++
				var e Event
				_ = e.Decode(item.Event) // must not panic
			}
			if n != v.Len() {
				t.Fatalf("iterator saw %d items, Decode counted %d", n, v.Len())
			}
		case *Append:
			for _, ev := range v.Events {
				var e Event
				_ = e.Decode(ev)
			}
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	for _, s := range eventSeeds(f) {
		f.Add(s.data) // s.comment names the path
	}
	f.Fuzz(func(t *testing.T, encoded []byte) {
		var e Event
		err := e.Decode(encoded)
		h, herr := EventHash(encoded) // must never panic
		key, tomb, kerr := EventDataKey(encoded)
		ts, terr := EventTimestamp(encoded)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("untyped error %v", err)
			}
			if de.Offset < 0 || de.Offset > len(encoded) {
				t.Fatalf("error offset %d outside the %d-byte input", de.Offset, len(encoded))
			}
			return
		}
		out, err := e.AppendBinary(nil)
		if err != nil {
			t.Fatalf("decoded event does not re-encode: %v", err)
		}
		if !bytes.Equal(out, encoded) {
			t.Fatalf("event re-encodes differently:\n in  %x\n out %x", encoded, out)
		}
		if e.EncodedSize() != len(encoded) {
			t.Fatalf("EncodedSize %d, input %d bytes", e.EncodedSize(), len(encoded))
		}
		meta := e.appendMeta(nil)
		mh, dh := sha256.Sum256(meta), sha256.Sum256(e.Data)
		if herr != nil || h != ComputeEventHash(mh, dh) {
			t.Fatalf("EventHash %x %v disagrees with the decoded event", h, herr)
		}
		if kerr != nil || terr != nil || key != e.DataKey || tomb != e.Tombstone || ts != e.Timestamp {
			t.Fatalf("accessors %d %v %d (%v %v) disagree with %d %v %d", key, tomb, ts, kerr, terr, e.DataKey, e.Tombstone, e.Timestamp)
		}
	})
}

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz seed files")

func seedFile(comment string, vals ...string) string {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for i, v := range vals {
		b.WriteString(v)
		if i == 0 {
			b.WriteString(" // " + comment)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func goBytes(b []byte) string { return "[]byte(" + strconv.Quote(string(b)) + ")" }

// TestFuzzSeedFiles checks (or, with -update-fuzz-seeds, writes) the seed
// corpus files, one per seed, each commented with the path it targets.
func TestFuzzSeedFiles(t *testing.T) {
	want := map[string]string{}
	for i, s := range frameSeeds() {
		want[fmt.Sprintf("FuzzFrameReader/seed-%02d", i)] = seedFile(s.comment, goBytes(s.data), fmt.Sprintf("uint16(%d)", s.max), fmt.Sprintf("byte(%d)", s.chunk))
	}
	for i, s := range messageSeeds(t) {
		want[fmt.Sprintf("FuzzDecodeMessage/seed-%02d", i)] = seedFile(s.comment, goBytes(s.data))
	}
	for i, s := range eventSeeds(t) {
		want[fmt.Sprintf("FuzzDecodeEvent/seed-%02d", i)] = seedFile(s.comment, goBytes(s.data))
	}
	for name, content := range want {
		path := filepath.Join("testdata", "fuzz", name)
		if *updateFuzzSeeds {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("missing seed file (run with -update-fuzz-seeds): %v", err)
			continue
		}
		if string(got) != content {
			t.Errorf("%s is out of date (run with -update-fuzz-seeds)", path)
		}
	}
}

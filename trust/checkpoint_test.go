package trust

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/atedb/atedb/proto"
)

// sampleState has every kind of content: root keys, registered keys of two
// types, objects of every mode, an orphan.
func sampleState(t testing.TB) *State {
	s := NewState(keys(kR, kA))
	e := proto.Event{PublicKeys: []proto.PublicKey{
		testKey(t, proto.KeyEd25519, "a").Public().Proto(),
		testKey(t, proto.KeyMLDSA44, "b").Public().Proto(),
	}}
	s.Apply(&e)
	for _, e := range []proto.Event{
		put(1, 0, anyOf(kA, kB)), put(2, 1, inherit), put(3, 2, nobody), put(4, 0, everyone),
		put(9, 0, everyone), put(10, 9, inherit), del(9, 0), put(1<<63, 4, anyOf(kC)),
	} {
		s.Apply(&e)
	}
	return s
}

func TestStateRoundTrip(t *testing.T) {
	for name, s := range map[string]*State{"empty": NewState(nil), "root keys only": NewState(keys(kB)), "sample": sampleState(t)} {
		t.Run(name, func(t *testing.T) {
			b := s.AppendBinary([]byte("prefix"), 1234)[len("prefix"):]
			back, pos, err := DecodeState(b)
			if err != nil {
				t.Fatalf("DecodeState: %v", err)
			}
			if pos != 1234 {
				t.Fatalf("position %d, want 1234", pos)
			}
			if again := back.AppendBinary(nil, 1234); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs")
			}
			if back.Objects() != s.Objects() || len(back.keys) != len(s.keys) {
				t.Fatalf("decoded %d objects, %d keys; want %d, %d", back.Objects(), len(back.keys), s.Objects(), len(s.keys))
			}
			for h := range s.keys {
				p, ok := back.PublicKey(h)
				if !ok || p.Hash() != h {
					t.Fatalf("key %x lost", h)
				}
			}
			b[len(b)/2] ^= 0xff // the decoded state shares nothing with b
			if again := back.AppendBinary(nil, 1234); bytes.Equal(again, b) {
				t.Fatalf("decoded state aliases its input")
			}
		})
	}
}

// reseal recomputes the length field and the checksum of an edited
// encoding, so the decoder's structural checks are reached.
func reseal(b []byte) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint64(b[5:], uint64(len(b)))
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crcTable))
	return b
}

// edit replaces body bytes at off (after the header) and reseals.
func edit(b []byte, f func(body []byte) []byte) []byte {
	body := f(bytes.Clone(b[stateHeaderSize : len(b)-4]))
	out := append(append(bytes.Clone(b[:stateHeaderSize]), body...), 0, 0, 0, 0)
	return reseal(out)
}

func TestStateDecodeErrors(t *testing.T) {
	good := sampleState(t).AppendBinary(nil, 7)
	empty := NewState(nil).AppendBinary(nil, 7) // body: 01 00 00
	oneObj := func(key, parent uint64, auth ...byte) []byte {
		body := []byte{1, 0, 1}
		body = binary.LittleEndian.AppendUint64(body, key)
		body = binary.LittleEndian.AppendUint64(body, parent)
		return edit(empty, func([]byte) []byte { return append(body, auth...) })
	}
	h := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"empty":              {nil, ErrBadState},
		"header only":        {good[:stateHeaderSize], ErrBadState},
		"truncated":          {good[:len(good)-1], ErrBadState},
		"bad magic":          {reseal(append([]byte("XTST"), good[4:]...)), ErrBadState},
		"version 2":          {reseal(append(append([]byte("ATST"), 2), good[5:]...)), ErrStateVersion},
		"length field":       {append(bytes.Clone(good), 0), ErrBadState},
		"checksum":           {append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1), ErrBadState},
		"trailing bytes":     {edit(empty, func(b []byte) []byte { return append(b, 0) }), ErrBadState},
		"root inherit":       {edit(empty, func(b []byte) []byte { b[0] = 0; return b }), ErrBadState},
		"root nobody":        {edit(empty, func(b []byte) []byte { b[0] = 2; return b }), ErrBadState},
		"root any-of empty":  {edit(empty, func([]byte) []byte { return []byte{3, 0, 0, 0} }), ErrBadState},
		"root keys unsorted": {edit(empty, func([]byte) []byte { return append(append(append([]byte{3, 2}, h(2)...), h(1)...), 0, 0) }), ErrBadState},
		"root keys repeated": {edit(empty, func([]byte) []byte { return append(append(append([]byte{3, 2}, h(1)...), h(1)...), 0, 0) }), ErrBadState},
		"huge key count":     {edit(empty, func([]byte) []byte { return []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0} }), ErrBadState},
		"huge object count":  {edit(empty, func([]byte) []byte { return []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01} }), ErrBadState},
		"count not minimal":  {edit(empty, func([]byte) []byte { return []byte{1, 0x80, 0x00, 0} }), ErrBadState},
		"unknown key type":   {edit(empty, func([]byte) []byte { return append(append([]byte{1, 1, 9}, h(0)...), 0) }), ErrBadState},
		"object key zero":    {oneObj(0, 0, 1), ErrBadState},
		"object own parent":  {oneObj(5, 5, 1), ErrBadState},
		"object bad mode":    {oneObj(5, 0, 4), ErrBadState},
		"object any-of none": {oneObj(5, 0, 3, 0), ErrBadState},
		"object truncated":   {oneObj(5, 0), ErrBadState},
	}
	// Objects out of order: two objects, 6 then 5.
	two := []byte{1, 0, 2}
	for _, k := range []uint64{6, 5} {
		two = binary.LittleEndian.AppendUint64(two, k)
		two = binary.LittleEndian.AppendUint64(two, 0)
		two = append(two, 1)
	}
	cases["objects unsorted"] = struct {
		b    []byte
		want error
	}{edit(empty, func([]byte) []byte { return two }), ErrBadState}
	for name, tc := range cases {
		if _, _, err := DecodeState(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", name, err, tc.want)
		}
	}
	// Every single-bit flip anywhere is caught.
	for i := range len(good) * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		if _, _, err := DecodeState(b); err == nil {
			t.Fatalf("bit %d flipped: decoded without error", i)
		}
	}
}

// FuzzDecodeState: DecodeState never panics, and whatever it accepts
// re-encodes to exactly the same bytes (the encoding is canonical).
func FuzzDecodeState(f *testing.F) {
	f.Add(NewState(nil).AppendBinary(nil, 0))          // smallest valid encoding
	f.Add(NewState(keys(kA, kB)).AppendBinary(nil, 1)) // root keys
	f.Add(sampleState(f).AppendBinary(nil, 99))        // keys, every mode, orphan
	f.Add([]byte("ATST\x01"))                          // truncated header
	f.Fuzz(func(t *testing.T, b []byte) {
		// Most random inputs die at the checksum; reseal a copy too so the
		// structural checks are fuzzed as well.
		for _, in := range [][]byte{b, resealIfLong(b)} {
			s, pos, err := DecodeState(in)
			if err != nil {
				continue
			}
			if again := s.AppendBinary(nil, pos); !bytes.Equal(again, in) {
				t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", in, again)
			}
		}
	})
}

func resealIfLong(b []byte) []byte {
	if len(b) < stateHeaderSize+stateTrailerSize || string(b[:4]) != stateMagic {
		return b
	}
	return reseal(b)
}

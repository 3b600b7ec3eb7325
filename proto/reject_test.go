package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// rawEvent builds an encoded event from raw metadata pieces (after the
// version byte) and data, without any validation.
func rawEvent(version byte, data []byte, fields ...[]byte) []byte {
	meta := []byte{version}
	for _, f := range fields {
		meta = append(meta, f...)
	}
	out := binary.AppendUvarint(nil, uint64(len(meta)))
	out = append(out, meta...)
	return append(out, data...)
}

func u64le(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestEventRejects(t *testing.T) {
	key := cat([]byte{tagDataKey}, u64le(5))
	h1, h2 := hashOf(1), hashOf(2)
	cases := map[string]struct {
		in    []byte
		want  error
		field string
	}{
		"empty input":             {nil, ErrTruncated, "metadata length"},
		"empty metadata":          {[]byte{0}, ErrTruncated, "version"},
		"meta longer than input":  {[]byte{5, 1}, ErrTruncated, "metadata length"},
		"overlong meta length":    {[]byte{0x81, 0x00, 1}, ErrNonCanonical, "metadata length"},
		"version 2":               {rawEvent(2, nil), ErrUnsupportedVersion, "version"},
		"fields out of order":     {rawEvent(1, nil, cat([]byte{tagTimestamp}, u64le(1)), key), ErrNonCanonical, "tag"},
		"repeated field":          {rawEvent(1, nil, key, key), ErrNonCanonical, "tag"},
		"explicit zero key":       {rawEvent(1, nil, cat([]byte{tagDataKey}, u64le(0))), ErrNonCanonical, "data key"},
		"explicit zero time":      {rawEvent(1, nil, cat([]byte{tagTimestamp}, u64le(0))), ErrNonCanonical, "timestamp"},
		"explicit zero parent":    {rawEvent(1, nil, cat([]byte{tagParent}, u64le(0))), ErrNonCanonical, "parent"},
		"tombstone without key":   {rawEvent(1, nil, []byte{tagTombstone}), ErrInvalid, "tombstone"},
		"unknown tag":             {rawEvent(1, nil, []byte{0x0d, 0}), ErrInvalid, "tag"},
		"truncated key":           {rawEvent(1, nil, []byte{tagDataKey, 1, 2}), ErrTruncated, "data key"},
		"unknown auth mode":       {rawEvent(1, nil, []byte{tagWriteAuth, 9}), ErrInvalid, "write auth"},
		"inherit written":         {rawEvent(1, nil, []byte{tagWriteAuth, 0}), ErrInvalid, "write auth"},
		"any-of empty":            {rawEvent(1, nil, []byte{tagWriteAuth, 3, 0}), ErrInvalid, "write auth keys"},
		"any-of unsorted":         {rawEvent(1, nil, cat([]byte{tagWriteAuth, 3, 2}, h2[:], h1[:])), ErrNonCanonical, "write auth keys"},
		"any-of duplicate":        {rawEvent(1, nil, cat([]byte{tagWriteAuth, 3, 2}, h1[:], h1[:])), ErrNonCanonical, "write auth keys"},
		"any-of huge count":       {rawEvent(1, nil, cat([]byte{tagWriteAuth, 3}, binary.AppendUvarint(nil, 1<<60))), ErrInvalid, "write auth keys"},
		"sign-with unsorted":      {rawEvent(1, nil, cat([]byte{tagSignWith, 2}, h2[:], h1[:])), ErrNonCanonical, "sign with"},
		"no public keys":          {rawEvent(1, nil, []byte{tagPublicKeys, 0}), ErrNonCanonical, "public keys"},
		"unknown key type":        {rawEvent(1, nil, cat([]byte{tagPublicKeys, 1, 9, 32}, make([]byte, 32))), ErrInvalid, "public keys"},
		"short ed25519 key":       {rawEvent(1, nil, cat([]byte{tagPublicKeys, 1, 1, 31}, make([]byte, 32))), ErrInvalid, "public keys"},
		"no signatures":           {rawEvent(1, nil, []byte{tagSignatures, 0}), ErrNonCanonical, "signatures"},
		"signature without hash":  {rawEvent(1, nil, cat([]byte{tagSignatures, 1}, h1[:], []byte{0, 1, 1}, make([]byte, 40))), ErrInvalid, "signatures.hashes"},
		"empty signature":         {rawEvent(1, nil, cat([]byte{tagSignatures, 1}, h1[:], []byte{1}, h2[:], []byte{0}), cat([]byte{tagSignWith, 1}, h1[:])), ErrInvalid, "signatures.signature"},
		"empty type name":         {rawEvent(1, nil, []byte{tagTypeName, 0}), ErrNonCanonical, "type name"},
		"overlong opaque length":  {rawEvent(1, nil, []byte{tagAuthor, 0x81, 0x00, 'a'}), ErrNonCanonical, "author"},
		"opaque length past meta": {rawEvent(1, []byte("data"), []byte{tagIV, 3, 'a'}), ErrTruncated, "iv"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var e Event
			err := e.Decode(c.in)
			var de *DecodeError
			if !errors.Is(err, c.want) || !errors.As(err, &de) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if de.Field != c.field || de.Msg != "event" {
				t.Fatalf("error names %s.%s, want event.%s (%v)", de.Msg, de.Field, c.field, err)
			}
			if de.Offset < 0 || de.Offset > len(c.in) {
				t.Fatalf("offset %d outside the input (%d bytes)", de.Offset, len(c.in))
			}
		})
	}
}

func TestEventRejectOffsets(t *testing.T) {
	// The offset points at the offending field, within the whole input.
	in := rawEvent(1, nil, cat([]byte{tagDataKey}, u64le(5)), cat([]byte{tagDataKey}, u64le(6)))
	var e Event
	err := e.Decode(in)
	var de *DecodeError
	if !errors.As(err, &de) || de.Offset != 1+1+9 {
		t.Fatalf("got %v, want offset %d", err, 1+1+9)
	}
}

func TestEventEncodeRefuses(t *testing.T) {
	cases := map[string]*Event{
		"tombstone without key": {Tombstone: true},
		"unsorted any-of":       {WriteAuth: WriteAuth{Mode: AuthAnyOf, Keys: MakeHashList(hashOf(2), hashOf(1))}},
		"empty any-of":          {WriteAuth: WriteAuth{Mode: AuthAnyOf}},
		"keys without any-of":   {WriteAuth: WriteAuth{Mode: AuthEveryone, Keys: MakeHashList(hashOf(1))}},
		"unknown mode":          {WriteAuth: WriteAuth{Mode: 7}},
		"bad key size":          {PublicKeys: []PublicKey{{Type: KeyEd25519, Key: make([]byte, 31)}}},
		"unknown key type":      {PublicKeys: []PublicKey{{Type: 99, Key: make([]byte, 32)}}},
		"empty signature":       {Signatures: []Signature{{Hashes: MakeHashList(hashOf(1))}}},
		"signature no hashes":   {Signatures: []Signature{{Signature: []byte{1}}}},
		"ragged hash list":      {Signatures: []Signature{{Hashes: HashList{1, 2, 3}, Signature: []byte{1}}}},
		"unsorted sign-with":    {SignWith: MakeHashList(hashOf(2), hashOf(1))},
		"huge opaque":           {Author: make([]byte, MaxOpaqueLen+1)},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := e.AppendBinary([]byte("keep"))
			var ee *EncodeError
			if !errors.As(err, &ee) {
				t.Fatalf("got %v, want an EncodeError", err)
			}
			if string(out) != "keep" {
				t.Fatalf("dst modified on error: %q", out)
			}
		})
	}
}

func TestMessageRejects(t *testing.T) {
	hello := func(version uint64, rest ...byte) []byte {
		b := append([]byte{byte(TypeHello)}, HelloMagic...)
		return append(binary.AppendUvarint(b, version), rest...)
	}
	cases := map[string]struct {
		in    []byte
		want  error
		field string
	}{
		"hello bad magic":        {[]byte{1, 'A', 'T', 'E', '1', 1, 0, 0, 0, 0}, ErrInvalid, "magic"},
		"hello version 2":        {hello(2, 0xff, 0xff), ErrUnsupportedVersion, "version"},
		"hello key size 100":     {hello(1, 0, 100, 0, 0), ErrInvalid, "key size"},
		"hello key size 300":     {hello(1, 0, 0xac, 0x02, 0, 0), ErrInvalid, "key size"},
		"hello bad utf-8 route":  {hello(1, 0, 0, 1, 0xff, 0), ErrInvalid, "route"},
		"hello route too long":   {hello(1, append([]byte{0, 0}, binary.AppendUvarint(nil, MaxStringLen+1)...)...), ErrInvalid, "route"},
		"hello overlong feature": {hello(1, 0x80, 0x00, 0, 0, 0), ErrNonCanonical, "features"},
		"ack reason with ok":     {cat([]byte{byte(TypeHelloAck), 1, 0, 0, 0}, make([]byte, 32), []byte{1, 'x'}), ErrNonCanonical, "reason"},
		"ack version 9":          {[]byte{byte(TypeHelloAck), 9}, ErrUnsupportedVersion, "version"},
		"fatal code ok":          {[]byte{byte(TypeFatal), 0, 0}, ErrInvalid, "code"},
		"fatal code beyond u16":  {[]byte{byte(TypeFatal), 0x80, 0x80, 0x04, 0}, ErrInvalid, "code"},
		"error for append":       {[]byte{byte(TypeError), 0, byte(TypeAppend), 1, 0}, ErrInvalid, "request"},
		"channel too large":      {cat([]byte{byte(TypeOpened)}, binary.AppendUvarint(nil, 1<<32)), ErrInvalid, "channel"},
		"channel overflow":       {cat([]byte{byte(TypeOpened)}, bytes.Repeat([]byte{0xff}, 10), []byte{1}), ErrInvalid, "channel"},
		"open channel 0":         {[]byte{byte(TypeOpen), 0, 1, 'k'}, ErrInvalid, "channel"},
		"open empty key":         {[]byte{byte(TypeOpen), 1, 0}, ErrInvalid, "chain key"},
		"subscribe no switch":    {[]byte{byte(TypeSubscribe), 0, 0, 0}, ErrInvalid, "flags"},
		"subscribe unknown flag": {[]byte{byte(TypeSubscribe), 0, 0x0b, 0}, ErrInvalid, "flags"},
		"live-only with start":   {[]byte{byte(TypeSubscribe), 0, subLive, 5}, ErrInvalid, "from"},
		"history bad integrity":  {[]byte{byte(TypeStartHistory), 0, 3, 0, 0, 0}, ErrInvalid, "integrity"},
		"append unknown flag":    {[]byte{byte(TypeAppend), 0, 1, 4, 0}, ErrInvalid, "flags"},
		"append huge count":      {cat([]byte{byte(TypeAppend), 0, 1, 0}, binary.AppendUvarint(nil, 1<<62)), ErrInvalid, "events"},
		"append short event":     {[]byte{byte(TypeAppend), 0, 1, 0, 2, 1, 'a', 5, 'b'}, ErrTruncated, "events[1]"},
		"confirmed overlong":     {[]byte{byte(TypeConfirmed), 0, 1, 1, 0x85, 0x00}, ErrNonCanonical, "offsets"},
		"commit error ok":        {[]byte{byte(TypeCommitError), 0, 1, 0, 0, 0, 0}, ErrInvalid, "code"},
		"prove empty signature":  {cat([]byte{byte(TypeProve), 0, 1, 1, 32}, make([]byte, 32), []byte{0}), ErrInvalid, "signature"},
		"lock short key":         {[]byte{byte(TypeLock), 0, 1, 1, 2, 3}, ErrTruncated, "key"},
		"ping trailing":          {[]byte{byte(TypePing), 1, 0}, ErrNonCanonical, ""},
		"events no items":        {[]byte{byte(TypeEvents), 0}, ErrInvalid, "items"},
		"events short item":      {[]byte{byte(TypeEvents), 0, 1, 2, 3}, ErrTruncated, "offset"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeMessage(c.in)
			var de *DecodeError
			if !errors.Is(err, c.want) || !errors.As(err, &de) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if de.Field != c.field {
				t.Fatalf("error names field %q, want %q (%v)", de.Field, c.field, err)
			}
			if de.Offset < 0 || de.Offset > len(c.in) {
				t.Fatalf("offset %d outside the input (%d bytes)", de.Offset, len(c.in))
			}
		})
	}
}

func TestHelloUnsupportedVersionKeepsVersion(t *testing.T) {
	b := append([]byte{byte(TypeHello)}, HelloMagic...)
	b = append(b, 7, 0xde, 0xad) // version 7, then bytes this version cannot read
	var h Hello
	err := h.Decode(b)
	if !errors.Is(err, ErrUnsupportedVersion) || h.Version != 7 {
		t.Fatalf("got version %d, %v; want 7 and ErrUnsupportedVersion", h.Version, err)
	}
}

func TestMessageEncodeRefuses(t *testing.T) {
	cases := map[string]Message{
		"hello key size":      &Hello{Version: 1, KeySize: 100},
		"hello bad utf-8":     &Hello{Version: 1, Route: "\xff"},
		"hello long key":      &Hello{Version: 1, ChainKey: string(make([]byte, MaxStringLen+1))},
		"ack reason with ok":  &HelloAck{Version: 1, Reason: "x"},
		"fatal ok":            &Fatal{},
		"error for append":    &Error{Request: TypeAppend, Code: CodeInternal},
		"open channel 0":      &Open{ChainKey: "k"},
		"open empty key":      &Open{Channel: 1},
		"subscribe nothing":   &Subscribe{},
		"subscribe live from": &Subscribe{Live: true, From: 3},
		"history integrity":   &StartOfHistory{},
		"events empty":        &Events{},
		"append expected":     &Append{ExpectedNext: 3},
		"commit error ok":     &CommitError{Index: -1},
		"commit error index":  &CommitError{Code: CodeInternal, Index: -2},
		"prove no signature":  &Prove{Key: ed25519Key(1)},
		"prove bad key":       &Prove{Key: PublicKey{Type: KeyEd25519}, Signature: []byte{1}},
		"lock result reason":  &LockResult{Reason: "x"},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := m.AppendBinary([]byte("keep"))
			var ee *EncodeError
			if !errors.As(err, &ee) {
				t.Fatalf("got %v, want an EncodeError", err)
			}
			if string(out) != "keep" {
				t.Fatalf("dst modified on error: %q", out)
			}
		})
	}
}

func TestDecodeWrongType(t *testing.T) {
	body, _ := (&Ping{ID: 1}).AppendBinary(nil)
	var p Pong
	if err := p.Decode(body); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Pong.Decode(Ping): got %v, want ErrInvalid", err)
	}
	if err := p.Decode(nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Pong.Decode(nil): got %v, want ErrTruncated", err)
	}
}

func TestErrorCodes(t *testing.T) {
	names := map[string]bool{}
	for _, c := range AllErrorCodes() {
		n := c.String()
		if n == "" || names[n] {
			t.Errorf("code %d: empty or duplicate name %q", c, n)
		}
		names[n] = true
	}
	if got := ErrorCode(999).String(); got != "ErrorCode(999)" {
		t.Errorf("undefined code prints %q", got)
	}
	err := error(&CodeError{Code: CodeConflict, Reason: "head 5"})
	if !errors.Is(err, &CodeError{Code: CodeConflict}) || errors.Is(err, &CodeError{Code: CodeDenied}) {
		t.Error("CodeError.Is does not match by code")
	}
}

// TestUnknownCodeDecodes: a code this version does not define (a newer
// peer's) decodes, keeps its value and names itself, so that it fails the
// request it answers rather than the message (PROTOCOL.md §4).
func TestUnknownCodeDecodes(t *testing.T) {
	var m Fatal
	if err := m.Decode([]byte{byte(TypeFatal), 0xe7, 0x07, 1, 'x'}); err != nil {
		t.Fatalf("Fatal with code 999: %v", err)
	}
	if m.Code != 999 || m.Code.String() != "ErrorCode(999)" || m.Reason != "x" {
		t.Fatalf("decoded %+v (%s), want code 999 reason x", m, m.Code)
	}
}

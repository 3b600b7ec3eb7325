package proto

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	seen := map[MsgType]bool{}
	for _, m := range sampleMessages(t) {
		seen[m.Type()] = true
		t.Run(m.Type().String(), func(t *testing.T) {
			body, err := m.AppendBinary(nil)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if MsgType(body[0]) != m.Type() {
				t.Fatalf("type byte 0x%02x, want %s", body[0], m.Type())
			}
			got, err := DecodeMessage(body)
			if err != nil {
				t.Fatalf("decode %x: %v", body, err)
			}
			again, err := got.AppendBinary(nil)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if !bytes.Equal(body, again) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, body)
			}
			if ev, ok := got.(*Events); ok {
				ev.n = 0 // not part of the value
			}
			if !reflect.DeepEqual(normalize(got), normalize(m)) {
				t.Fatalf("decoded value differs:\n got %+v\nwant %+v", got, m)
			}
			// Every strict prefix must fail with a typed error, never panic
			// (except an Events body cut at an item boundary, which is a
			// valid shorter message: frames, not fields, delimit it).
			for i := range len(body) {
				pm, err := DecodeMessage(body[:i])
				if _, ok := pm.(*Events); ok && err == nil {
					continue
				}
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("prefix %d/%d: got %v, want a DecodeError", i, len(body), err)
				}
			}
			// Trailing bytes are rejected.
			var de *DecodeError
			if _, err := DecodeMessage(append(bytes.Clone(body), 0)); !errors.As(err, &de) {
				t.Fatalf("trailing byte: got %v, want a DecodeError", err)
			}
		})
	}
	for _, typ := range AllMsgTypes() {
		if !seen[typ] {
			t.Errorf("no sample message of type %s", typ)
		}
	}
}

// normalize maps empty slices to nil so DeepEqual compares values.
func normalize(m Message) Message {
	switch v := m.(type) {
	case *Append:
		c := *v
		if len(c.Events) == 0 {
			c.Events = nil
		}
		return &c
	case *Confirmed:
		c := *v
		if len(c.Offsets) == 0 {
			c.Offsets = nil
		}
		return &c
	case *StartOfHistory:
		c := *v
		if len(c.RootKeys) == 0 {
			c.RootKeys = nil
		}
		return &c
	}
	return m
}

func TestEventsIter(t *testing.T) {
	ev1 := mustEncodeEvent(t, dataEvent(1, 10))
	ev2 := mustEncodeEvent(t, dataEvent(2, 0))
	body := AppendEventsHeader(nil, 9)
	body = AppendEventsItem(body, 5, -1, ev1)
	body = AppendEventsItem(body, 7, 123, ev2)
	if want := len(AppendEventsHeader(nil, 9)) + EventsItemSize(len(ev1)) + EventsItemSize(len(ev2)); len(body) != want {
		t.Fatalf("body %d bytes, EventsItemSize predicts %d", len(body), want)
	}
	var m Events
	if err := m.Decode(body); err != nil {
		t.Fatal(err)
	}
	if m.Channel != 9 || m.Len() != 2 {
		t.Fatalf("channel %d len %d, want 9 and 2", m.Channel, m.Len())
	}
	it := m.Iter()
	want := []EventItem{{5, -1, ev1}, {7, 123, ev2}}
	for i, w := range want {
		got, ok := it.Next()
		if !ok || got.Offset != w.Offset || got.Time != w.Time || !bytes.Equal(got.Event, w.Event) {
			t.Fatalf("item %d: got %+v %v, want %+v", i, got, ok, w)
		}
	}
	if _, ok := it.Next(); ok {
		t.Fatal("iterator did not stop after the last item")
	}
	// Offsets must ascend.
	bad := AppendEventsItem(AppendEventsItem(AppendEventsHeader(nil, 9), 7, 0, ev1), 7, 0, ev2)
	if err := m.Decode(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("repeated offset: got %v, want ErrInvalid", err)
	}
	if err := m.Decode(AppendEventsHeader(nil, 9)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no items: got %v, want ErrInvalid", err)
	}
}

func TestPeek(t *testing.T) {
	body, _ := (&Lock{Channel: 77, ID: 1, Key: 2}).AppendBinary(nil)
	typ, ch, scoped, err := PeekChannel(body)
	if err != nil || typ != TypeLock || ch != 77 || !scoped {
		t.Fatalf("got %s %d %v %v", typ, ch, scoped, err)
	}
	body, _ = (&Ping{ID: 3}).AppendBinary(nil)
	if typ, _, scoped, err := PeekChannel(body); err != nil || typ != TypePing || scoped {
		t.Fatalf("ping: got %s %v %v", typ, scoped, err)
	}
	if _, err := PeekType([]byte{0x7f}); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("got %v, want ErrUnknownMessage", err)
	}
	if _, err := DecodeMessage([]byte{0xee, 1, 2}); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("got %v, want ErrUnknownMessage", err)
	}
	if _, err := PeekType(nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("got %v, want ErrTruncated", err)
	}
}

// TestAppendFlagBits pins the Append flag byte: bit 0 condition, bit 1
// restart (PROTOCOL.md §6.13).
func TestAppendFlagBits(t *testing.T) {
	cases := map[string]struct {
		m    Append
		want []byte
	}{
		"none":              {Append{Channel: 2, CommitID: 7}, []byte{byte(TypeAppend), 2, 7, 0x00, 0}},
		"condition":         {Append{Channel: 2, CommitID: 7, HasCondition: true, ExpectedNext: 5}, []byte{byte(TypeAppend), 2, 7, 0x01, 5, 0}},
		"restart":           {Append{Channel: 2, CommitID: 7, Restart: true}, []byte{byte(TypeAppend), 2, 7, 0x02, 0}},
		"restart+condition": {Append{Channel: 2, CommitID: 7, Restart: true, HasCondition: true, ExpectedNext: 5}, []byte{byte(TypeAppend), 2, 7, 0x03, 5, 0}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := tc.m.AppendBinary(nil)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("encode: got %x, %v; want %x", got, err, tc.want)
			}
			if n := tc.m.EncodedSize(); n != len(got) {
				t.Errorf("EncodedSize %d, encoding has %d bytes", n, len(got))
			}
			var back Append
			if err := back.Decode(tc.want); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if back.Restart != tc.m.Restart || back.HasCondition != tc.m.HasCondition || back.ExpectedNext != tc.m.ExpectedNext {
				t.Fatalf("decoded %+v, want %+v", back, tc.m)
			}
		})
	}
}

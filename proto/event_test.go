package proto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"reflect"
	"testing"
)

func TestEventRoundTrip(t *testing.T) {
	cases := map[string]*Event{
		"full":      fullEvent(),
		"data":      dataEvent(9, 1024),
		"empty":     {},
		"only data": {Data: []byte{1, 2, 3}},
		"signature": {Signatures: []Signature{{KeyHash: hashOf(1), Hashes: MakeHashList(hashOf(2)), Signature: []byte{3}}}, PublicKeys: []PublicKey{ed25519Key(4)}},
		"nobody":    {DataKey: 5, WriteAuth: WriteAuth{Mode: AuthNobody}},
		"negative":  {DataKey: 1, Timestamp: -5},
		"ml-dsa": {PublicKeys: []PublicKey{
			{Type: KeyMLDSA44, Key: bytes.Repeat([]byte{1}, 1312)},
			{Type: KeyMLDSA65, Key: bytes.Repeat([]byte{2}, 1952)},
			{Type: KeyMLDSA87, Key: bytes.Repeat([]byte{3}, 2592)},
		}},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			enc := mustEncodeEvent(t, e)
			if len(enc) != e.EncodedSize() {
				t.Fatalf("EncodedSize %d, encoding has %d bytes", e.EncodedSize(), len(enc))
			}
			var got Event
			if err := got.Decode(enc); err != nil {
				t.Fatalf("decode: %v", err)
			}
			again := mustEncodeEvent(t, &got)
			if !bytes.Equal(enc, again) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, enc)
			}
			if !reflect.DeepEqual(normEvent(&got), normEvent(e)) {
				t.Fatalf("decoded value differs:\n got %+v\nwant %+v", got, *e)
			}
			// Hash = SHA-256(SHA-256(meta) || SHA-256(data)), computed independently.
			meta := got.appendMeta(nil)
			mh, dh := sha256.Sum256(meta), sha256.Sum256(e.Data)
			want := sha256.Sum256(append(mh[:], dh[:]...))
			h, err := EventHash(enc)
			if err != nil || h != Hash(want) {
				t.Fatalf("EventHash = %x, %v; want %x", h, err, want)
			}
			key, tomb, err := EventDataKey(enc)
			if err != nil || key != e.DataKey || tomb != e.Tombstone {
				t.Fatalf("EventDataKey = %d %v %v, want %d %v", key, tomb, err, e.DataKey, e.Tombstone)
			}
			ts, err := EventTimestamp(enc)
			if err != nil || ts != e.Timestamp {
				t.Fatalf("EventTimestamp = %d %v, want %d", ts, err, e.Timestamp)
			}
			p, err := EventParent(enc)
			if err != nil || p != e.Parent {
				t.Fatalf("EventParent = %d %v, want %d", p, err, e.Parent)
			}
			for i := range len(enc) {
				if len(e.Data) > 0 && i >= len(enc)-len(e.Data) {
					break // cutting the data gives another valid event
				}
				var de *DecodeError
				if err := got.Decode(enc[:i]); !errors.As(err, &de) {
					t.Fatalf("prefix %d: got %v, want a DecodeError", i, err)
				}
			}
		})
	}
}

func normEvent(e *Event) Event {
	c := *e
	if len(c.PublicKeys) == 0 {
		c.PublicKeys = nil
	}
	if len(c.Signatures) == 0 {
		c.Signatures = nil
	}
	if len(c.Data) == 0 {
		c.Data = nil
	}
	return c
}

func TestEventHashDiffers(t *testing.T) {
	a := mustEncodeEvent(t, dataEvent(1, 10))
	b := mustEncodeEvent(t, dataEvent(2, 10))
	ha, _ := EventHash(a)
	hb, _ := EventHash(b)
	if ha == hb {
		t.Fatal("different events share a hash")
	}
	// Moving a byte from metadata to data changes the hash (domain split).
	e := &Event{TypeName: []byte("ab"), Data: []byte("c")}
	f := &Event{TypeName: []byte("a"), Data: []byte("bc")}
	he, _ := EventHash(mustEncodeEvent(t, e))
	hf, _ := EventHash(mustEncodeEvent(t, f))
	if he == hf {
		t.Fatal("metadata/data boundary is not part of the hash")
	}
}

func TestPublicKeyHash(t *testing.T) {
	k := ed25519Key(3)
	want := sha256.Sum256(append([]byte{byte(KeyEd25519)}, k.Key...))
	if k.Hash() != Hash(want) {
		t.Fatalf("PublicKey.Hash = %x, want %x", k.Hash(), want)
	}
}

func TestSortHashes(t *testing.T) {
	l := MakeHashList(hashOf(3), hashOf(1), hashOf(3), hashOf(2))
	got := SortHashes(l)
	if want := MakeHashList(hashOf(1), hashOf(2), hashOf(3)); !bytes.Equal(got, want) {
		t.Fatalf("got %d hashes %x", got.Len(), got)
	}
	if !got.Contains(hashOf(2)) || got.Contains(hashOf(9)) {
		t.Fatal("Contains is wrong")
	}
}

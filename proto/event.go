package proto

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
)

// Canonical event encoding: part of the wire and disk format; never change.
//
//	event    = uvarint(len(meta)) | meta | data          (data: the rest, may be empty)
//	meta     = 0x01 (EventVersion) | field*              (tags strictly ascending, each at most once)
//	field    = tag byte | value
//
//	tag  field            value
//	0x01 data key         u64 LE, non-zero
//	0x02 tombstone        (none; requires a data key)
//	0x03 client time      i64 LE unix nanoseconds, non-zero
//	0x04 parent key       u64 LE, non-zero
//	0x05 write auth       mode byte: 1 everyone, 2 nobody, 3 any-of + uvarint n>=1 + n*32 key hashes (strictly ascending)
//	0x06 public keys      uvarint n>=1 + n*(key type byte + uvarint len + key bytes)
//	0x07 signatures       uvarint n>=1 + n*(32 key hash + uvarint m>=1 + m*32 event hashes + uvarint len + signature)
//	0x08 sign-with        uvarint n>=1 + n*32 key hashes (strictly ascending)
//	0x09 type name        uvarint len>=1 + bytes (opaque)
//	0x0a confidentiality  uvarint len>=1 + bytes (opaque)
//	0x0b init. vector     uvarint len>=1 + bytes (opaque)
//	0x0c author           uvarint len>=1 + bytes (opaque)
//
// The event hash is SHA-256(SHA-256(meta) || SHA-256(data)).
const (
	// EventVersion is the first byte of every event's metadata.
	EventVersion = 0x01

	tagDataKey         = 0x01
	tagTombstone       = 0x02
	tagTimestamp       = 0x03
	tagParent          = 0x04
	tagWriteAuth       = 0x05
	tagPublicKeys      = 0x06
	tagSignatures      = 0x07
	tagSignWith        = 0x08
	tagTypeName        = 0x09
	tagConfidentiality = 0x0a
	tagIV              = 0x0b
	tagAuthor          = 0x0c

	// HashSize is the size of event hashes and key hashes (SHA-256).
	HashSize = sha256.Size
	// MaxSignatureLen bounds one signature's bytes.
	MaxSignatureLen = 8192
	// MaxOpaqueLen bounds each opaque metadata field.
	MaxOpaqueLen = 64 << 10
)

// Hash is a SHA-256 digest: an event hash or a public key hash.
type Hash [HashSize]byte

// String returns the hash in hex.
func (h Hash) String() string { return fmt.Sprintf("%x", h[:]) }

// HashList is a packed list of hashes (len a multiple of [HashSize]). A
// decoded HashList aliases the decoded input. The zero value is empty.
type HashList []byte

// MakeHashList packs hashes into a new HashList.
func MakeHashList(hs ...Hash) HashList {
	l := make(HashList, 0, len(hs)*HashSize)
	for _, h := range hs {
		l = append(l, h[:]...)
	}
	return l
}

// Len returns the number of hashes (rounded down if l is malformed).
func (l HashList) Len() int { return len(l) / HashSize }

// At returns the i-th hash; it panics if i is out of range.
func (l HashList) At(i int) Hash { return Hash(l[i*HashSize : (i+1)*HashSize]) }

// Contains reports whether h is in l.
func (l HashList) Contains(h Hash) bool {
	for i := 0; i+HashSize <= len(l); i += HashSize {
		if Hash(l[i:i+HashSize]) == h {
			return true
		}
	}
	return false
}

// strictlyAscending reports whether the hashes in l are sorted and unique.
func (l HashList) strictlyAscending() bool {
	for i := HashSize; i+HashSize <= len(l); i += HashSize {
		if bytes.Compare(l[i-HashSize:i], l[i:i+HashSize]) >= 0 {
			return false
		}
	}
	return true
}

// KeyType names the algorithm of a public key. Closed enum; part of the
// wire format.
type KeyType uint8

// Key types and their public key sizes.
const (
	KeyEd25519 KeyType = 1 // 32-byte Ed25519 public key
	KeyMLDSA44 KeyType = 2 // 1312-byte ML-DSA-44 public key
	KeyMLDSA65 KeyType = 3 // 1952-byte ML-DSA-65 public key
	KeyMLDSA87 KeyType = 4 // 2592-byte ML-DSA-87 public key
)

// Size returns the public key length for t, or 0 if t is not defined.
func (t KeyType) Size() int {
	switch t {
	case KeyEd25519:
		return 32
	case KeyMLDSA44:
		return 1312
	case KeyMLDSA65:
		return 1952
	case KeyMLDSA87:
		return 2592
	}
	return 0
}

// String returns the algorithm name.
func (t KeyType) String() string {
	switch t {
	case KeyEd25519:
		return "ed25519"
	case KeyMLDSA44:
		return "ml-dsa-44"
	case KeyMLDSA65:
		return "ml-dsa-65"
	case KeyMLDSA87:
		return "ml-dsa-87"
	}
	return fmt.Sprintf("KeyType(%d)", uint8(t))
}

// PublicKey is a typed public key. Encoded as type byte, uvarint length,
// key bytes; the length must equal Type.Size(). A decoded key aliases the
// input.
type PublicKey struct {
	Type KeyType
	Key  []byte
}

// AppendBinary appends the key's encoding (type, length, bytes).
func (k PublicKey) AppendBinary(dst []byte) ([]byte, error) {
	if err := k.check("public key"); err != nil {
		return dst, err
	}
	dst = append(dst, byte(k.Type))
	return appendBytes(dst, k.Key), nil
}

// Hash returns the key hash used in signatures and write authorisations:
// SHA-256(type byte || key bytes).
func (k PublicKey) Hash() Hash {
	h := sha256.New()
	h.Write([]byte{byte(k.Type)})
	h.Write(k.Key)
	var out Hash
	h.Sum(out[:0])
	return out
}

func (k PublicKey) check(field string) error {
	if k.Type.Size() == 0 {
		return &EncodeError{Msg: "event", Field: field, Reason: "unknown key type " + k.Type.String()}
	}
	if len(k.Key) != k.Type.Size() {
		return &EncodeError{Msg: "event", Field: field, Reason: fmt.Sprintf("%s key of %d bytes, want %d", k.Type, len(k.Key), k.Type.Size())}
	}
	return nil
}

func (d *decoder) publicKey(field string) PublicKey {
	start := d.off
	t := KeyType(d.byte1(field))
	if d.err == nil && t.Size() == 0 {
		d.off = start
		d.failf(field, ErrInvalid, "unknown key type %d", t)
	}
	lstart := d.off
	k := d.bytes(field, 1<<16)
	if d.err == nil && len(k) != t.Size() {
		d.off = lstart
		d.failf(field, ErrInvalid, "%s key of %d bytes, want %d", t, len(k), t.Size())
	}
	return PublicKey{Type: t, Key: k}
}

// AuthMode is an object's write authorisation mode.
type AuthMode uint8

// Write authorisation modes. AuthInherit is encoded by omitting the field.
const (
	AuthInherit  AuthMode = 0 // decided by the parent, or the root keys
	AuthEveryone AuthMode = 1
	AuthNobody   AuthMode = 2
	AuthAnyOf    AuthMode = 3 // any key whose hash is in WriteAuth.Keys
)

// WriteAuth says who may change or delete an object. Keys is used only
// with AuthAnyOf: at least one hash, strictly ascending (see [SortHashes]).
type WriteAuth struct {
	Mode AuthMode
	Keys HashList
}

// Signature is one signature over a list of event hashes, made with the
// key whose hash is KeyHash. Hashes and Signature alias the decoded input.
type Signature struct {
	KeyHash   Hash
	Hashes    HashList // at least one
	Signature []byte   // 1..MaxSignatureLen bytes
}

// Event is the decoded metadata and data of one event. Zero values mean
// "absent": DataKey 0 and Parent 0 are reserved and never name an object,
// Timestamp 0 means no client time, nil/empty slices mean no such field.
//
// [Event.Decode] fills an Event whose byte-slice fields alias the input;
// the input must stay unchanged while the Event is used. Slices of structs
// (PublicKeys, Signatures) reuse the Event's capacity, so decoding many
// events into one Event does not allocate in steady state.
type Event struct {
	DataKey         uint64
	Tombstone       bool  // the event deletes object DataKey
	Timestamp       int64 // client clock, unix nanoseconds
	Parent          uint64
	WriteAuth       WriteAuth
	PublicKeys      []PublicKey
	Signatures      []Signature
	SignWith        HashList // key hashes the writer expects to sign with, strictly ascending
	TypeName        []byte   // opaque
	Confidentiality []byte   // opaque
	IV              []byte   // opaque
	Author          []byte   // opaque
	Data            []byte   // opaque
}

// Reset clears e, keeping the capacity of its slices.
func (e *Event) Reset() {
	pk, sg := e.PublicKeys[:0], e.Signatures[:0]
	*e = Event{PublicKeys: pk, Signatures: sg}
}

// Decode parses the canonical encoding of an event into e, replacing its
// contents. Fields alias encoded. On error e is left partly filled and the
// error is a [*DecodeError] (Msg "event") wrapping ErrTruncated,
// ErrNonCanonical, ErrInvalid or ErrUnsupportedVersion.
func (e *Event) Decode(encoded []byte) error {
	e.Reset()
	d := decoder{b: encoded, msg: "event"}
	meta := d.bytes("metadata length", math.MaxInt)
	if d.err != nil {
		return d.err
	}
	e.Data = encoded[d.off:len(encoded):len(encoded)]
	if len(e.Data) == 0 {
		e.Data = nil
	}
	metaStart := d.off - len(meta)
	d = decoder{b: encoded[:d.off], off: metaStart, msg: "event"}
	if v := d.byte1("version"); d.err == nil && v != EventVersion {
		d.off--
		d.failf("version", ErrUnsupportedVersion, "event encoding version %d", v)
	}
	last := 0
	for d.err == nil && d.off < len(d.b) {
		tagOff := d.off
		tag := int(d.byte1("tag"))
		if tag <= last {
			d.off = tagOff
			if tag == last {
				d.failf("tag", ErrNonCanonical, "field 0x%02x repeated", tag)
			} else {
				d.failf("tag", ErrNonCanonical, "field 0x%02x after 0x%02x", tag, last)
			}
			break
		}
		last = tag
		e.decodeField(&d, tag, tagOff)
	}
	if d.err == nil && e.Tombstone && e.DataKey == 0 {
		d.off = metaStart
		d.fail("tombstone", ErrInvalid, "tombstone without a data key")
	}
	return d.err
}

func (e *Event) decodeField(d *decoder, tag, tagOff int) {
	nonZero := func(field string, v uint64, at int) {
		if d.err == nil && v == 0 {
			d.off = at
			d.fail(field, ErrNonCanonical, "explicit zero (absent is encoded by omission)")
		}
	}
	opaque := func(field string) []byte {
		at := d.off
		b := d.bytes(field, MaxOpaqueLen)
		if d.err == nil && len(b) == 0 {
			d.off = at
			d.fail(field, ErrNonCanonical, "empty value (absent is encoded by omission)")
		}
		return b
	}
	at := d.off
	switch tag {
	case tagDataKey:
		e.DataKey = d.u64("data key")
		nonZero("data key", e.DataKey, at)
	case tagTombstone:
		e.Tombstone = true
	case tagTimestamp:
		e.Timestamp = int64(d.u64("timestamp"))
		nonZero("timestamp", uint64(e.Timestamp), at)
	case tagParent:
		e.Parent = d.u64("parent")
		nonZero("parent", e.Parent, at)
	case tagWriteAuth:
		m := AuthMode(d.byte1("write auth"))
		switch m {
		case AuthEveryone, AuthNobody:
		case AuthAnyOf:
			e.WriteAuth.Keys = d.hashSet("write auth keys")
		default:
			if d.err == nil {
				d.off = at
				d.failf("write auth", ErrInvalid, "unknown mode %d", m)
			}
		}
		e.WriteAuth.Mode = m
	case tagPublicKeys:
		n := d.count("public keys", 2+KeyEd25519.Size())
		if d.err == nil && n == 0 {
			d.off = at
			d.fail("public keys", ErrNonCanonical, "empty list (absent is encoded by omission)")
		}
		e.PublicKeys = grow(e.PublicKeys, n)
		for i := 0; i < n && d.err == nil; i++ {
			e.PublicKeys = append(e.PublicKeys, d.publicKey("public keys"))
		}
	case tagSignatures:
		n := d.count("signatures", 2*HashSize+3)
		if d.err == nil && n == 0 {
			d.off = at
			d.fail("signatures", ErrNonCanonical, "empty list (absent is encoded by omission)")
		}
		e.Signatures = grow(e.Signatures, n)
		for i := 0; i < n && d.err == nil; i++ {
			var s Signature
			copy(s.KeyHash[:], d.fixed("signatures.key hash", HashSize))
			s.Hashes = d.hashList("signatures.hashes")
			sat := d.off
			s.Signature = d.bytes("signatures.signature", MaxSignatureLen)
			if d.err == nil && len(s.Signature) == 0 {
				d.off = sat
				d.fail("signatures.signature", ErrInvalid, "empty signature")
			}
			e.Signatures = append(e.Signatures, s)
		}
	case tagSignWith:
		e.SignWith = d.hashSet("sign with")
	case tagTypeName:
		e.TypeName = opaque("type name")
	case tagConfidentiality:
		e.Confidentiality = opaque("confidentiality")
	case tagIV:
		e.IV = opaque("iv")
	case tagAuthor:
		e.Author = opaque("author")
	default:
		d.off = tagOff
		d.failf("tag", ErrInvalid, "unknown field tag 0x%02x", tag)
	}
}

// hashList reads a uvarint count (>= 1) and that many hashes.
func (d *decoder) hashList(field string) HashList {
	at := d.off
	n := d.count(field, HashSize)
	if d.err == nil && n == 0 {
		d.off = at
		d.fail(field, ErrInvalid, "empty hash list")
		return nil
	}
	return HashList(d.fixed(field, n*HashSize))
}

// hashSet reads a hash list that must be strictly ascending.
func (d *decoder) hashSet(field string) HashList {
	at := d.off
	l := d.hashList(field)
	if d.err == nil && !l.strictlyAscending() {
		d.off = at
		d.fail(field, ErrNonCanonical, "hashes not strictly ascending")
	}
	return l
}

func checkHashSet(field string, l HashList) error {
	if len(l)%HashSize != 0 {
		return &EncodeError{Msg: "event", Field: field, Reason: "length not a multiple of 32"}
	}
	if len(l) == 0 {
		return &EncodeError{Msg: "event", Field: field, Reason: "empty"}
	}
	if !l.strictlyAscending() {
		return &EncodeError{Msg: "event", Field: field, Reason: "hashes not strictly ascending (use SortHashes)"}
	}
	return nil
}

// SortHashes sorts l in place and removes duplicates, returning the result,
// so it can be used as WriteAuth.Keys or SignWith.
func SortHashes(l HashList) HashList {
	n := l.Len()
	// Insertion sort: these lists are short (a few keys).
	for i := 1; i < n; i++ {
		for j := i; j > 0 && bytes.Compare(l[(j-1)*HashSize:j*HashSize], l[j*HashSize:(j+1)*HashSize]) > 0; j-- {
			var tmp Hash
			copy(tmp[:], l[(j-1)*HashSize:j*HashSize])
			copy(l[(j-1)*HashSize:j*HashSize], l[j*HashSize:(j+1)*HashSize])
			copy(l[j*HashSize:(j+1)*HashSize], tmp[:])
		}
	}
	out := l[:0]
	for i := range n {
		h := l[i*HashSize : (i+1)*HashSize]
		if len(out) >= HashSize && bytes.Equal(out[len(out)-HashSize:], h) {
			continue
		}
		out = append(out, h...)
	}
	return out
}

// validate checks that e has exactly one canonical encoding.
func (e *Event) validate() error {
	fail := func(field, reason string) error { return &EncodeError{Msg: "event", Field: field, Reason: reason} }
	if e.Tombstone && e.DataKey == 0 {
		return fail("tombstone", "tombstone without a data key")
	}
	switch e.WriteAuth.Mode {
	case AuthInherit, AuthEveryone, AuthNobody:
		if len(e.WriteAuth.Keys) != 0 {
			return fail("write auth keys", "keys are only allowed with AuthAnyOf")
		}
	case AuthAnyOf:
		if err := checkHashSet("write auth keys", e.WriteAuth.Keys); err != nil {
			return err
		}
	default:
		return fail("write auth", fmt.Sprintf("unknown mode %d", e.WriteAuth.Mode))
	}
	for _, k := range e.PublicKeys {
		if err := k.check("public keys"); err != nil {
			return err
		}
	}
	for i, s := range e.Signatures {
		if len(s.Hashes) == 0 || len(s.Hashes)%HashSize != 0 {
			return fail(fmt.Sprintf("signatures[%d].hashes", i), "need one or more 32-byte hashes")
		}
		if len(s.Signature) == 0 || len(s.Signature) > MaxSignatureLen {
			return fail(fmt.Sprintf("signatures[%d].signature", i), fmt.Sprintf("%d bytes, want 1..%d", len(s.Signature), MaxSignatureLen))
		}
	}
	if len(e.SignWith) != 0 {
		if err := checkHashSet("sign with", e.SignWith); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"type name", e.TypeName}, {"confidentiality", e.Confidentiality}, {"iv", e.IV}, {"author", e.Author}} {
		if len(f.b) > MaxOpaqueLen {
			return fail(f.name, fmt.Sprintf("%d bytes, limit %d", len(f.b), MaxOpaqueLen))
		}
	}
	return nil
}

// appendMeta appends the metadata encoding (without its length prefix).
func (e *Event) appendMeta(dst []byte) []byte {
	dst = append(dst, EventVersion)
	if e.DataKey != 0 {
		dst = appendU64(append(dst, tagDataKey), e.DataKey)
	}
	if e.Tombstone {
		dst = append(dst, tagTombstone)
	}
	if e.Timestamp != 0 {
		dst = appendU64(append(dst, tagTimestamp), uint64(e.Timestamp))
	}
	if e.Parent != 0 {
		dst = appendU64(append(dst, tagParent), e.Parent)
	}
	if e.WriteAuth.Mode != AuthInherit {
		dst = append(dst, tagWriteAuth, byte(e.WriteAuth.Mode))
		if e.WriteAuth.Mode == AuthAnyOf {
			dst = appendUvarint(dst, uint64(e.WriteAuth.Keys.Len()))
			dst = append(dst, e.WriteAuth.Keys...)
		}
	}
	if len(e.PublicKeys) > 0 {
		dst = appendUvarint(append(dst, tagPublicKeys), uint64(len(e.PublicKeys)))
		for _, k := range e.PublicKeys {
			dst = appendBytes(append(dst, byte(k.Type)), k.Key)
		}
	}
	if len(e.Signatures) > 0 {
		dst = appendUvarint(append(dst, tagSignatures), uint64(len(e.Signatures)))
		for _, s := range e.Signatures {
			dst = append(dst, s.KeyHash[:]...)
			dst = appendUvarint(dst, uint64(s.Hashes.Len()))
			dst = append(dst, s.Hashes...)
			dst = appendBytes(dst, s.Signature)
		}
	}
	if len(e.SignWith) > 0 {
		dst = appendUvarint(append(dst, tagSignWith), uint64(e.SignWith.Len()))
		dst = append(dst, e.SignWith...)
	}
	for _, f := range [...]struct {
		tag byte
		b   []byte
	}{{tagTypeName, e.TypeName}, {tagConfidentiality, e.Confidentiality}, {tagIV, e.IV}, {tagAuthor, e.Author}} {
		if len(f.b) > 0 {
			dst = appendBytes(append(dst, f.tag), f.b)
		}
	}
	return dst
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// metaSize returns len(e.appendMeta(nil)) without encoding.
func (e *Event) metaSize() int {
	n := 1
	if e.DataKey != 0 {
		n += 9
	}
	if e.Tombstone {
		n++
	}
	if e.Timestamp != 0 {
		n += 9
	}
	if e.Parent != 0 {
		n += 9
	}
	if e.WriteAuth.Mode != AuthInherit {
		n += 2
		if e.WriteAuth.Mode == AuthAnyOf {
			n += uvarintLen(uint64(e.WriteAuth.Keys.Len())) + len(e.WriteAuth.Keys)
		}
	}
	if len(e.PublicKeys) > 0 {
		n += 1 + uvarintLen(uint64(len(e.PublicKeys)))
		for _, k := range e.PublicKeys {
			n += 1 + uvarintLen(uint64(len(k.Key))) + len(k.Key)
		}
	}
	if len(e.Signatures) > 0 {
		n += 1 + uvarintLen(uint64(len(e.Signatures)))
		for _, s := range e.Signatures {
			n += HashSize + uvarintLen(uint64(s.Hashes.Len())) + len(s.Hashes) + uvarintLen(uint64(len(s.Signature))) + len(s.Signature)
		}
	}
	if len(e.SignWith) > 0 {
		n += 1 + uvarintLen(uint64(e.SignWith.Len())) + len(e.SignWith)
	}
	for _, b := range [...][]byte{e.TypeName, e.Confidentiality, e.IV, e.Author} {
		if len(b) > 0 {
			n += 1 + uvarintLen(uint64(len(b))) + len(b)
		}
	}
	return n
}

// AppendBinary appends the canonical encoding of e to dst. It returns an
// [*EncodeError] (and dst unchanged) if e has no valid encoding: an unknown
// enum value, a key of the wrong size, an unsorted key set, a tombstone
// without a data key, an oversized field. Not safe to call while another
// goroutine modifies e.
func (e *Event) AppendBinary(dst []byte) ([]byte, error) {
	if err := e.validate(); err != nil {
		return dst, err
	}
	m := e.metaSize()
	dst = appendUvarint(dst, uint64(m))
	dst = e.appendMeta(dst)
	return append(dst, e.Data...), nil
}

// EncodedSize returns the length of e's encoding (valid only if e is
// encodable).
func (e *Event) EncodedSize() int {
	m := e.metaSize()
	return uvarintLen(uint64(m)) + m + len(e.Data)
}

// SplitEvent returns the metadata (starting with the version byte) and the
// data of an encoded event, aliasing encoded. It checks only the length
// prefix and the version byte; use [Event.Decode] to validate everything.
func SplitEvent(encoded []byte) (meta, data []byte, err error) {
	d := decoder{b: encoded, msg: "event"}
	meta = d.bytes("metadata length", math.MaxInt)
	if d.err == nil && len(meta) == 0 {
		d.fail("version", ErrTruncated, "")
	}
	if d.err == nil && meta[0] != EventVersion {
		d.off -= len(meta)
		d.failf("version", ErrUnsupportedVersion, "event encoding version %d", meta[0])
	}
	if d.err != nil {
		return nil, nil, d.err
	}
	return meta, encoded[d.off:], nil
}

// ComputeEventHash returns SHA-256(SHA-256(meta) || SHA-256(data)); it is
// how an event hash is checked when only the data's hash is known.
func ComputeEventHash(metaHash, dataHash Hash) Hash {
	var buf [2 * HashSize]byte
	copy(buf[:HashSize], metaHash[:])
	copy(buf[HashSize:], dataHash[:])
	return sha256.Sum256(buf[:])
}

// EventHash returns the hash of an encoded event:
// SHA-256(SHA-256(meta) || SHA-256(data)). It checks only the envelope (see
// [SplitEvent]); it does not allocate.
func EventHash(encoded []byte) (Hash, error) {
	meta, data, err := SplitEvent(encoded)
	if err != nil {
		return Hash{}, err
	}
	return ComputeEventHash(sha256.Sum256(meta), sha256.Sum256(data)), nil
}

// leadingFields reads the fixed-size fields at the start of the metadata
// (data key, tombstone, timestamp, parent) without decoding the rest.
func leadingFields(encoded []byte) (key uint64, tomb bool, ts int64, parent uint64, err error) {
	meta, _, err := SplitEvent(encoded)
	if err != nil {
		return 0, false, 0, 0, err
	}
	p := 1
	last := 0
	for p < len(meta) {
		tag := int(meta[p])
		if tag > tagParent {
			break
		}
		if tag <= last {
			return 0, false, 0, 0, &DecodeError{Msg: "event", Field: "tag", Offset: p, Err: ErrNonCanonical}
		}
		last = tag
		p++
		if tag == tagTombstone {
			tomb = true
			continue
		}
		if len(meta)-p < 8 {
			return 0, false, 0, 0, &DecodeError{Msg: "event", Field: "tag", Offset: p, Err: ErrTruncated}
		}
		v := binary.LittleEndian.Uint64(meta[p:])
		p += 8
		switch tag {
		case tagDataKey:
			key = v
		case tagTimestamp:
			ts = int64(v)
		case tagParent:
			parent = v
		}
	}
	return key, tomb, ts, parent, nil
}

// EventDataKey returns the data key of an encoded event (0 if it has none)
// and whether the event is a tombstone, reading only the first fields. It
// does not validate the rest of the event; the server uses it on events
// it validated when they were appended.
func EventDataKey(encoded []byte) (key uint64, tombstone bool, err error) {
	key, tombstone, _, _, err = leadingFields(encoded)
	return key, tombstone, err
}

// EventTimestamp returns the client timestamp (unix ns, 0 if none) of an
// encoded event, reading only the first fields (see [EventDataKey]).
func EventTimestamp(encoded []byte) (int64, error) {
	_, _, ts, _, err := leadingFields(encoded)
	return ts, err
}

// EventParent returns the parent key (0 if none) of an encoded event,
// reading only the first fields (see [EventDataKey]).
func EventParent(encoded []byte) (uint64, error) {
	_, _, _, p, err := leadingFields(encoded)
	return p, err
}

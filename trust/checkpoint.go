package trust

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/atedb/atedb/proto"
)

// State encoding: part of the checkpoint format; never change (a new
// layout gets a new version). All integers little-endian.
//
//	header   magic "ATST" (4) | version u8 = 1 | length u64 (whole encoding, trailer included) | position u64
//	root     mode u8 (1 everyone, 3 any-of) [| uvarint n ≥ 1 | n × 32-byte key hash, strictly ascending]
//	keys     uvarint n | n × (type u8 | raw public key, the type's size, usable), strictly ascending by key hash
//	objects  uvarint n | n × (key u64 ≠ 0 | parent u64 ≠ key | mode u8 (0 inherit, 1 everyone,
//	         2 nobody, 3 any-of) [| uvarint m ≥ 1 | m × 32-byte key hash, strictly ascending]),
//	         strictly ascending by key
//	trailer  CRC-32C (Castagnoli) u32 of every byte before it
//
// The encoding is canonical: one State and position have exactly one
// encoding, and [DecodeState] refuses every other byte string.
const (
	stateMagic   = "ATST"
	stateVersion = 1
	// stateHeaderSize is magic, version, length and position.
	stateHeaderSize = len(stateMagic) + 1 + 8 + 8
	// stateTrailerSize is the CRC-32C.
	stateTrailerSize = 4
	// minObjectSize is the smallest encoded object: key, parent, mode.
	minObjectSize = 8 + 8 + 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrBadState is matched by errors for a state encoding that is
	// truncated, corrupt (checksum) or not canonical: rebuild the state from
	// the log.
	ErrBadState = errors.New("trust: bad state checkpoint")
	// ErrStateVersion is matched by errors for a state encoding of another
	// version: rebuild the state from the log.
	ErrStateVersion = errors.New("trust: unsupported state checkpoint version")
)

// AppendBinary appends the checkpoint encoding of s to dst, with position
// (the caller's log position the state corresponds to, returned by
// [DecodeState]). It panics if a transaction is open.
func (s *State) AppendBinary(dst []byte, position uint64) []byte {
	if s.txOpen {
		panic("trust: State.AppendBinary while a Tx is open")
	}
	start := len(dst)
	dst = append(dst, stateMagic...)
	dst = append(dst, stateVersion)
	dst = binary.LittleEndian.AppendUint64(dst, 0) // length, set below
	dst = binary.LittleEndian.AppendUint64(dst, position)
	dst = appendAuth(dst, s.root)

	hashes := make([]proto.Hash, 0, len(s.keys))
	for h := range s.keys {
		hashes = append(hashes, h)
	}
	slices.SortFunc(hashes, func(a, b proto.Hash) int { return bytes.Compare(a[:], b[:]) })
	dst = binary.AppendUvarint(dst, uint64(len(hashes)))
	for _, h := range hashes {
		k := s.keys[h].pk
		dst = append(append(dst, byte(k.Type)), k.Key...)
	}

	keys := make([]uint64, 0, len(s.objects))
	for k := range s.objects {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		o := s.objects[k]
		dst = binary.LittleEndian.AppendUint64(dst, k)
		dst = binary.LittleEndian.AppendUint64(dst, o.parent)
		dst = appendAuth(dst, o.auth)
	}
	binary.LittleEndian.PutUint64(dst[start+len(stateMagic)+1:], uint64(len(dst)-start+stateTrailerSize))
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], crcTable))
}

func appendAuth(dst []byte, a proto.WriteAuth) []byte {
	dst = append(dst, byte(a.Mode))
	if a.Mode == proto.AuthAnyOf {
		dst = binary.AppendUvarint(dst, uint64(a.Keys.Len()))
		dst = append(dst, a.Keys...)
	}
	return dst
}

// stateDecoder reads a state body; the first error sticks.
type stateDecoder struct {
	b   []byte
	off int
	err error
}

func (d *stateDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: offset %d: %s", ErrBadState, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *stateDecoder) need(n int, what string) bool {
	if d.err != nil {
		return false
	}
	if n < 0 || len(d.b)-d.off < n {
		d.fail("%s: truncated", what)
		return false
	}
	return true
}

func (d *stateDecoder) u8(what string) byte {
	if !d.need(1, what) {
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *stateDecoder) u64(what string) uint64 {
	if !d.need(8, what) {
		return 0
	}
	d.off += 8
	return binary.LittleEndian.Uint64(d.b[d.off-8:])
}

// count reads a uvarint count of elements of at least minSize bytes each,
// refusing one that the remaining bytes cannot hold (before anything is
// allocated for it) or a non-minimal encoding.
func (d *stateDecoder) count(what string, minSize int) int {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("%s: bad count", what)
		return 0
	}
	if n != uvarintLen(v) {
		d.fail("%s: count not minimally encoded", what)
		return 0
	}
	if left := len(d.b) - d.off - n; v > uint64(left/minSize) {
		d.fail("%s: count %d exceeds what the %d bytes left can hold", what, v, left)
		return 0
	}
	d.off += n
	return int(v)
}

func (d *stateDecoder) hashSet(what string) proto.HashList {
	n := d.count(what, proto.HashSize)
	if d.err == nil && n == 0 {
		d.fail("%s: empty key set", what)
	}
	if !d.need(n*proto.HashSize, what) {
		return nil
	}
	l := append(proto.HashList(nil), d.b[d.off:d.off+n*proto.HashSize]...)
	for i := 1; i < n; i++ {
		if bytes.Compare(l[(i-1)*proto.HashSize:i*proto.HashSize], l[i*proto.HashSize:(i+1)*proto.HashSize]) >= 0 {
			d.fail("%s: key hashes not strictly ascending", what)
			return nil
		}
	}
	d.off += n * proto.HashSize
	return l
}

func (d *stateDecoder) auth(what string, allowed ...proto.AuthMode) proto.WriteAuth {
	at := d.off
	m := proto.AuthMode(d.u8(what))
	if d.err != nil {
		return proto.WriteAuth{}
	}
	if !slices.Contains(allowed, m) {
		d.off = at
		d.fail("%s: mode %d not allowed", what, m)
		return proto.WriteAuth{}
	}
	a := proto.WriteAuth{Mode: m}
	if m == proto.AuthAnyOf {
		a.Keys = d.hashSet(what)
	}
	return a
}

// DecodeState decodes a checkpoint made by [State.AppendBinary] and
// returns the state and its position. Errors match [ErrBadState] or
// [ErrStateVersion]: the caller then rebuilds the state from the log. The
// decoder checks the length and checksum before anything else, and every
// count against the bytes left before allocating for it; the result shares
// nothing with b.
func DecodeState(b []byte) (*State, uint64, error) {
	if len(b) < stateHeaderSize+stateTrailerSize {
		return nil, 0, fmt.Errorf("%w: %d bytes, shorter than a header and trailer", ErrBadState, len(b))
	}
	if string(b[:len(stateMagic)]) != stateMagic {
		return nil, 0, fmt.Errorf("%w: offset 0: bad magic", ErrBadState)
	}
	if v := b[len(stateMagic)]; v != stateVersion {
		return nil, 0, fmt.Errorf("%w: version %d, want %d", ErrStateVersion, v, stateVersion)
	}
	if n := binary.LittleEndian.Uint64(b[len(stateMagic)+1:]); n != uint64(len(b)) {
		return nil, 0, fmt.Errorf("%w: length field %d, have %d bytes", ErrBadState, n, len(b))
	}
	body := b[:len(b)-stateTrailerSize]
	if got, want := crc32.Checksum(body, crcTable), binary.LittleEndian.Uint32(b[len(body):]); got != want {
		return nil, 0, fmt.Errorf("%w: checksum %08x, stored %08x", ErrBadState, got, want)
	}
	position := binary.LittleEndian.Uint64(b[len(stateMagic)+9:])
	d := &stateDecoder{b: body, off: stateHeaderSize}
	s := &State{maxDepth: MaxDepth}
	s.root = d.auth("root", proto.AuthEveryone, proto.AuthAnyOf)

	nk := d.count("keys", 1+proto.KeyEd25519.Size())
	s.keys = make(map[proto.Hash]*regKey, nk)
	var last proto.Hash
	for i := 0; i < nk && d.err == nil; i++ {
		at := d.off
		t := proto.KeyType(d.u8("key type"))
		if d.err == nil && !Known(t) {
			d.off = at
			d.fail("key %d: unknown key type %d", i, t)
		}
		if !d.need(t.Size(), "key") {
			break
		}
		pk := proto.PublicKey{Type: t, Key: append([]byte(nil), d.b[d.off:d.off+t.Size()]...)}
		if !usableKey(pk) {
			d.fail("key %d: not a usable %v key", i, t)
			break
		}
		h := pk.Hash()
		if i > 0 && bytes.Compare(last[:], h[:]) >= 0 {
			d.off = at
			d.fail("key %d: keys not strictly ascending by hash", i)
			break
		}
		d.off += t.Size()
		last = h
		s.keys[h] = &regKey{pk: pk}
	}

	no := d.count("objects", minObjectSize)
	s.objects = make(map[uint64]object, no)
	var prev uint64
	for i := 0; i < no && d.err == nil; i++ {
		at := d.off
		k := d.u64("object key")
		p := d.u64("object parent")
		if d.err == nil && (k == 0 || k <= prev || p == k) {
			d.off = at
			d.fail("object %d: key %d after %d, parent %d", i, k, prev, p)
			break
		}
		a := d.auth("object auth", proto.AuthInherit, proto.AuthEveryone, proto.AuthNobody, proto.AuthAnyOf)
		prev = k
		s.objects[k] = object{auth: a, parent: p}
	}
	if d.err == nil && d.off != len(body) {
		d.fail("%d bytes after the objects", len(body)-d.off)
	}
	if d.err != nil {
		return nil, 0, d.err
	}
	return s, position, nil
}

package proto

import (
	"encoding/binary"
	"fmt"
	"math"
)

// eventItemFixed is the fixed part of an Events item: offset u64 LE and
// server time i64 LE. Part of the wire format.
const eventItemFixed = 16

// Events carries stored events of a channel's chain (S→C), in strictly
// ascending offset order: history replay and live events alike.
//
//	body = 0x22 | uvarint channel | item+            (at least one item)
//	item = offset u64 LE | server time i64 LE (unix ns) | uvarint len | encoded event
//
// Build bodies with [AppendEventsHeader] and [AppendEventsItem] (no
// intermediate copies), read them with [Events.Decode] and [Events.Iter].
type Events struct {
	Channel uint32
	// Items holds the packed items (everything after the channel). Decode
	// sets it to alias the body, after checking every item.
	Items []byte
	n     int
}

// Type returns [TypeEvents].
func (*Events) Type() MsgType { return TypeEvents }

// AppendEventsHeader appends the start of an Events body (type and channel)
// to dst; follow it with one or more [AppendEventsItem] calls.
func AppendEventsHeader(dst []byte, channel uint32) []byte {
	return appendUvarint(append(dst, byte(TypeEvents)), uint64(channel))
}

// AppendEventsItem appends one item to an Events body under construction.
// encoded is the event's canonical encoding, copied as is. Offsets must be
// strictly ascending within one message (decoders reject anything else).
func AppendEventsItem(dst []byte, offset uint64, serverTime int64, encoded []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, offset)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(serverTime))
	return appendBytes(dst, encoded)
}

// EventsItemSize returns how many bytes AppendEventsItem adds for an event
// of encodedLen bytes (to fill a frame up to a size budget).
func EventsItemSize(encodedLen int) int {
	return eventItemFixed + uvarintLen(uint64(encodedLen)) + encodedLen
}

// EventItem is one stored event as carried by [Events]. Event aliases the
// message body.
type EventItem struct {
	Offset uint64
	Time   int64 // server time, unix nanoseconds
	Event  []byte
}

// AppendBinary appends the message; m.Items must hold valid items (as
// built by AppendEventsItem or kept from Decode).
func (m *Events) AppendBinary(dst []byte) ([]byte, error) {
	if _, err := checkItems(m.Items, 0); err != nil {
		return dst, &EncodeError{Msg: "Events", Field: "items", Reason: err.Error()}
	}
	return append(AppendEventsHeader(dst, m.Channel), m.Items...), nil
}

// checkItems validates packed items starting at body offset base.
func checkItems(items []byte, base int) (int, error) {
	d := decoder{b: items, msg: "Events"}
	n := 0
	var last uint64
	for d.err == nil && d.off < len(d.b) {
		at := d.off
		off := d.u64("offset")
		if d.err == nil && n > 0 && off <= last {
			d.off = at
			d.failf("offset", ErrInvalid, "offset %d after %d: not ascending", off, last)
		}
		last = off
		d.u64("time")
		d.bytes("event", math.MaxInt)
		n++
	}
	if d.err == nil && n == 0 {
		d.fail("items", ErrInvalid, "no items")
	}
	if d.err != nil {
		d.err.(*DecodeError).Offset += base
		return 0, d.err
	}
	return n, nil
}

// Decode parses an Events body, checking every item's framing and the
// offset order (not the events themselves). Items aliases body.
func (m *Events) Decode(body []byte) error {
	*m = Events{}
	d := begin(body, TypeEvents)
	m.Channel = d.channel()
	if d.err != nil {
		return d.err
	}
	n, err := checkItems(body[d.off:], d.off)
	if err != nil {
		return err
	}
	m.Items, m.n = body[d.off:], n
	return nil
}

// Len returns the number of items found by Decode (0 for a built message).
func (m *Events) Len() int { return m.n }

// Iter returns an iterator over the items. It does not allocate.
func (m *Events) Iter() EventsIter { return EventsIter{b: m.Items} }

// EventsIter walks the items of an [Events] message.
type EventsIter struct{ b []byte }

// Next returns the next item and true, or false at the end. Items must have
// been validated (by Events.Decode); on malformed input Next stops early.
func (it *EventsIter) Next() (EventItem, bool) {
	if len(it.b) < eventItemFixed+1 {
		return EventItem{}, false
	}
	var e EventItem
	e.Offset = binary.LittleEndian.Uint64(it.b)
	e.Time = int64(binary.LittleEndian.Uint64(it.b[8:]))
	l, n := binary.Uvarint(it.b[eventItemFixed:])
	start := eventItemFixed + n
	if n <= 0 || l > uint64(len(it.b)-start) {
		it.b = nil
		return EventItem{}, false
	}
	end := start + int(l)
	e.Event = it.b[start:end:end]
	it.b = it.b[end:]
	return e, true
}

// MaxBatchEvents is the largest number of events in one Append (and of
// offsets in one Confirmed). It bounds what decoding a batch allocates
// (a slice header per event) whatever the frame size; servers may set a
// lower limit and answer CodeBatchTooLarge.
const MaxBatchEvents = 1 << 16

// Append flag bits: part of the wire format.
const (
	appendCondition = 1 << 0
	appendRestart   = 1 << 1
	appendKnown     = appendCondition | appendRestart
)

// Append asks the server to store a batch of events atomically on the
// channel's chain. Reply: [Confirmed] or [CommitError] with the same
// CommitID; replies on one channel come in the order the Appends were sent.
//
//	body = 0x30 | uvarint channel | uvarint commit id | flags byte
//	       | [uvarint expected next offset, if flags bit 0] | uvarint n | n*(uvarint len | encoded event)
//
// With HasCondition, the batch is stored only if the chain's next offset is
// ExpectedNext (else CodeConflict). An empty batch is a barrier: it is
// confirmed once everything sent before it on the channel is.
//
// Once an Append on a channel fails, the server refuses every later Append
// on that channel with [CodeAborted] until one arrives with Restart; that
// one, and the ones after it, are handled normally. A sender sets Restart
// only when no earlier Append of the channel can still fail unseen: it has
// received the reply to every earlier Append on the channel, or it has
// received a failure for an Append sent after its previous Restart (every
// Append it sent between that failure and this one is then aborted).
type Append struct {
	Channel      uint32
	CommitID     uint64
	HasCondition bool
	ExpectedNext uint64
	// Restart (flags bit 1) ends the abort that an earlier failure on the
	// channel started; harmless when nothing failed.
	Restart bool
	// Events are the encoded events, as the client encoded them; Decode
	// makes them alias the body and reuses the slice's capacity.
	Events [][]byte
}

// Type returns [TypeAppend].
func (*Append) Type() MsgType { return TypeAppend }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Append) AppendBinary(dst []byte) ([]byte, error) {
	if len(m.Events) > MaxBatchEvents {
		return dst, encErr(TypeAppend, "events", fmt.Sprintf("%d events, limit %d", len(m.Events), MaxBatchEvents))
	}
	if !m.HasCondition && m.ExpectedNext != 0 {
		return dst, encErr(TypeAppend, "expected next", "set without HasCondition")
	}
	dst = appendUvarint(append(dst, byte(TypeAppend)), uint64(m.Channel))
	dst = appendUvarint(dst, m.CommitID)
	var f byte
	if m.Restart {
		f |= appendRestart
	}
	if m.HasCondition {
		dst = appendUvarint(append(dst, f|appendCondition), m.ExpectedNext)
	} else {
		dst = append(dst, f)
	}
	dst = appendUvarint(dst, uint64(len(m.Events)))
	for _, e := range m.Events {
		dst = appendBytes(dst, e)
	}
	return dst, nil
}

// EncodedSize returns the length of m's encoding.
func (m *Append) EncodedSize() int {
	n := 1 + uvarintLen(uint64(m.Channel)) + uvarintLen(m.CommitID) + 1 + uvarintLen(uint64(len(m.Events)))
	if m.HasCondition {
		n += uvarintLen(m.ExpectedNext)
	}
	for _, e := range m.Events {
		n += uvarintLen(uint64(len(e))) + len(e)
	}
	return n
}

// Decode parses an Append. The events are not decoded: each is the raw
// canonical encoding, for the server to validate, hash and store as is.
func (m *Append) Decode(body []byte) error {
	evs := m.Events[:0]
	*m = Append{}
	d := begin(body, TypeAppend)
	m.Channel = d.channel()
	m.CommitID = d.uvarint("commit id")
	at := d.off
	f := d.byte1("flags")
	if d.err == nil && f&^appendKnown != 0 {
		d.off = at
		d.failf("flags", ErrInvalid, "unknown flag bits 0x%02x", f&^appendKnown)
	}
	m.Restart = f&appendRestart != 0
	if f&appendCondition != 0 {
		m.HasCondition = true
		m.ExpectedNext = d.uvarint("expected next")
	}
	n := d.countMax("events", 1, MaxBatchEvents)
	evs = grow(evs, n)
	for i := 0; i < n && d.err == nil; i++ {
		evs = append(evs, d.bytes("events", math.MaxInt))
		if d.err != nil {
			d.err.(*DecodeError).Field = fmt.Sprintf("events[%d]", i)
		}
	}
	m.Events = evs
	return d.done()
}

// Confirmed acknowledges an Append: every event is validated and durable.
// Offsets[i] is the offset of the batch's event i. A batch's offsets are
// consecutive (PROTOCOL.md §6.14): a new batch is stored at new ones, an
// exact retry gets its events' original ones.
//
//	body = 0x31 | uvarint channel | uvarint commit id | uvarint n
//	       | [uvarint offsets[0] | (n-1) * zigzag varint (offsets[i] - offsets[i-1] - 1)]
//
// A consecutive run therefore costs one byte per event. The differences
// are computed modulo 2^64, so every list of offsets has one encoding.
type Confirmed struct {
	Channel  uint32
	CommitID uint64
	Offsets  []uint64 // capacity reused by Decode
}

// Type returns [TypeConfirmed].
func (*Confirmed) Type() MsgType { return TypeConfirmed }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Confirmed) AppendBinary(dst []byte) ([]byte, error) {
	if len(m.Offsets) > MaxBatchEvents {
		return dst, encErr(TypeConfirmed, "offsets", fmt.Sprintf("%d offsets, limit %d", len(m.Offsets), MaxBatchEvents))
	}
	dst = appendUvarint(append(dst, byte(TypeConfirmed)), uint64(m.Channel))
	dst = appendUvarint(dst, m.CommitID)
	dst = appendUvarint(dst, uint64(len(m.Offsets)))
	for i, o := range m.Offsets {
		if i == 0 {
			dst = appendUvarint(dst, o)
			continue
		}
		delta := int64(o - m.Offsets[i-1] - 1)
		dst = appendUvarint(dst, uint64(delta<<1)^uint64(delta>>63))
	}
	return dst, nil
}

// Decode parses a frame body of type [TypeConfirmed] into m (see [Message]).
func (m *Confirmed) Decode(body []byte) error {
	offs := m.Offsets[:0]
	*m = Confirmed{}
	d := begin(body, TypeConfirmed)
	m.Channel = d.channel()
	m.CommitID = d.uvarint("commit id")
	n := d.countMax("offsets", 1, MaxBatchEvents)
	offs = grow(offs, n)
	var prev uint64
	for i := 0; i < n && d.err == nil; i++ {
		v := d.uvarint("offsets")
		if i > 0 {
			delta := int64(v>>1) ^ -int64(v&1)
			v = prev + 1 + uint64(delta)
		}
		offs = append(offs, v)
		prev = v
	}
	m.Offsets = offs
	return d.done()
}

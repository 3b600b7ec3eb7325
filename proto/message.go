package proto

import (
	"fmt"
	"strconv"
)

// ProtocolVersion is the protocol version this package speaks.
const ProtocolVersion = 1

// HelloMagic follows the type byte of a Hello, so that a server can tell an
// atedb client from stray bytes at once. Part of the wire format.
const HelloMagic = "ATDB"

// MsgType is the first byte of every message body. Closed enum: part of the
// wire format; never change a value.
type MsgType uint8

// Message types. Connection-level messages have no channel; every other
// message starts with its channel number.
const (
	TypeHello        MsgType = 0x01 // C→S, first frame
	TypeHelloAck     MsgType = 0x02 // S→C, reply to Hello
	TypePing         MsgType = 0x03 // either direction
	TypePong         MsgType = 0x04 // reply to Ping
	TypeFatal        MsgType = 0x05 // either direction; the sender closes the connection
	TypeError        MsgType = 0x06 // S→C, failure reply to Open, Close, Subscribe, Unsubscribe
	TypeOpen         MsgType = 0x10 // C→S
	TypeOpened       MsgType = 0x11 // S→C
	TypeClose        MsgType = 0x12 // C→S
	TypeClosed       MsgType = 0x13 // S→C
	TypeSubscribe    MsgType = 0x20 // C→S
	TypeStartHistory MsgType = 0x21 // S→C, StartOfHistory
	TypeEvents       MsgType = 0x22 // S→C
	TypeEndHistory   MsgType = 0x23 // S→C, EndOfHistory
	TypeUnsubscribe  MsgType = 0x24 // C→S
	TypeUnsubscribed MsgType = 0x25 // S→C
	TypeAppend       MsgType = 0x30 // C→S
	TypeConfirmed    MsgType = 0x31 // S→C
	TypeCommitError  MsgType = 0x32 // S→C
	TypeProve        MsgType = 0x40 // C→S
	TypeProveResult  MsgType = 0x41 // S→C
	TypeLock         MsgType = 0x50 // C→S
	TypeUnlock       MsgType = 0x51 // C→S
	TypeLockResult   MsgType = 0x52 // S→C
)

var msgNames = map[MsgType]string{
	TypeHello:        "Hello",
	TypeHelloAck:     "HelloAck",
	TypePing:         "Ping",
	TypePong:         "Pong",
	TypeFatal:        "Fatal",
	TypeError:        "Error",
	TypeOpen:         "Open",
	TypeOpened:       "Opened",
	TypeClose:        "Close",
	TypeClosed:       "Closed",
	TypeSubscribe:    "Subscribe",
	TypeStartHistory: "StartOfHistory",
	TypeEvents:       "Events",
	TypeEndHistory:   "EndOfHistory",
	TypeUnsubscribe:  "Unsubscribe",
	TypeUnsubscribed: "Unsubscribed",
	TypeAppend:       "Append",
	TypeConfirmed:    "Confirmed",
	TypeCommitError:  "CommitError",
	TypeProve:        "Prove",
	TypeProveResult:  "ProveResult",
	TypeLock:         "Lock",
	TypeUnlock:       "Unlock",
	TypeLockResult:   "LockResult",
}

// String returns the message name, or "MsgType(0xNN)" if t is not defined.
func (t MsgType) String() string {
	if n, ok := msgNames[t]; ok {
		return n
	}
	return fmt.Sprintf("MsgType(0x%02x)", uint8(t))
}

// Valid reports whether t is a defined message type.
func (t MsgType) Valid() bool { _, ok := msgNames[t]; return ok }

// Scoped reports whether messages of type t carry a channel number.
func (t MsgType) Scoped() bool { return t == TypeError || (t >= TypeOpen && t.Valid()) }

// AllMsgTypes returns every defined message type in ascending order.
func AllMsgTypes() []MsgType {
	var out []MsgType
	for t := range 256 {
		if MsgType(t).Valid() {
			out = append(out, MsgType(t))
		}
	}
	return out
}

// Message is implemented by a pointer to each message struct.
//
// AppendBinary appends the frame body of m (type byte, then fields) to dst;
// it returns an [*EncodeError] and dst unchanged if the value has no valid
// encoding. Decode parses a frame body of the message's own type into the
// receiver, replacing its contents; byte-slice fields alias body, string
// fields are copies. Decode errors are [*DecodeError] values. Messages are
// plain values, not safe for concurrent mutation.
type Message interface {
	Type() MsgType
	AppendBinary(dst []byte) ([]byte, error)
	Decode(body []byte) error
}

// New returns a new zero message of type t, or nil if t is not defined.
func New(t MsgType) Message {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeHelloAck:
		return new(HelloAck)
	case TypePing:
		return new(Ping)
	case TypePong:
		return new(Pong)
	case TypeFatal:
		return new(Fatal)
	case TypeError:
		return new(Error)
	case TypeOpen:
		return new(Open)
	case TypeOpened:
		return new(Opened)
	case TypeClose:
		return new(Close)
	case TypeClosed:
		return new(Closed)
	case TypeSubscribe:
		return new(Subscribe)
	case TypeStartHistory:
		return new(StartOfHistory)
	case TypeEvents:
		return new(Events)
	case TypeEndHistory:
		return new(EndOfHistory)
	case TypeUnsubscribe:
		return new(Unsubscribe)
	case TypeUnsubscribed:
		return new(Unsubscribed)
	case TypeAppend:
		return new(Append)
	case TypeConfirmed:
		return new(Confirmed)
	case TypeCommitError:
		return new(CommitError)
	case TypeProve:
		return new(Prove)
	case TypeProveResult:
		return new(ProveResult)
	case TypeLock:
		return new(Lock)
	case TypeUnlock:
		return new(Unlock)
	case TypeLockResult:
		return new(LockResult)
	}
	return nil
}

// PeekType returns the type of a frame body without decoding it. Errors:
// ErrTruncated for an empty body, ErrUnknownMessage for an undefined type
// (the type is still returned).
func PeekType(body []byte) (MsgType, error) {
	if len(body) == 0 {
		return 0, &DecodeError{Msg: "message", Field: "type", Err: ErrTruncated}
	}
	t := MsgType(body[0])
	if !t.Valid() {
		return t, &DecodeError{Msg: "message", Field: "type", Err: ErrUnknownMessage, Detail: fmt.Sprintf("type 0x%02x", body[0])}
	}
	return t, nil
}

// PeekChannel returns the type and, for channel-scoped types, the channel
// of a frame body, without decoding the rest (for routing). scoped is false
// for connection-level messages.
func PeekChannel(body []byte) (t MsgType, channel uint32, scoped bool, err error) {
	t, err = PeekType(body)
	if err != nil || !t.Scoped() {
		return t, 0, false, err
	}
	d := decoder{b: body, off: 1, msg: t.String()}
	channel = d.channel()
	return t, channel, true, d.err
}

// DecodeMessage decodes any message, allocating a new struct for it. Hot
// paths should use [PeekType] and decode into a reused struct instead.
func DecodeMessage(body []byte) (Message, error) {
	t, err := PeekType(body)
	if err != nil {
		return nil, err
	}
	m := New(t)
	if err := m.Decode(body); err != nil {
		return nil, err
	}
	return m, nil
}

// begin starts decoding body as a message of type t.
func begin(body []byte, t MsgType) decoder {
	d := decoder{b: body, msg: t.String()}
	if len(body) == 0 {
		d.fail("type", ErrTruncated, "")
	} else if MsgType(body[0]) != t {
		d.failf("type", ErrInvalid, "type %s, want %s", MsgType(body[0]), t)
	}
	d.off = min(1, len(body))
	return d
}

func encErr(t MsgType, field, reason string) error {
	return &EncodeError{Msg: t.String(), Field: field, Reason: reason}
}

// reasonOK checks the rule "a reason accompanies a failure code only".
func checkReason(t MsgType, c ErrorCode, reason string, failureOnly bool) error {
	// Any code encodes, defined by this version or not: codes are
	// open-ended (PROTOCOL.md §4), and what decodes must re-encode.
	if failureOnly && c == CodeOK {
		return encErr(t, "code", "must not be ok")
	}
	if c == CodeOK && reason != "" {
		return encErr(t, "reason", "a reason is only sent with a failure code")
	}
	return checkString(t.String(), "reason", reason)
}

func (d *decoder) codeReason(failureOnly bool) (ErrorCode, string) {
	at := d.off
	c := d.code("code")
	if d.err == nil && failureOnly && c == CodeOK {
		d.off = at
		d.fail("code", ErrInvalid, "ok is not allowed here")
	}
	at = d.off
	r := d.str("reason")
	if d.err == nil && c == CodeOK && r != "" {
		d.off = at
		d.fail("reason", ErrNonCanonical, "reason with code ok")
	}
	return c, r
}

// Features is a bitmask of optional protocol features. Unknown bits are
// ignored by receivers; the server answers with the intersection of what
// the client asked and what it offers.
type Features uint64

// Feature bits: part of the wire format.
const (
	// FeatureServerIdentity: in a Hello, the client requires the server to
	// prove its long-term identity key during the handshake (pinning); in a
	// HelloAck, the server will.
	FeatureServerIdentity Features = 1 << 0
	// FeatureExistingOnly: in a Hello, the client asks that the connection
	// open only chains that already exist: channel 0 and every Open refuse
	// a chain that does not exist with [CodeNoSuchChain] instead of
	// creating it (a read-only client creates nothing); in a HelloAck, the
	// server will.
	FeatureExistingOnly Features = 1 << 1
)

// KeySize is a wire-encryption key size in bits: 0 (none), 128, 192, 256.
type KeySize uint16

// Valid reports whether k is 0, 128, 192 or 256.
func (k KeySize) Valid() bool { return k == 0 || k == 128 || k == 192 || k == 256 }

// NonceSize is the size of the conversation nonce.
const NonceSize = 32

// Hello is the first frame of a connection (client to server, plain).
// Its encoding is deterministic, because the handshake transcript hashes
// the exact bytes.
type Hello struct {
	Version  uint64   // highest protocol version the client speaks
	Features Features // requested features
	KeySize  KeySize  // wanted wire-encryption key size
	Route    string   // service route, "/db"
	ChainKey string   // chain of channel 0; empty: channel 0 is not opened
}

// Type returns [TypeHello].
func (*Hello) Type() MsgType { return TypeHello }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Hello) AppendBinary(dst []byte) ([]byte, error) {
	if !m.KeySize.Valid() {
		return dst, encErr(TypeHello, "key size", fmt.Sprintf("%d is not 0, 128, 192 or 256", m.KeySize))
	}
	if err := checkString("Hello", "route", m.Route); err != nil {
		return dst, err
	}
	if err := checkString("Hello", "chain key", m.ChainKey); err != nil {
		return dst, err
	}
	dst = append(dst, byte(TypeHello))
	dst = append(dst, HelloMagic...)
	dst = appendUvarint(dst, m.Version)
	dst = appendUvarint(dst, uint64(m.Features))
	dst = appendUvarint(dst, uint64(m.KeySize))
	dst = appendString(dst, m.Route)
	return appendString(dst, m.ChainKey), nil
}

// Decode parses a Hello. If the version is not [ProtocolVersion] it stops
// there: m.Version is set, the other fields are zero, and the error wraps
// ErrUnsupportedVersion, so the server can refuse with a HelloAck naming
// its own version.
func (m *Hello) Decode(body []byte) error {
	*m = Hello{}
	d := begin(body, TypeHello)
	if magic := d.fixed("magic", len(HelloMagic)); d.err == nil && string(magic) != HelloMagic {
		d.off -= len(HelloMagic)
		d.fail("magic", ErrInvalid, "not an atedb hello")
	}
	at := d.off
	m.Version = d.uvarint("version")
	if d.err == nil && m.Version != ProtocolVersion {
		d.off = at
		d.failf("version", ErrUnsupportedVersion, "version %d, this side speaks %d", m.Version, ProtocolVersion)
		return d.err
	}
	m.Features = Features(d.uvarint("features"))
	at = d.off
	m.KeySize = KeySize(d.uvarintMax("key size", 256))
	if d.err == nil && !m.KeySize.Valid() {
		d.off = at
		d.failf("key size", ErrInvalid, "%d is not 0, 128, 192 or 256", m.KeySize)
	}
	m.Route = d.str("route")
	m.ChainKey = d.str("chain key")
	return d.done()
}

// HelloAck answers a Hello (server to client, plain). A Code other than
// CodeOK refuses the connection: the server closes it after this frame.
type HelloAck struct {
	Version  uint64 // protocol version the connection uses (or the server's, when refusing)
	Code     ErrorCode
	Features Features        // granted features
	KeySize  KeySize         // negotiated key size: max(client's, server's)
	Nonce    [NonceSize]byte // conversation nonce, random per connection
	Reason   string          // only with a failure code
}

// Type returns [TypeHelloAck].
func (*HelloAck) Type() MsgType { return TypeHelloAck }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *HelloAck) AppendBinary(dst []byte) ([]byte, error) {
	if !m.KeySize.Valid() {
		return dst, encErr(TypeHelloAck, "key size", fmt.Sprintf("%d is not 0, 128, 192 or 256", m.KeySize))
	}
	if err := checkReason(TypeHelloAck, m.Code, m.Reason, false); err != nil {
		return dst, err
	}
	dst = append(dst, byte(TypeHelloAck))
	dst = appendUvarint(dst, m.Version)
	dst = appendUvarint(dst, uint64(m.Code))
	dst = appendUvarint(dst, uint64(m.Features))
	dst = appendUvarint(dst, uint64(m.KeySize))
	dst = append(dst, m.Nonce[:]...)
	return appendString(dst, m.Reason), nil
}

// Decode parses a HelloAck. As with [Hello.Decode], an unexpected version
// stops decoding with m.Version set and an ErrUnsupportedVersion error.
func (m *HelloAck) Decode(body []byte) error {
	*m = HelloAck{}
	d := begin(body, TypeHelloAck)
	at := d.off
	m.Version = d.uvarint("version")
	if d.err == nil && m.Version != ProtocolVersion {
		d.off = at
		d.failf("version", ErrUnsupportedVersion, "version %d, this side speaks %d", m.Version, ProtocolVersion)
		return d.err
	}
	code := d.code("code")
	m.Features = Features(d.uvarint("features"))
	at = d.off
	m.KeySize = KeySize(d.uvarintMax("key size", 256))
	if d.err == nil && !m.KeySize.Valid() {
		d.off = at
		d.failf("key size", ErrInvalid, "%d is not 0, 128, 192 or 256", m.KeySize)
	}
	copy(m.Nonce[:], d.fixed("nonce", NonceSize))
	at = d.off
	m.Code = code
	m.Reason = d.str("reason")
	if d.err == nil && code == CodeOK && m.Reason != "" {
		d.off = at
		d.fail("reason", ErrNonCanonical, "reason with code ok")
	}
	return d.done()
}

// Ping asks the peer for a Pong with the same ID (liveness, round trips).
type Ping struct{ ID uint64 }

// Pong answers a Ping.
type Pong struct{ ID uint64 }

// Type returns [TypePing].
func (*Ping) Type() MsgType { return TypePing }

// Type returns [TypePong].
func (*Pong) Type() MsgType { return TypePong }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Ping) AppendBinary(dst []byte) ([]byte, error) {
	return appendUvarint(append(dst, byte(TypePing)), m.ID), nil
}

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Pong) AppendBinary(dst []byte) ([]byte, error) {
	return appendUvarint(append(dst, byte(TypePong)), m.ID), nil
}

// Decode parses a frame body of type [TypePing] into m (see [Message]).
func (m *Ping) Decode(body []byte) error {
	d := begin(body, TypePing)
	m.ID = d.uvarint("id")
	return d.done()
}

// Decode parses a frame body of type [TypePong] into m (see [Message]).
func (m *Pong) Decode(body []byte) error {
	d := begin(body, TypePong)
	m.ID = d.uvarint("id")
	return d.done()
}

// Fatal ends the connection: the sender closes it after this frame. Code is
// never CodeOK.
type Fatal struct {
	Code   ErrorCode
	Reason string
}

// Type returns [TypeFatal].
func (*Fatal) Type() MsgType { return TypeFatal }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Fatal) AppendBinary(dst []byte) ([]byte, error) {
	if err := checkReason(TypeFatal, m.Code, m.Reason, true); err != nil {
		return dst, err
	}
	dst = appendUvarint(append(dst, byte(TypeFatal)), uint64(m.Code))
	return appendString(dst, m.Reason), nil
}

// Decode parses a frame body of type [TypeFatal] into m (see [Message]).
func (m *Fatal) Decode(body []byte) error {
	d := begin(body, TypeFatal)
	m.Code, m.Reason = d.codeReason(true)
	return d.done()
}

// Error is the failure reply to a request without a dedicated reply type
// (Open, Close, Subscribe, Unsubscribe). Request names the request it
// answers; Code is never CodeOK.
type Error struct {
	Channel uint32
	Request MsgType
	Code    ErrorCode
	Reason  string
}

// Type returns [TypeError].
func (*Error) Type() MsgType { return TypeError }

func errorRequestValid(t MsgType) bool {
	return t == TypeOpen || t == TypeClose || t == TypeSubscribe || t == TypeUnsubscribe
}

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Error) AppendBinary(dst []byte) ([]byte, error) {
	if !errorRequestValid(m.Request) {
		return dst, encErr(TypeError, "request", m.Request.String()+" has its own reply type")
	}
	if err := checkReason(TypeError, m.Code, m.Reason, true); err != nil {
		return dst, err
	}
	dst = appendUvarint(append(dst, byte(TypeError)), uint64(m.Channel))
	dst = append(dst, byte(m.Request))
	dst = appendUvarint(dst, uint64(m.Code))
	return appendString(dst, m.Reason), nil
}

// Decode parses a frame body of type [TypeError] into m (see [Message]).
func (m *Error) Decode(body []byte) error {
	d := begin(body, TypeError)
	m.Channel = d.channel()
	at := d.off
	m.Request = MsgType(d.byte1("request"))
	if d.err == nil && !errorRequestValid(m.Request) {
		d.off = at
		d.failf("request", ErrInvalid, "%s has its own reply type", m.Request)
	}
	m.Code, m.Reason = d.codeReason(true)
	return d.done()
}

// Open binds a channel (1 or more) to a chain. Reply: [Opened] or [Error].
type Open struct {
	Channel  uint32
	ChainKey string // non-empty
}

// Type returns [TypeOpen].
func (*Open) Type() MsgType { return TypeOpen }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Open) AppendBinary(dst []byte) ([]byte, error) {
	if m.Channel == 0 {
		return dst, encErr(TypeOpen, "channel", "channel 0 is opened by the Hello")
	}
	if m.ChainKey == "" {
		return dst, encErr(TypeOpen, "chain key", "empty")
	}
	if err := checkString("Open", "chain key", m.ChainKey); err != nil {
		return dst, err
	}
	dst = appendUvarint(append(dst, byte(TypeOpen)), uint64(m.Channel))
	return appendString(dst, m.ChainKey), nil
}

// Decode parses a frame body of type [TypeOpen] into m (see [Message]).
func (m *Open) Decode(body []byte) error {
	d := begin(body, TypeOpen)
	at := d.off
	m.Channel = d.channel()
	if d.err == nil && m.Channel == 0 {
		d.off = at
		d.fail("channel", ErrInvalid, "channel 0 is opened by the Hello")
	}
	at = d.off
	m.ChainKey = d.str("chain key")
	if d.err == nil && m.ChainKey == "" {
		d.off = at
		d.fail("chain key", ErrInvalid, "empty")
	}
	return d.done()
}

// channelOnly encodes and decodes the messages whose only field is a channel.
func appendChannelOnly(dst []byte, t MsgType, ch uint32) []byte {
	return appendUvarint(append(dst, byte(t)), uint64(ch))
}

func decodeChannelOnly(body []byte, t MsgType) (uint32, error) {
	d := begin(body, t)
	ch := d.channel()
	return ch, d.done()
}

// Opened confirms an [Open] (or, for channel 0, the Hello's chain key): the
// chain exists and the channel may be used.
type Opened struct{ Channel uint32 }

// Close releases a channel: its subscription ends and its locks are
// released. Reply: [Closed] or [Error].
type Close struct{ Channel uint32 }

// Closed confirms a [Close]: no more messages for that channel follow, and
// its number may be reused by an Open.
type Closed struct{ Channel uint32 }

// Unsubscribe ends the subscription on a channel. Reply: [Unsubscribed] or
// [Error] (CodeNotSubscribed).
type Unsubscribe struct{ Channel uint32 }

// Type returns [TypeOpened].
func (*Opened) Type() MsgType { return TypeOpened }

// Type returns [TypeClose].
func (*Close) Type() MsgType { return TypeClose }

// Type returns [TypeClosed].
func (*Closed) Type() MsgType { return TypeClosed }

// Type returns [TypeUnsubscribe].
func (*Unsubscribe) Type() MsgType { return TypeUnsubscribe }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Opened) AppendBinary(dst []byte) ([]byte, error) {
	return appendChannelOnly(dst, TypeOpened, m.Channel), nil
}

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Close) AppendBinary(dst []byte) ([]byte, error) {
	return appendChannelOnly(dst, TypeClose, m.Channel), nil
}

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Closed) AppendBinary(dst []byte) ([]byte, error) {
	return appendChannelOnly(dst, TypeClosed, m.Channel), nil
}

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Unsubscribe) AppendBinary(dst []byte) ([]byte, error) {
	return appendChannelOnly(dst, TypeUnsubscribe, m.Channel), nil
}

// Decode parses a frame body of type [TypeOpened] into m (see [Message]).
func (m *Opened) Decode(body []byte) (err error) {
	m.Channel, err = decodeChannelOnly(body, TypeOpened)
	return err
}

// Decode parses a frame body of type [TypeClose] into m (see [Message]).
func (m *Close) Decode(body []byte) (err error) {
	m.Channel, err = decodeChannelOnly(body, TypeClose)
	return err
}

// Decode parses a frame body of type [TypeClosed] into m (see [Message]).
func (m *Closed) Decode(body []byte) (err error) {
	m.Channel, err = decodeChannelOnly(body, TypeClosed)
	return err
}

// Decode parses a frame body of type [TypeUnsubscribe] into m (see [Message]).
func (m *Unsubscribe) Decode(body []byte) (err error) {
	m.Channel, err = decodeChannelOnly(body, TypeUnsubscribe)
	return err
}

// Subscribe flag bits: part of the wire format.
const (
	subHistory  = 1 << 0
	subLive     = 1 << 1
	subFromTime = 1 << 2
	subKnown    = subHistory | subLive | subFromTime
)

// Subscribe starts a subscription on a channel. Reply: [StartOfHistory]
// (then Events, EndOfHistory, live Events) or [Error].
//
// With History, the replay starts at offset From, or, if FromTime, at the
// first event whose server time is >= From (unix nanoseconds). Without
// History, From and FromTime must be zero and only live events are sent.
// At least one of History and Live is set.
type Subscribe struct {
	Channel  uint32
	History  bool
	Live     bool
	FromTime bool
	From     uint64
}

// Type returns [TypeSubscribe].
func (*Subscribe) Type() MsgType { return TypeSubscribe }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Subscribe) AppendBinary(dst []byte) ([]byte, error) {
	if !m.History && !m.Live {
		return dst, encErr(TypeSubscribe, "flags", "neither history nor live")
	}
	if !m.History && (m.FromTime || m.From != 0) {
		return dst, encErr(TypeSubscribe, "from", "a start point needs History")
	}
	var f byte
	if m.History {
		f |= subHistory
	}
	if m.Live {
		f |= subLive
	}
	if m.FromTime {
		f |= subFromTime
	}
	dst = appendUvarint(append(dst, byte(TypeSubscribe)), uint64(m.Channel))
	dst = append(dst, f)
	return appendUvarint(dst, m.From), nil
}

// Decode parses a frame body of type [TypeSubscribe] into m (see [Message]).
func (m *Subscribe) Decode(body []byte) error {
	d := begin(body, TypeSubscribe)
	m.Channel = d.channel()
	at := d.off
	f := d.byte1("flags")
	m.History, m.Live, m.FromTime = f&subHistory != 0, f&subLive != 0, f&subFromTime != 0
	if d.err == nil {
		switch {
		case f&^subKnown != 0:
			d.off = at
			d.failf("flags", ErrInvalid, "unknown flag bits 0x%02x", f&^subKnown)
		case !m.History && !m.Live:
			d.off = at
			d.fail("flags", ErrInvalid, "neither history nor live")
		}
	}
	at = d.off
	m.From = d.uvarint("from")
	if d.err == nil && !m.History && (m.FromTime || m.From != 0) {
		d.off = at
		d.fail("from", ErrInvalid, "a start point needs history")
	}
	return d.done()
}

// IntegrityMode is a chain's trust mode.
type IntegrityMode uint8

// Integrity modes: part of the wire format.
const (
	IntegrityCentralized IntegrityMode = 1 // the server checks who may write
	IntegrityDistributed IntegrityMode = 2 // every event is covered by a stored signature
)

// String returns "centralized" or "distributed".
func (m IntegrityMode) String() string {
	switch m {
	case IntegrityCentralized:
		return "centralized"
	case IntegrityDistributed:
		return "distributed"
	}
	return "IntegrityMode(" + strconv.Itoa(int(m)) + ")"
}

// StartOfHistory answers a Subscribe: the chain's trust mode and root keys,
// the next offset the chain will assign (Head), and how many events the
// history replay will send (0 without History).
type StartOfHistory struct {
	Channel   uint32
	Integrity IntegrityMode
	Head      uint64
	Count     uint64
	RootKeys  []PublicKey // alias the decoded body; capacity reused by Decode
}

// Type returns [TypeStartHistory].
func (*StartOfHistory) Type() MsgType { return TypeStartHistory }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *StartOfHistory) AppendBinary(dst []byte) ([]byte, error) {
	if m.Integrity != IntegrityCentralized && m.Integrity != IntegrityDistributed {
		return dst, encErr(TypeStartHistory, "integrity", m.Integrity.String())
	}
	for _, k := range m.RootKeys {
		if err := k.check("root keys"); err != nil {
			return dst, err
		}
	}
	dst = appendUvarint(append(dst, byte(TypeStartHistory)), uint64(m.Channel))
	dst = append(dst, byte(m.Integrity))
	dst = appendUvarint(dst, m.Head)
	dst = appendUvarint(dst, m.Count)
	dst = appendUvarint(dst, uint64(len(m.RootKeys)))
	for _, k := range m.RootKeys {
		dst = appendBytes(append(dst, byte(k.Type)), k.Key)
	}
	return dst, nil
}

// Decode parses a frame body of type [TypeStartHistory] into m (see [Message]).
func (m *StartOfHistory) Decode(body []byte) error {
	keys := m.RootKeys[:0]
	*m = StartOfHistory{}
	d := begin(body, TypeStartHistory)
	m.Channel = d.channel()
	at := d.off
	m.Integrity = IntegrityMode(d.byte1("integrity"))
	if d.err == nil && m.Integrity != IntegrityCentralized && m.Integrity != IntegrityDistributed {
		d.off = at
		d.failf("integrity", ErrInvalid, "unknown mode %d", m.Integrity)
	}
	m.Head = d.uvarint("head")
	m.Count = d.uvarint("count")
	n := d.count("root keys", 2+KeyEd25519.Size())
	keys = grow(keys, n)
	for i := 0; i < n && d.err == nil; i++ {
		keys = append(keys, d.publicKey("root keys"))
	}
	m.RootKeys = keys
	return d.done()
}

// EndOfHistory ends the history replay of a subscription; Next is the offset
// after the last replayed event (where live events continue). Without Live,
// the subscription ends here.
type EndOfHistory struct {
	Channel uint32
	Next    uint64
}

// Type returns [TypeEndHistory].
func (*EndOfHistory) Type() MsgType { return TypeEndHistory }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *EndOfHistory) AppendBinary(dst []byte) ([]byte, error) {
	dst = appendUvarint(append(dst, byte(TypeEndHistory)), uint64(m.Channel))
	return appendUvarint(dst, m.Next), nil
}

// Decode parses a frame body of type [TypeEndHistory] into m (see [Message]).
func (m *EndOfHistory) Decode(body []byte) error {
	d := begin(body, TypeEndHistory)
	m.Channel = d.channel()
	m.Next = d.uvarint("next")
	return d.done()
}

// Unsubscribed reports the end of a subscription: the reply to Unsubscribe
// (CodeOK), or sent by the server on its own (CodeLagging,
// CodeStorageFailure, CodeShuttingDown...). Next is the offset from which a
// new Subscribe resumes without gaps.
type Unsubscribed struct {
	Channel uint32
	Code    ErrorCode
	Next    uint64
	Reason  string
}

// Type returns [TypeUnsubscribed].
func (*Unsubscribed) Type() MsgType { return TypeUnsubscribed }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Unsubscribed) AppendBinary(dst []byte) ([]byte, error) {
	if err := checkReason(TypeUnsubscribed, m.Code, m.Reason, false); err != nil {
		return dst, err
	}
	dst = appendUvarint(append(dst, byte(TypeUnsubscribed)), uint64(m.Channel))
	dst = appendUvarint(dst, m.Next)
	dst = appendUvarint(dst, uint64(m.Code))
	return appendString(dst, m.Reason), nil
}

// Decode parses a frame body of type [TypeUnsubscribed] into m (see [Message]).
func (m *Unsubscribed) Decode(body []byte) error {
	d := begin(body, TypeUnsubscribed)
	m.Channel = d.channel()
	m.Next = d.uvarint("next")
	m.Code, m.Reason = d.codeReason(false)
	return d.done()
}

// CommitError refuses an Append: nothing of the batch was stored. Index is
// the failing event's position in the batch, or -1 if the failure is not
// about one event. Head is the chain's next offset (meaningful with
// CodeConflict). Code is never CodeOK.
type CommitError struct {
	Channel  uint32
	CommitID uint64
	Code     ErrorCode
	Index    int
	Head     uint64
	Reason   string
}

// Type returns [TypeCommitError].
func (*CommitError) Type() MsgType { return TypeCommitError }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *CommitError) AppendBinary(dst []byte) ([]byte, error) {
	if m.Index < -1 {
		return dst, encErr(TypeCommitError, "index", "must be -1 (none) or an event position")
	}
	if err := checkReason(TypeCommitError, m.Code, m.Reason, true); err != nil {
		return dst, err
	}
	dst = appendUvarint(append(dst, byte(TypeCommitError)), uint64(m.Channel))
	dst = appendUvarint(dst, m.CommitID)
	dst = appendUvarint(dst, uint64(m.Index+1))
	dst = appendUvarint(dst, m.Head)
	dst = appendUvarint(dst, uint64(m.Code))
	return appendString(dst, m.Reason), nil
}

// Decode parses a frame body of type [TypeCommitError] into m (see [Message]).
func (m *CommitError) Decode(body []byte) error {
	d := begin(body, TypeCommitError)
	m.Channel = d.channel()
	m.CommitID = d.uvarint("commit id")
	m.Index = int(d.uvarintMax("index", 1<<31)) - 1
	m.Head = d.uvarint("head")
	m.Code, m.Reason = d.codeReason(true)
	return d.done()
}

// Prove shows that this connection holds the private key of Key, for the
// chain of Channel: Signature signs [ProofMessage] of the conversation
// nonce and the chain key. Reply: [ProveResult] with the same ID.
type Prove struct {
	Channel   uint32
	ID        uint64
	Key       PublicKey // aliases the decoded body
	Signature []byte    // aliases the decoded body; 1..MaxSignatureLen bytes
}

// ProveResult answers a Prove with the same ID: CodeOK, CodeDenied
// (bad signature) or another failure.
type ProveResult struct {
	Channel uint32
	ID      uint64
	Code    ErrorCode
	Reason  string
}

// Type returns [TypeProve].
func (*Prove) Type() MsgType { return TypeProve }

// Type returns [TypeProveResult].
func (*ProveResult) Type() MsgType { return TypeProveResult }

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Prove) AppendBinary(dst []byte) ([]byte, error) {
	if err := m.Key.check("key"); err != nil {
		return dst, err
	}
	if len(m.Signature) == 0 || len(m.Signature) > MaxSignatureLen {
		return dst, encErr(TypeProve, "signature", fmt.Sprintf("%d bytes, want 1..%d", len(m.Signature), MaxSignatureLen))
	}
	dst = appendUvarint(append(dst, byte(TypeProve)), uint64(m.Channel))
	dst = appendUvarint(dst, m.ID)
	dst = appendBytes(append(dst, byte(m.Key.Type)), m.Key.Key)
	return appendBytes(dst, m.Signature), nil
}

// Decode parses a frame body of type [TypeProve] into m (see [Message]).
func (m *Prove) Decode(body []byte) error {
	d := begin(body, TypeProve)
	m.Channel = d.channel()
	m.ID = d.uvarint("id")
	m.Key = d.publicKey("key")
	at := d.off
	m.Signature = d.bytes("signature", MaxSignatureLen)
	if d.err == nil && len(m.Signature) == 0 {
		d.off = at
		d.fail("signature", ErrInvalid, "empty")
	}
	return d.done()
}

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *ProveResult) AppendBinary(dst []byte) ([]byte, error) {
	if err := checkReason(TypeProveResult, m.Code, m.Reason, false); err != nil {
		return dst, err
	}
	dst = appendUvarint(append(dst, byte(TypeProveResult)), uint64(m.Channel))
	dst = appendUvarint(dst, m.ID)
	dst = appendUvarint(dst, uint64(m.Code))
	return appendString(dst, m.Reason), nil
}

// Decode parses a frame body of type [TypeProveResult] into m (see [Message]).
func (m *ProveResult) Decode(body []byte) error {
	d := begin(body, TypeProveResult)
	m.Channel = d.channel()
	m.ID = d.uvarint("id")
	m.Code, m.Reason = d.codeReason(false)
	return d.done()
}

// ProofDomain prefixes the bytes a Prove signature covers.
const ProofDomain = "atedb prove v1\x00"

// ProofMessage returns the bytes a [Prove] signature covers:
// ProofDomain || nonce || uvarint(len(chainKey)) || chainKey. Binding the
// per-connection nonce and the chain key means a proof cannot be replayed
// on another connection or for another chain.
func ProofMessage(nonce [NonceSize]byte, chainKey string) []byte {
	b := make([]byte, 0, len(ProofDomain)+NonceSize+uvarintLen(uint64(len(chainKey)))+len(chainKey))
	b = append(b, ProofDomain...)
	b = append(b, nonce[:]...)
	return appendString(b, chainKey)
}

// Lock asks for the advisory lock on object Key of the channel's chain,
// owned by this connection until Unlock or disconnect. Reply: [LockResult]
// with the same ID (CodeOK or CodeLockHeld).
type Lock struct {
	Channel uint32
	ID      uint64
	Key     uint64
}

// Unlock releases a lock this connection holds. Reply: [LockResult] with
// the same ID (CodeOK or CodeNotLockOwner).
type Unlock struct {
	Channel uint32
	ID      uint64
	Key     uint64
}

// LockResult answers a Lock or an Unlock with the same ID.
type LockResult struct {
	Channel uint32
	ID      uint64
	Key     uint64
	Code    ErrorCode
	Reason  string
}

// Type returns [TypeLock].
func (*Lock) Type() MsgType { return TypeLock }

// Type returns [TypeUnlock].
func (*Unlock) Type() MsgType { return TypeUnlock }

// Type returns [TypeLockResult].
func (*LockResult) Type() MsgType { return TypeLockResult }

func appendLockReq(dst []byte, t MsgType, ch uint32, id, key uint64) []byte {
	dst = appendUvarint(append(dst, byte(t)), uint64(ch))
	dst = appendUvarint(dst, id)
	return appendU64(dst, key)
}

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Lock) AppendBinary(dst []byte) ([]byte, error) {
	return appendLockReq(dst, TypeLock, m.Channel, m.ID, m.Key), nil
}

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *Unlock) AppendBinary(dst []byte) ([]byte, error) {
	return appendLockReq(dst, TypeUnlock, m.Channel, m.ID, m.Key), nil
}

// Decode parses a frame body of type [TypeLock] into m (see [Message]).
func (m *Lock) Decode(body []byte) error {
	d := begin(body, TypeLock)
	m.Channel, m.ID, m.Key = d.channel(), d.uvarint("id"), d.u64("key")
	return d.done()
}

// Decode parses a frame body of type [TypeUnlock] into m (see [Message]).
func (m *Unlock) Decode(body []byte) error {
	d := begin(body, TypeUnlock)
	m.Channel, m.ID, m.Key = d.channel(), d.uvarint("id"), d.u64("key")
	return d.done()
}

// AppendBinary appends the frame body of m to dst (see [Message]).
func (m *LockResult) AppendBinary(dst []byte) ([]byte, error) {
	if err := checkReason(TypeLockResult, m.Code, m.Reason, false); err != nil {
		return dst, err
	}
	dst = appendLockReq(dst, TypeLockResult, m.Channel, m.ID, m.Key)
	dst = appendUvarint(dst, uint64(m.Code))
	return appendString(dst, m.Reason), nil
}

// Decode parses a frame body of type [TypeLockResult] into m (see [Message]).
func (m *LockResult) Decode(body []byte) error {
	d := begin(body, TypeLockResult)
	m.Channel, m.ID, m.Key = d.channel(), d.uvarint("id"), d.u64("key")
	m.Code, m.Reason = d.codeReason(false)
	return d.done()
}

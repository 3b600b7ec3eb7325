// Package proto is atedb's wire protocol codec, shared by the server and
// every client: length-prefixed frames, the message catalogue, and the
// canonical binary encoding of events with their hash. docs/PROTOCOL.md
// specifies every byte; a test keeps it and this package in step.
//
// It does no I/O beyond an io.Reader / io.Writer and knows nothing about
// disks or what keys mean.
//
// # Frames
//
// A frame is a 4-byte little-endian body length followed by the body:
//
//	+----------------------+------------------------+
//	| length u32 LE (4 B)  | body (length bytes)    |
//	+----------------------+------------------------+
//
// [FrameReader] checks the length against a configurable maximum before
// reading or allocating anything for the body and reuses one buffer, so
// steady-state reads do not allocate; [FrameWriter] batches frames into one
// Write per Flush and keeps its first error. [FrameConn] is what servers and
// clients use: [Stream] over plain connections, or the kex package's sealed
// stream.
//
//	s := proto.NewStream(conn, proto.DefaultMaxFrameSize)
//	_ = s.WriteFrame(body1)
//	_ = s.WriteFrame(body2)
//	err := s.Flush()            // one write for both frames
//	in, err := s.ReadFrame()    // valid until the next ReadFrame
//
// # Messages
//
// A frame body is one message: a type byte ([MsgType]), then its fields.
// Every message type is a struct implementing [Message]: AppendBinary
// encodes (refusing values that have no valid encoding with an
// [*EncodeError]) and Decode parses into a caller-owned struct whose
// byte-slice fields alias the input, reusing slice capacity, so hot paths
// decode without allocating. [DecodeMessage] decodes any type into a new
// struct; [PeekChannel] routes a body without decoding it.
//
//	var app proto.Append          // reused for every Append on this connection
//	if err := app.Decode(body); err != nil {
//		var de *proto.DecodeError // Msg, Field, Offset, and a sentinel:
//		_ = errors.As(err, &de)   // ErrTruncated, ErrNonCanonical, ErrInvalid,
//	}                             // ErrUnknownMessage, ErrUnsupportedVersion
//
// Events messages are built in place from stored event bytes with
// [AppendEventsHeader] and [AppendEventsItem], and read with [Events.Iter].
//
// # Events
//
// [Event] is the metadata and data of one event; its encoding is canonical
// (one valid encoding per value, decode→encode gives identical bytes,
// anything else is rejected). The event hash is
// SHA-256(SHA-256(metadata) || SHA-256(data)) ([EventHash]).
// [EventDataKey], [EventTimestamp] and [EventParent] read the leading
// fields of an encoded event without decoding the rest.
//
// Nothing in this package is safe for concurrent mutation; distinct values
// may be used from different goroutines, and a [Stream] may be read by one
// goroutine while another writes.
package proto

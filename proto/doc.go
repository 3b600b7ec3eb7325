// Package proto is atedb's wire protocol codec, shared by the server and
// every client: length-prefixed frames, the message catalogue, and the
// canonical binary encoding of events with their hash.
//
// It does no I/O beyond an io.Reader / io.Writer and knows nothing about
// disks or what keys mean. docs/PROTOCOL.md describes every byte.
//
// # Frames
//
// A frame is a 4-byte little-endian body length followed by the body:
//
//	+----------------------+------------------------+
//	| length u32 LE (4 B)  | body (length bytes)    |
//	+----------------------+------------------------+
//
// The length is checked against a configurable maximum before anything is
// read or allocated for the body.
//
//	s := proto.NewStream(conn, proto.DefaultMaxFrameSize)
//	if err := s.WriteFrame(body); err != nil { ... }
//	if err := s.Flush(); err != nil { ... } // one write for all queued frames
//	in, err := s.ReadFrame()               // valid until the next ReadFrame
package proto

package proto_test

import (
	"bytes"
	"fmt"

	"github.com/atedb/atedb/proto"
)

// A client sends a Hello, then an Append of one event, through a plain
// stream; the server side reads and decodes them.
func Example() {
	var wire bytes.Buffer
	client := proto.NewStream(&wire, proto.DefaultMaxFrameSize)

	hello := proto.Hello{Version: proto.ProtocolVersion, KeySize: 0, Route: "/db", ChainKey: "example.com/joe/mydb"}
	body, err := hello.AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	_ = client.WriteFrame(body)

	ev := proto.Event{DataKey: 7, Timestamp: 1767225600000000000, Data: []byte("hello")}
	encoded, err := ev.AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	app := proto.Append{Channel: 0, CommitID: 1, Events: [][]byte{encoded}}
	body, _ = app.AppendBinary(body[:0])
	_ = client.WriteFrame(body)
	_ = client.Flush() // both frames in one write

	server := proto.NewFrameReader(&wire, proto.DefaultMaxFrameSize)
	var h proto.Hello
	frame, _ := server.ReadFrame()
	if err := h.Decode(frame); err != nil {
		panic(err)
	}
	fmt.Println("hello for", h.ChainKey, "route", h.Route)

	frame, _ = server.ReadFrame()
	msg, err := proto.DecodeMessage(frame)
	if err != nil {
		panic(err)
	}
	var got proto.Event
	for _, raw := range msg.(*proto.Append).Events {
		if err := got.Decode(raw); err != nil {
			panic(err)
		}
		fmt.Printf("event key %d data %q\n", got.DataKey, got.Data)
	}
	// Output:
	// hello for example.com/joe/mydb route /db
	// event key 7 data "hello"
}

// The server builds Events bodies from stored event bytes without decoding
// them; the client iterates over the items without allocating.
func ExampleAppendEventsItem() {
	stored := [][]byte{}
	for key := uint64(1); key <= 2; key++ {
		e := proto.Event{DataKey: key}
		b, _ := e.AppendBinary(nil)
		stored = append(stored, b)
	}
	body := proto.AppendEventsHeader(nil, 0)
	for i, ev := range stored {
		body = proto.AppendEventsItem(body, uint64(100+i), 1767225600000000000, ev)
	}

	var m proto.Events
	if err := m.Decode(body); err != nil {
		panic(err)
	}
	it := m.Iter()
	for item, ok := it.Next(); ok; item, ok = it.Next() {
		key, _, _ := proto.EventDataKey(item.Event)
		fmt.Printf("offset %d key %d\n", item.Offset, key)
	}
	// Output:
	// offset 100 key 1
	// offset 101 key 2
}

// Decode errors say what is wrong and where.
func ExampleDecodeError() {
	_, err := proto.DecodeMessage([]byte{0x30, 0x00, 0x01, 0x04, 0x00})
	fmt.Println(err)
	// Output:
	// proto: invalid value: Append.flags at byte 3: unknown flag bits 0x04
}

package chain_test

import (
	"time"

	"github.com/atedb/atedb/proto"
)

// encodeTestEvent encodes an event carrying data s and client time ts
// (zero: none).
func encodeTestEvent(s string, ts time.Time) []byte {
	ev := proto.Event{Data: []byte(s)}
	if !ts.IsZero() {
		ev.Timestamp = ts.UnixNano()
	}
	b, err := ev.AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	return b
}

package chain

import (
	"time"

	"github.com/atedb/atedb/proto"
)

// Hash identifies an event: proto's event hash.
type Hash = proto.Hash

// Event is one event of a batch as the validation hook sees it.
type Event struct {
	Payload []byte      // the encoded event, as received (valid during Append only)
	Hash    Hash        // its hash: identity, duplicate detection, signatures
	Meta    proto.Event // the decoded event; its slices alias Payload
}

// Time returns the event's client timestamp and whether it has one.
func (e *Event) Time() (time.Time, bool) {
	if e.Meta.Timestamp == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, e.Meta.Timestamp), true
}

// inspect decodes payload completely (every structural rule of the
// canonical encoding) and hashes it.
func inspect(payload []byte, ev *Event) error {
	if err := ev.Meta.Decode(payload); err != nil {
		return err
	}
	h, err := proto.EventHash(payload)
	if err != nil {
		return err
	}
	ev.Payload, ev.Hash = payload, h
	return nil
}
